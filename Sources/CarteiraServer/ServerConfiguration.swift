public import CarteiraCore

/// Everything `carteira-server` can be told on its command line.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var journalDirectory: String
    public var initialBalance: Centavos
    /// A key's life before the server rotates it.
    public var keyTTLSeconds: Int64
    /// How long a replaced key stays payable.
    public var keyGraceSeconds: Int64
    public var maximumConnections: Int
    /// Answers one connection may have waiting before the server stops
    /// reading its requests; pushes may fill twice as many, then the
    /// connection is closed as too far behind.
    public var maximumQueuedAnswersPerConnection: Int
    /// A connection whose socket takes none of its output for this long is
    /// closed.
    public var stuckConnectionTimeoutSeconds: Int64
    /// Output buffered in the channel above which the connection stops being
    /// read, and below which it is read again.
    public var outputHighWaterMarkBytes: Int
    public var outputLowWaterMarkBytes: Int
    /// How long graceful shutdown waits for connections to drain.
    public var shutdownGraceSeconds: Int64
    /// Where `GET /metrics` is served (Prometheus text format); off when
    /// `nil`. Port 0 picks a free one (`CarteiraServer.metricsPort`).
    public var metrics: (host: String, port: Int)?
    /// When set, the port speaks TLS only (`--tls-cert`, `--tls-key`).
    public var tls: ServerTLS? = nil
    /// Serve plaintext on a non-loopback address (`--insecure-plaintext`).
    public var insecurePlaintext = false

    public init(
        host: String = "127.0.0.1",
        port: Int = 7070,
        journalDirectory: String = "journal",
        initialBalance: Centavos = Centavos(10_000),
        keyTTLSeconds: Int64 = 180,
        keyGraceSeconds: Int64 = 30,
        maximumConnections: Int = 10_000,
        maximumQueuedAnswersPerConnection: Int = 1024,
        stuckConnectionTimeoutSeconds: Int64 = 30,
        outputHighWaterMarkBytes: Int = 256 * 1024,
        outputLowWaterMarkBytes: Int = 64 * 1024,
        shutdownGraceSeconds: Int64 = 10,
        metrics: (host: String, port: Int)? = nil
    ) {
        self.metrics = metrics
        self.host = host
        self.port = port
        self.journalDirectory = journalDirectory
        self.initialBalance = initialBalance
        self.keyTTLSeconds = keyTTLSeconds
        self.keyGraceSeconds = keyGraceSeconds
        self.maximumConnections = maximumConnections
        self.maximumQueuedAnswersPerConnection = maximumQueuedAnswersPerConnection
        self.stuckConnectionTimeoutSeconds = stuckConnectionTimeoutSeconds
        self.outputHighWaterMarkBytes = outputHighWaterMarkBytes
        self.outputLowWaterMarkBytes = outputLowWaterMarkBytes
        self.shutdownGraceSeconds = shutdownGraceSeconds
    }

    /// The TLS context of `tls`, its files read and checked once for every
    /// connection of a listener; nil without TLS.
    public func tlsContext() throws(ServerStartFailure) -> ServerTLSContext? {
        guard let tls else { return nil }
        return try ServerTLSContext(tls)
    }

    /// Why this configuration must not start: plaintext on an address other
    /// machines can reach sends every token in the clear.
    public var plaintextRefusal: String? {
        guard tls == nil, !insecurePlaintext, !isLoopbackHost(host) else { return nil }
        return "refusing to listen on \(host) without TLS: tokens would cross the network in plain text. "
            + "Give --tls-cert FILE --tls-key FILE, listen on 127.0.0.1, "
            + "or pass --insecure-plaintext if the network is trusted"
    }

    public var keyPolicy: KeyPolicy {
        KeyPolicy(ttlSeconds: keyTTLSeconds, graceSeconds: keyGraceSeconds)
    }

    /// How often the rotation timer looks for expired keys: a tenth of the
    /// TTL, between 50 ms and 1 s.
    public var rotationTickMilliseconds: Int64 {
        min(1000, max(50, keyTTLSeconds * 100))
    }
}
