public import CarteiraCore
public import CarteiraTerminal

/// What the console asks of the running server. The server implements it on
/// top of its ledger service, sessions and journal; tests use a fake.
public protocol ConsoleBackend: Sendable {
    /// A snapshot of the ledger state as of the last durable event.
    func ledger() async -> Ledger
    /// The open peer connections.
    func sessions() async -> [ConsoleSession]
    func statistics() async -> ConsoleStatistics
    /// Rotates `machine`'s key now, journaled with `reason=admin`; the new key
    /// and its expiry, or why not.
    func rotateKey(of machine: MachineName) async -> Result<(PaymentKey, Timestamp), Rejection>
    /// The ledger as it was right after the line with that `seq`, or after
    /// the last line not later than that time: a replay of the journal's
    /// prefix read from disk (the journal is not changed); or why not.
    func ledger(at point: PointInTime) async -> Result<Ledger, JournalVerifyFailure>
    /// Re-reads the journal from disk and checks it as `journal verify` does:
    /// the report (a failed check is a report that did not pass), or why the
    /// journal could not be read.
    func verifyJournal() async -> Result<ConsoleReport, JournalVerifyFailure>
    /// Stops the server gracefully. May be called more than once.
    func shutdown() async
}

/// One open peer connection, for `sessions` and the `machines` table.
public struct ConsoleSession: Sendable, Hashable {
    public var remoteAddress: String
    /// The machine logged in on it, if any.
    public var machine: MachineName?
    public var connectedAt: Timestamp
    public var requestsServed: Int
    /// Which rate-limit bucket refuses it now (`connection`, `address`,
    /// `machine`), or `nil`.
    public var rateLimited: String? = nil

    public init(remoteAddress: String, machine: MachineName?, connectedAt: Timestamp, requestsServed: Int) {
        self.remoteAddress = remoteAddress
        self.machine = machine
        self.connectedAt = connectedAt
        self.requestsServed = requestsServed
    }
}

/// The server's figures for `stats`.
public struct ConsoleStatistics: Sendable, Hashable {
    public var journalPath: String
    public var journalSizeBytes: Int64
    public var lastSeq: Int64
    /// The last durable line's `hash`: with `lastSeq`, the journal's head.
    public var lastHash: String
    /// How many times the journal writer synced.
    public var syncs: Int64
    /// Events made durable by those syncs.
    public var eventsSynced: Int64
    /// Requests answered in the last 60 seconds; `stats` shows it per second.
    public var requestsLastMinute: Int64
    public var uptimeSeconds: Int64
    public var startedAt: Timestamp
    /// Requests answered `rate_limited` since the start.
    public var rateLimitedRefusals: Int64 = 0
    /// Connections, addresses and machine names refused by the rate limits now.
    public var limitedConnections = 0
    public var limitedAddresses: [String] = []
    public var limitedMachines: [String] = []

    public init(
        journalPath: String, journalSizeBytes: Int64, lastSeq: Int64, lastHash: String, syncs: Int64,
        eventsSynced: Int64,
        requestsLastMinute: Int64, uptimeSeconds: Int64, startedAt: Timestamp
    ) {
        self.journalPath = journalPath
        self.journalSizeBytes = journalSizeBytes
        self.lastSeq = lastSeq
        self.lastHash = lastHash
        self.syncs = syncs
        self.eventsSynced = eventsSynced
        self.requestsLastMinute = requestsLastMinute
        self.uptimeSeconds = uptimeSeconds
        self.startedAt = startedAt
    }
}

/// The problem `verify` found in the journal, as the backend words it
/// (`Result` needs an `Error`, so the text is wrapped).
public struct JournalVerifyFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A report for the console: the text for people, the same as rows for
/// programs, and whether it passed.
public struct ConsoleReport: Sendable, Hashable {
    public var text: String
    public var rows: Rows
    public var passed: Bool

    public init(text: String, rows: Rows, passed: Bool) {
        self.text = text
        self.rows = rows
        self.passed = passed
    }
}
