// TEMPORARY stub of the journal API, replaced by the real module on merge.
public import CarteiraCore
import Synchronization

public enum JournalError: Error, CustomStringConvertible, Sendable {
    case lockHeld(pid: Int32?)
    case corrupt(line: Int, reason: String)
    case tornTail(offset: Int64)
    case io(String)
    case closed
    public var description: String { "\(self)" }
}

public struct JournalStatistics: Sendable {
    public var syncs: Int
    public var eventsSynced: Int
    public var bytes: Int64
    public var lastSeq: Int64
    public var lastHash: String
}

public final class JournalLock: Sendable {
    public func release() {}
}

public final class JournalWriter: Sendable {
    let state = Mutex<Int64>(0)
    public func append(_ event: Event) { state.withLock { $0 = event.seq } }
    public func waitDurable(through seq: Int64) async throws(JournalError) {}
    public var durableSeq: Int64 { state.withLock { $0 } }
    public var failure: JournalError? { nil }
    public func statistics() -> JournalStatistics {
        JournalStatistics(syncs: 0, eventsSynced: 0, bytes: 0, lastSeq: durableSeq, lastHash: "")
    }
    public func shutdown() async {}
}

public struct OpenedJournal: Sendable {
    public let ledger: Ledger
    public let writer: JournalWriter
    public let lock: JournalLock
    public let journalPath: String
    public let tornTailCutAt: Int64?
    public let genesisWritten: Bool
}

public enum Journal {
    public static let fileName = "ledger.journal"
    public static let lockFileName = "LOCK"
    public static func open(directory: String, policy: KeyPolicy, now: Timestamp) throws -> OpenedJournal {
        var ledger = Ledger(policy: policy)
        try ledger.apply(Event(seq: 0, at: now, kind: .genesis))
        return OpenedJournal(
            ledger: ledger, writer: JournalWriter(), lock: JournalLock(), journalPath: directory + "/" + fileName,
            tornTailCutAt: nil, genesisWritten: true)
    }
}
