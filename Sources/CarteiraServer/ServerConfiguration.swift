public import CarteiraCore

/// Everything `carteira-server` can be told on its command line.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var journalDirectory: String
    public var initialBalance: Centavos
    public var keyPolicy: KeyPolicy
    public var maximumClients: Int
    /// Answers and pushes one connection may have waiting before the server
    /// gives up on it as too far behind.
    public var maximumQueuedLinesPerConnection: Int
    /// How long graceful shutdown waits for connections to drain.
    public var shutdownGraceSeconds: Int64

    public init(
        host: String = "127.0.0.1",
        port: Int = 7070,
        journalDirectory: String = "journal",
        initialBalance: Centavos = Centavos(10_000),
        keyPolicy: KeyPolicy = KeyPolicy(),
        maximumClients: Int = 10_000,
        maximumQueuedLinesPerConnection: Int = 1024,
        shutdownGraceSeconds: Int64 = 10
    ) {
        self.host = host
        self.port = port
        self.journalDirectory = journalDirectory
        self.initialBalance = initialBalance
        self.keyPolicy = keyPolicy
        self.maximumClients = maximumClients
        self.maximumQueuedLinesPerConnection = maximumQueuedLinesPerConnection
        self.shutdownGraceSeconds = shutdownGraceSeconds
    }

    /// How often the rotation timer looks for expired keys: a tenth of the
    /// TTL, between 50 ms and 1 s.
    public var rotationTickMilliseconds: Int64 {
        min(1000, max(50, keyPolicy.ttlSeconds * 100))
    }
}
