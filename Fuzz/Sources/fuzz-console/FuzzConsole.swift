import CarteiraConsole
import CarteiraTerminal
import CarteiraCore
import Dispatch
import Foundation
import FuzzSupport
import Synchronization

/// Fuzzes the console's command-line parsing through its public entry,
/// `ConsoleInterpreter.run(_:)`, against a fixed backend (three machines,
/// two transfers), and its Tab completion, `ConsoleCompletion.candidates`.
///
/// Properties: the same line gives the same output; only `quit` (or
/// `exit`, `\q`) and `shutdown`, in any case, stop anything; JSON printed
/// as output parses (a refusal is text on the diagnostics stream); every
/// completion candidate starts with the word being completed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConsole(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = fuzzBytes(data, size)
    let end = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
    let line = String(decoding: bytes[..<end], as: UTF8.self)
    let output = runBlocking(line)
    fuzzCheck(runBlocking(line) == output, "console output for \(line.debugDescription) is not deterministic")
    let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
    let command = commandWord(line)
    switch output.action {
    case .continue: break
    // Command names are case-insensitive; `exit` and `\q` are `quit`.
    case .quit: fuzzCheck(["quit", "exit", "\\q"].contains(command), "\(line.debugDescription) quits")
    case .shutdown: fuzzCheck(command == "shutdown", "\(line.debugDescription) shuts down")
    }
    // JSON was asked for and printed as output. A refusal goes to the
    // diagnostics stream and is text for people, even when it starts with
    // `[` because it begins with (a shortened copy of) the argument it refuses.
    let asksJSON =
        words.contains("--format=json") || zip(words, words.dropFirst()).contains { $0 == "--format" && $1 == "json" }
    if asksJSON && output.stream == .output && (output.text.hasPrefix("[") || output.text.hasPrefix("{")) {
        let parsed = try? JSONSerialization.jsonObject(with: Data(output.text.utf8))
        fuzzCheck(
            parsed != nil, "\(line.debugDescription) printed JSON that does not parse: \(output.text.prefix(200))")
    }
    // Completion: the last word is the one being completed.
    let split = line.lastIndex(where: { $0 == " " || $0 == "\t" }).map { line.index(after: $0) } ?? line.startIndex
    let word = String(line[split...])
    let candidates = ConsoleCompletion.candidates(
        lineBeforeWord: String(line[..<split]), word: word, machines: Fixture.machines, keys: Fixture.keys)
    fuzzCheck(candidates.allSatisfy { $0.hasPrefix(word) }, "completing \(word.debugDescription) offered \(candidates)")
    return 0
}

/// The command word as the console reads it, lower case: the first word,
/// without the quotes that may hold it (`'quit'` is `quit`, as
/// `consoleWords` splits it). Written out here rather than called: the
/// check is a model of the console's reading, and `consoleWords` is
/// internal to the root package.
func commandWord(_ line: String) -> String? {
    let rest = line.drop(while: { $0 == " " || $0 == "\t" })
    guard let first = rest.first else { return nil }
    guard first == "\"" || first == "'" else {
        return String(rest.prefix(while: { $0 != " " && $0 != "\t" })).lowercased()
    }
    let quoted = rest.dropFirst()
    return quoted.firstIndex(of: first).map { String(quoted[..<$0]).lowercased() }
}

/// Runs one line on a fresh interpreter from libFuzzer's synchronous
/// callback: fresh, because `\x` and `\timing` are settings a line changes,
/// and a fixed clock, so `\timing`'s figure is the same every time.
func runBlocking(_ line: String) -> ConsoleOutput {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<ConsoleOutput?>(nil)
    Task {
        let interpreter = ConsoleInterpreter(
            backend: FixedBackend(ledger: Fixture.ledger), time: TerminalTime.utc, clock: { 0 })
        let output = await interpreter.run(line)
        result.withLock { $0 = output }
        done.signal()
    }
    done.wait()
    guard let output = result.withLock({ $0 }) else { fatalError("the interpreter task ended without output") }
    return output
}

/// A fixture's constant, which always parses.
func constant<T>(_ value: T?, _ what: String) -> T {
    guard let value else { fatalError("fixture constant \(what) does not parse") }
    return value
}

enum Fixture {
    static let machines = ["alpha", "beta", "gamma"].map { constant(MachineName($0), $0) }
    static let keys = [
        "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-9222-222222222222",
        "33333333-3333-4333-a333-333333333333",
    ].map { constant(PaymentKey($0), $0) }
    static let rotatedKey = constant(PaymentKey("44444444-4444-4444-b444-444444444444"), "the rotated key")
    static let start = Timestamp(milliseconds: 1_795_000_000_000)

    /// Built with the public `Ledger.apply`, as replay builds it.
    static let ledger: Ledger = {
        let digest = constant(TokenDigest(String(repeating: "a", count: 64)), "the token digest")
        var events = [Event(seq: 0, at: start, kind: .genesis)]
        for (index, (machine, key)) in zip(machines, keys).enumerated() {
            let seq = Int64(index + 1)
            events.append(
                Event(
                    seq: seq, at: start.adding(seconds: seq),
                    kind: .registered(
                        Event.Registration(
                            machine: machine, key: key, expires: start.adding(seconds: 180), tokenDigest: digest,
                            balance: Centavos(10_000)))))
        }
        for (seq, from, to, cents, id) in [(Int64(4), 0, 1, Int64(1234), "pay-1"), (5, 1, 0, 50, "")] {
            events.append(
                Event(
                    seq: seq, at: start.adding(seconds: seq),
                    kind: .transfer(
                        Event.Transfer(
                            tx: TxID(seq: seq), from: machines[from], to: machines[to], key: keys[to],
                            amount: Centavos(cents), requestID: RequestID(id)))))
        }
        var ledger = Ledger()
        for event in events {
            do { try ledger.apply(event) } catch { fatalError("fixture event \(event.seq) refused: \(error)") }
        }
        return ledger
    }()
}

/// A backend that answers from a fixed ledger and changes nothing, so every
/// run of a line sees the same state.
struct FixedBackend: ConsoleBackend {
    let state: Ledger

    init(ledger: Ledger) { self.state = ledger }

    func ledger() async -> Ledger { state }

    func sessions() async -> [ConsoleSession] {
        [
            ConsoleSession(
                remoteAddress: "127.0.0.1:50001", machine: Fixture.machines[0], connectedAt: Fixture.start,
                requestsServed: 12),
            ConsoleSession(remoteAddress: "[::1]:50002", machine: nil, connectedAt: Fixture.start, requestsServed: 0),
        ]
    }

    func statistics() async -> ConsoleStatistics {
        ConsoleStatistics(
            journalPath: "journal/ledger.journal", journalSizeBytes: 2048, lastSeq: 5,
            lastHash: String(repeating: "a", count: 64), syncs: 4, eventsSynced: 6, requestsLastMinute: 90,
            uptimeSeconds: 3725, startedAt: Fixture.start)
    }

    func rotateKey(of machine: MachineName) async -> Result<(PaymentKey, Timestamp), Rejection> {
        guard state.machines[machine] != nil else {
            return .failure(Rejection(.unknownMachine, "no machine named \(machine)"))
        }
        return .success((Fixture.rotatedKey, Fixture.start.adding(seconds: 600)))
    }

    /// Any point in time sees the same fixed ledger.
    func ledger(at point: PointInTime) async -> Result<Ledger, JournalVerifyFailure> { .success(state) }

    func verifyJournal() async -> Result<ConsoleReport, JournalVerifyFailure> {
        .success(
            ConsoleReport(
                text: "journal ok: 6 events, 3 machines",
                rows: Rows(
                    fields: [Field("events", "events"), Field("verdict", "verdict")],
                    rows: [[.integer(6), .text("ok")]]),
                passed: true))
    }

    func shutdown() async {}
}
