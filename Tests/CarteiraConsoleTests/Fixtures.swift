import CarteiraConsole
import CarteiraCore
import CarteiraTerminal
import CarteiraTestSupport
import Foundation
import Testing

/// A real ledger with three machines and two transfers, times in UTC.
enum Fixture {
    static let alphaKey = fixture(
        PaymentKey("11111111-1111-4111-8111-111111111111"), "11111111-1111-4111-8111-111111111111")
    static let betaKey = fixture(
        PaymentKey("22222222-2222-4222-9222-222222222222"), "22222222-2222-4222-9222-222222222222")
    static let gammaKey = fixture(
        PaymentKey("33333333-3333-4333-a333-333333333333"), "33333333-3333-4333-a333-333333333333")
    static let rotatedKey = fixture(
        PaymentKey("44444444-4444-4444-b444-444444444444"), "44444444-4444-4444-b444-444444444444")
    static let alpha = fixture(MachineName("alpha"), "alpha")
    static let beta = fixture(MachineName("beta"), "beta")
    static let gamma = fixture(MachineName("gamma"), "gamma")
    static let headHash = String(repeating: "ab", count: 32)

    /// 2026-11-26 19:00:00 UTC plus `seconds`.
    static func at(_ seconds: Int64) -> Timestamp {
        fixture(Timestamp(iso8601: "2026-11-26T19:00:00.000Z"), "the start time").adding(seconds: seconds)
    }

    static func ledger() throws -> Ledger {
        var ledger = Ledger()
        for event in events() { try ledger.apply(event) }
        return ledger
    }

    static func events() -> [Event] {
        let digest = fixture(TokenDigest(String(repeating: "a", count: 64)), "the token digest")
        func register(_ seq: Int64, _ name: MachineName, _ key: PaymentKey) -> Event {
            Event(
                seq: seq, at: at(seq),
                kind: .registered(
                    Event.Registration(
                        machine: name, key: key, expires: at(seq + 180), tokenDigest: digest,
                        balance: Centavos(10_000))))
        }
        func transfer(
            _ seq: Int64, _ from: MachineName, _ to: MachineName, _ key: PaymentKey, _ cents: Int64, _ id: String?
        )
            -> Event
        {
            Event(
                seq: seq, at: at(seq),
                kind: .transfer(
                    Event.Transfer(
                        tx: TxID(seq: seq), from: from, to: to, key: key, amount: Centavos(cents),
                        requestID: id.flatMap { RequestID($0) })))
        }
        return [
            Event(seq: 0, at: at(0), kind: .genesis),
            register(1, alpha, alphaKey),
            register(2, beta, betaKey),
            register(3, gamma, gammaKey),
            transfer(4, alpha, beta, betaKey, 1234, "pay-1"),
            transfer(5, beta, alpha, alphaKey, 50, nil),
        ]
    }
}

/// A backend over a real `Ledger` that records what the console asked.
actor FakeBackend: ConsoleBackend {
    private let state: Ledger
    private(set) var rotations: [MachineName] = []
    private(set) var shutdowns = 0
    var verifyResult: Result<ConsoleReport, JournalVerifyFailure> = .success(
        ConsoleReport(
            text: "journal ok: 6 events, 3 machines",
            rows: Rows(
                fields: [Field("events", "events"), Field("verdict", "verdict")], rows: [[.integer(6), .text("ok")]]),
            passed: true))

    init(ledger: Ledger) {
        self.state = ledger
    }

    func ledger() async -> Ledger { state }

    func sessions() async -> [ConsoleSession] {
        [
            ConsoleSession(
                remoteAddress: "127.0.0.1:50001", machine: Fixture.alpha, connectedAt: Fixture.at(10),
                requestsServed: 12),
            {
                var scanner = ConsoleSession(
                    remoteAddress: "127.0.0.1:50002", machine: nil, connectedAt: Fixture.at(20), requestsServed: 0)
                scanner.rateLimited = "address"
                return scanner
            }(),
        ]
    }

    func statistics() async -> ConsoleStatistics {
        var statistics = ConsoleStatistics(
            journalPath: "/var/lib/carteira/journal.log", journalSizeBytes: 2048, lastSeq: 5,
            lastHash: Fixture.headHash, syncs: 4,
            eventsSynced: 6, requestsLastMinute: 90, uptimeSeconds: 3725, startedAt: Fixture.at(-3725))
        statistics.rateLimitedRefusals = 7
        statistics.limitedConnections = 1
        statistics.limitedAddresses = ["127.0.0.1", "192.0.2.7"]
        return statistics
    }

    func rotateKey(of machine: MachineName) async -> Result<(PaymentKey, Timestamp), Rejection> {
        guard state.machines[machine] != nil else {
            return .failure(Rejection(.unknownMachine, "no machine named \(machine)"))
        }
        rotations.append(machine)
        return .success((Fixture.rotatedKey, Fixture.at(600)))
    }

    func verifyJournal() async -> Result<ConsoleReport, JournalVerifyFailure> { verifyResult }

    func setVerifyResult(_ result: Result<ConsoleReport, JournalVerifyFailure>) { verifyResult = result }

    /// The fixture's events up to the point, applied to a new ledger (as the
    /// server replays the journal's prefix).
    func ledger(at point: PointInTime) async -> Result<Ledger, JournalVerifyFailure> {
        var ledger = Ledger()
        for event in Fixture.events() {
            switch point {
            case let .seq(seq) where event.seq > seq: return .success(ledger)
            case let .time(time) where event.at > time: return .success(ledger)
            default: break
            }
            do { try ledger.apply(event) } catch { return .failure(JournalVerifyFailure("\(error)")) }
        }
        if case let .seq(seq) = point, seq > ledger.lastSeq {
            return .failure(JournalVerifyFailure("the journal ends at seq \(ledger.lastSeq), before seq \(seq)"))
        }
        return .success(ledger)
    }

    func shutdown() async { shutdowns += 1 }
}

func makeInterpreter() throws -> (ConsoleInterpreter, FakeBackend) {
    let backend = FakeBackend(ledger: try Fixture.ledger())
    return (ConsoleInterpreter(backend: backend, time: TerminalTime.utc), backend)
}

/// The JSON output parsed back: one array of objects.
func parseJSONArray(_ text: String) throws -> [[String: Any]] {
    let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(value as? [[String: Any]])
}
