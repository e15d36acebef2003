/// Where the load goes. Only the loopback address is accepted: the tool must
/// never send traffic anywhere else.
public struct ServerEndpoint: Sendable, Hashable, CustomStringConvertible {
    public static let loopback = "127.0.0.1"

    public let host: String
    public let port: Int

    /// `HOST:PORT` with HOST `127.0.0.1` or `localhost` (taken as 127.0.0.1).
    public init?(_ text: some StringProtocol) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let host = text[..<colon]
        guard host == Self.loopback || host == "localhost",
            let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        self.host = Self.loopback
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// What each connection asks, over and over.
public enum LoadMode: String, Sendable, Hashable, CaseIterable, Codable {
    /// `SEND` of R$ 0,01 from the connection's wallet to a random other wallet.
    case send
    /// `PING`: the baseline, which touches neither the ledger nor the journal.
    case ping
    /// `BALANCE`: a read, released once the machine's changes are synced.
    case balance

    /// Whether each connection logs in as a wallet before the timed run.
    public var needsMachine: Bool { self != .ping }
}

/// One run of the load generator.
public struct LoadPlan: Sendable, Hashable {
    public static let connectionLimit = 1...10_000
    public static let pipelineLimit = 1...1_024
    public static let secondsLimit = 1...3_600
    public static let walletLimit = 2...100_000
    public static let threadLimit = 1...64
    /// How long the run may take to drain past the timed part (and the setup
    /// to connect and log in) before it is abandoned: it must stop by itself
    /// even if the server stops answering.
    public static let graceSeconds = 30

    public var endpoint: ServerEndpoint
    public var connections: Int
    public var seconds: Int
    public var pipeline: Int
    public var mode: LoadMode
    /// Unique per run: names of wallets registered by this run and request
    /// ids start with it.
    public var prefix: String
    /// Wallets the connections log in as and pay; at least 2.
    public var wallets: Int
    /// Where the wallets (name, token, key) are kept between runs, so that
    /// every run against one server uses the same wallets. `nil`: registered
    /// for this run only.
    public var walletsFile: String?
    /// Whether each `SEND` carries a fresh request id (idempotent retries).
    public var requestIDs: Bool
    /// Event loop threads of the load generator.
    public var threads: Int

    public init(
        endpoint: ServerEndpoint, connections: Int, seconds: Int, pipeline: Int, mode: LoadMode, prefix: String,
        wallets: Int? = nil, walletsFile: String? = nil, requestIDs: Bool = false, threads: Int = 1
    ) {
        precondition(Self.connectionLimit.contains(connections), "connections out of range")
        precondition(Self.secondsLimit.contains(seconds), "seconds out of range")
        precondition(Self.pipelineLimit.contains(pipeline), "pipeline out of range")
        let wallets = wallets ?? Swift.max(2, connections)
        precondition(Self.walletLimit.contains(wallets), "wallets out of range")
        precondition(Self.threadLimit.contains(threads), "threads out of range")
        self.endpoint = endpoint
        self.connections = connections
        self.seconds = seconds
        self.pipeline = pipeline
        self.mode = mode
        self.prefix = prefix
        self.wallets = wallets
        self.walletsFile = walletsFile
        self.requestIDs = requestIDs
        self.threads = threads
    }

    /// A prefix that no earlier run used: `lg` and 10 random hex digits.
    public static func freshPrefix() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() & 0xFF_FFFF_FFFF
        let digits = String(value, radix: 16)
        return "lg" + String(repeating: "0", count: 10 - digits.count) + digits
    }
}
