import CarteiraCore
import CarteiraTestSupport
import Dispatch
import Foundation
import Testing

@testable import CarteiraJournal

extension TemporaryDirectory {
    var journalPath: String { path + "/" + Journal.fileName }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    func journalBytes() throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: journalPath)))
    }

    func writeJournal(_ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: journalPath))
    }

    func appendJournal(_ bytes: [UInt8]) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: journalPath))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(bytes))
    }

    func files(withPrefix prefix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasPrefix(prefix) }.sorted()
    }
}

/// Deterministic randomness for keys and tokens.
typealias SeededBytes = SplitMix64

extension SplitMix64 {
    mutating func key() -> PaymentKey { PaymentKey(randomBytes: bytes(16)) }

    mutating func digest() -> TokenDigest {
        fixture(TokenDigest(lowerHex(bytes(32))), "a random digest")
    }
}

let startTime = Timestamp(milliseconds: 1_795_000_000_000)

/// Drives a ledger the way the server does: decide, apply, append.
struct LedgerDriver {
    var ledger: Ledger
    var random = SeededBytes(seed: 42)
    var clock = startTime
    var events: [Event] = []

    init(ledger: Ledger) {
        self.ledger = ledger
    }

    enum Step {
        case genesis
        case command(Command)
    }

    /// Decides and applies `command`; the accepted event, if any.
    @discardableResult
    mutating func run(_ command: Command) -> Event? {
        run(.command(command))
    }

    @discardableResult
    mutating func run(_ step: Step) -> Event? {
        clock = clock.adding(milliseconds: 7)
        let event: Event
        switch step {
        case .genesis:
            event = Event(seq: ledger.lastSeq + 1, at: clock, kind: .genesis)
        case let .command(command):
            guard case let .accept(accepted) = ledger.decide(command, at: clock) else { return nil }
            event = accepted
        }
        do {
            try ledger.apply(event)
        } catch {
            fatalError("an event from decide must apply: \(error)")
        }
        events.append(event)
        return event
    }

    @discardableResult
    mutating func register(_ name: String, balance: Int64 = 10_000) -> Event? {
        run(
            .register(
                machine: fixture(MachineName(name), name), tokenDigest: random.digest(), key: random.key(),
                initialBalance: Centavos(balance)))
    }

    @discardableResult
    mutating func pay(_ from: String, _ to: String, _ amount: Int64, request: String? = nil) -> Event? {
        guard let payee = ledger.machines[fixture(MachineName(to), to)] else { return nil }
        return run(
            .transfer(
                from: fixture(MachineName(from), from), keyText: KeyText(payee.key), amount: Centavos(amount),
                requestID: request.flatMap(RequestID.init)))
    }

    @discardableResult
    mutating func rotate(_ name: String, reason: KeyRotationReason = .request) -> Event? {
        run(.rotateKey(machine: fixture(MachineName(name), name), newKey: random.key(), reason: reason))
    }

    /// A mixed, seeded run of registrations, transfers and rotations.
    mutating func randomActivity(events count: Int, machines: Int = 5) {
        for index in 0..<machines { register("m\(index)") }
        for _ in 0..<count {
            let roll = random.next() % 10
            let from = "m\(random.next() % UInt64(machines))"
            let to = "m\(random.next() % UInt64(machines))"
            if roll == 0 {
                rotate(from, reason: .admin)
            } else {
                let request = roll.isMultiple(of: 2) ? "r\(random.next() % 1_000_000)" : nil
                pay(from, to, Int64(random.next() % 3000) + 1, request: request)
            }
        }
    }
}

/// The replayed state that matters, comparable as a whole.
struct LedgerSnapshot: Equatable {
    var lastSeq: Int64
    var eventCount: Int
    var totalMoney: Centavos
    var machines: Ledger.Machines
    var transfers: Ledger.Transfers

    init(_ ledger: Ledger) {
        lastSeq = ledger.lastSeq
        eventCount = ledger.eventCount
        totalMoney = ledger.totalMoney
        machines = ledger.machines
        transfers = ledger.transfers
    }
}

/// Polls `condition` until it holds or `seconds` pass.
func waitUntil(seconds: Double = 5, _ condition: () async -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try await Task.sleep(for: .milliseconds(2))
    }
    return await condition()
}

struct InjectedFailure: Error {}

/// The real file underneath, with faults a test switches on: a failing
/// append, a short write, a failing sync, and a gate that holds syncs.
final class FaultyStorage: JournalStorage {
    enum Fault: Sendable {
        case none
        case appendFails
        /// Writes the first `bytes` of the next append, then fails.
        case shortWrite(bytes: Int)
        case syncFails
    }

    private struct State {
        var fault = Fault.none
        var syncs = 0
        var gateClosed = false
        var syncsEntered = 0
    }

    private let file: PosixJournalStorage
    private let state = Locked(State())
    private let gate = DispatchSemaphore(value: 0)
    /// Whether the writer may run a batch on the appending thread; off by
    /// default, since a closed gate would then hold that thread.
    let syncsOnCaller: Bool

    init(path: String, syncsOnCaller: Bool = false) throws {
        file = try PosixJournalStorage(path: path)
        self.syncsOnCaller = syncsOnCaller
    }

    func inject(_ fault: Fault) { state.withLock { $0.fault = fault } }

    var syncs: Int { state.withLock { $0.syncs } }
    var syncsEntered: Int { state.withLock { $0.syncsEntered } }

    /// From now on a sync blocks until `openGate()`.
    func closeGate() { state.withLock { $0.gateClosed = true } }

    func openGate() {
        state.withLock { $0.gateClosed = false }
        gate.signal()
    }

    func append(_ bytes: [UInt8]) throws {
        switch state.withLock({ $0.fault }) {
        case .appendFails:
            throw JournalError.io("write: injected failure")
        case let .shortWrite(count):
            try file.append(Array(bytes.prefix(count)))
            throw JournalError.io("write: injected short write")
        case .none, .syncFails:
            try file.append(bytes)
        }
    }

    func sync() throws {
        let (fault, mustWait) = state.withLock { state in
            state.syncsEntered += 1
            return (state.fault, state.gateClosed)
        }
        if mustWait { gate.wait() }
        if case .syncFails = fault { throw JournalError.io("sync: injected failure") }
        try file.sync()
        state.withLock { $0.syncs += 1 }
    }

    func truncate(to offset: Int64) throws { try file.truncate(to: offset) }
    func size() throws -> Int64 { try file.size() }
}

/// Opens `directory` with a `FaultyStorage` and hands back both.
func openFaulty(
    _ directory: TemporaryDirectory, syncsOnCaller: Bool = false
) throws -> (OpenedJournal, FaultyStorage) {
    let box = Locked<FaultyStorage?>(nil)
    let opened = try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime) { path in
        let storage = try FaultyStorage(path: path, syncsOnCaller: syncsOnCaller)
        box.withLock { $0 = storage }
        return storage
    }
    return (opened, try #require(box.withLock { $0 }))
}

/// The one owner that appends in seq order, as the server's ledger actor does.
actor JournalOwner {
    private var driver: LedgerDriver
    private let writer: JournalWriter

    init(ledger: Ledger, writer: JournalWriter) {
        driver = LedgerDriver(ledger: ledger)
        self.writer = writer
    }

    /// Registers a machine and returns its event's seq.
    func register(_ name: String) -> Int64? {
        guard let event = driver.register(name) else { return nil }
        writer.append(event)
        return event.seq
    }

    var ledger: Ledger { driver.ledger }
}
