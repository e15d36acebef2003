import CarteiraTestSupport
import CarteiraCore
import Testing

/// A deliberately tiny reference model of the ledger rules, written straight
/// from PROTOCOL.md and sharing no code with `Ledger`.
struct ReferenceModel {
    struct KeyInfo {
        var owner: String
        var expires: Int64
        var replacedAt: Int64?
    }

    struct FirstTransfer {
        var keyText: String
        var amount: Int64
        var tx: TxID
    }

    enum Outcome: Equatable {
        case accept(from: String, to: String, key: String, amount: Int64)
        case alreadyDone(TxID)
        case reject(ErrorCode)
    }

    let ttlMilliseconds: Int64
    let graceMilliseconds: Int64
    var balances: [String: Int64] = [:]
    var currentKey: [String: String] = [:]
    var keys: [String: KeyInfo] = [:]
    var requests: [String: FirstTransfer] = [:]
    var totalMoney: Int64 = 0
    var lastSeq: Int64 = 0

    func register(_ name: String) -> Outcome? {
        balances[name] == nil ? nil : .reject(.machineExists)
    }

    mutating func registered(_ name: String, key: String, balance: Int64, at now: Int64) {
        balances[name] = balance
        totalMoney += balance
        issue(key, to: name, at: now)
    }

    mutating func rotated(_ name: String, key: String, at now: Int64) {
        if let old = currentKey[name] { keys[old]?.replacedAt = now }
        issue(key, to: name, at: now)
    }

    private mutating func issue(_ key: String, to name: String, at now: Int64) {
        currentKey[name] = key
        keys[key] = KeyInfo(owner: name, expires: now + ttlMilliseconds)
        lastSeq += 1
    }

    /// Machines whose current key has reached its expiry, by name.
    func dueForRotation(at now: Int64) -> [String] {
        currentKey.filter { now >= keys[$0.value]?.expires ?? .max }.map(\.key).sorted()
    }

    func send(from: String, keyText: String, amount: Int64, id: String?, at now: Int64) -> Outcome {
        guard let balance = balances[from] else { return .reject(.notLoggedIn) }
        let keyText = keyText.lowercased()
        if let id, let first = requests[from + " " + id] {
            return first.keyText == keyText && first.amount == amount
                ? .alreadyDone(first.tx) : .reject(.requestIDReused)
        }
        guard let key = keys[keyText] else { return .reject(.unknownKey) }
        let stopped = min(key.replacedAt ?? key.expires, key.expires)
        if now > stopped + graceMilliseconds { return .reject(.expiredKey) }
        if key.owner == from { return .reject(.selfTransfer) }
        if balance < amount { return .reject(.insufficientFunds) }
        return .accept(from: from, to: key.owner, key: keyText, amount: amount)
    }

    mutating func sent(from: String, to: String, keyText: String, amount: Int64, id: String?) {
        lastSeq += 1
        balances[from, default: 0] -= amount
        balances[to, default: 0] += amount
        if let id {
            requests[from + " " + id] = FirstTransfer(
                keyText: keyText.lowercased(), amount: amount, tx: TxID(seq: lastSeq))
        }
    }
}

extension Decision {
    func outcome() -> ReferenceModel.Outcome? {
        switch self {
        case let .accept(event):
            guard let transfer = event.transfer else { return nil }
            return .accept(
                from: transfer.from.text, to: transfer.to.text, key: transfer.key.text, amount: transfer.amount.value)
        case let .alreadyDone(tx): return .alreadyDone(tx)
        case let .reject(rejection): return .reject(rejection.code)
        }
    }
}

@Suite("Ledger against a reference model, with seeded random command sequences")
struct LedgerModelTests {
    static let names = (0..<7).map { "m\($0)" }

    @Test(
        "random commands keep money conserved and non-negative, agree with the model, and replay to the same state",
        arguments: [1, 2, 3, 0x5EED, 0xDEAD_BEEF, 2026] as [UInt64])
    func randomSequence(seed: UInt64) throws {
        let policy = KeyPolicy(ttlSeconds: 30, graceSeconds: 10)
        var driver = try LedgerDriver(policy: policy, seed: seed ^ 0xA5A5)
        var model = ReferenceModel(ttlMilliseconds: 30_000, graceMilliseconds: 10_000)
        var random = SplitMix64(seed: seed)
        var issued: [String] = []
        // Which answers the run produced, so a generator that stopped reaching a rule fails loudly.
        var seen: Set<String> = []
        var sentWithID: [(String, String, Int64, String?)] = []

        for step in 0..<3_000 {
            let context = Comment(rawValue: "seed \(seed) step \(step)")
            let now = driver.now.milliseconds
            let roll = random.next() % 100
            switch roll {
            case 0..<6:
                let name = random.pick(Self.names) ?? "m0"
                let balance = [0, 10_000, Int64(random.next() % 20_000)][Int(random.next() % 3)]
                let key = driver.freshKey()
                let decision = try driver.run(
                    .register(
                        machine: machine(name), tokenDigest: driver.freshDigest(), key: key,
                        initialBalance: Centavos(balance)))
                seen.insert(decision.code?.rawValue ?? "registered")
                if let expected = model.register(name) {
                    try #require(decision.outcome() == expected, context)
                } else {
                    try #require(decision.event != nil, context)
                    model.registered(name, key: key.text, balance: balance, at: now)
                    issued.append(key.text)
                }
            case 6..<12:
                let name = random.pick(Self.names) ?? "m0"
                let key = driver.freshKey()
                let reason = random.pick(KeyRotationReason.allCases) ?? .request
                let decision = try driver.run(.rotateKey(machine: machine(name), newKey: key, reason: reason))
                if model.balances[name] == nil {
                    try #require(decision.code == .unknownMachine, context)
                } else {
                    try #require(decision.event != nil, context)
                    model.rotated(name, key: key.text, at: now)
                    issued.append(key.text)
                }
            case 12..<25:
                driver.advance(milliseconds: Int64(random.next() % 8_000))
                let due = driver.ledger.machinesWithExpiredKeys(at: driver.now).map(\.text)
                try #require(due == model.dueForRotation(at: driver.now.milliseconds), context)
                for name in due {
                    let key = try driver.rotate(name, reason: .expired)
                    model.rotated(name, key: key.text, at: driver.now.milliseconds)
                    issued.append(key.text)
                }
                driver.ledger.refreshEarliestExpiry()
            default:
                var (from, keyText, amount, id) = nextSend(&random, model: model, driver: &driver, issued: issued)
                // Some sends retry an earlier request with an id, as a client does after a dropped connection.
                if random.next() % 8 == 0, let retry = random.pick(sentWithID) {
                    (from, keyText, amount, id) = retry
                }
                let expected = model.send(from: from, keyText: keyText, amount: amount, id: id, at: now)
                let decision = try driver.send(from, to: keyText, amount, id: id)
                seen.insert(decision.code?.rawValue ?? (decision.event == nil ? "already_done" : "accept"))
                try #require(
                    decision.outcome() == expected, "\(context): SEND \(from) \(keyText) \(amount) \(id ?? "-")")
                if case let .accept(_, to, _, _) = expected {
                    model.sent(from: from, to: to, keyText: keyText, amount: amount, id: id)
                    if id != nil { sentWithID.append((from, keyText, amount, id)) }
                }
            }

            try #require(driver.ledger.lastSeq == model.lastSeq, context)
            try #require(driver.ledger.checkInvariants() == nil, context)
            try #require(driver.ledger.totalMoney.value == model.totalMoney, context)
            try #require(model.balances.values.reduce(0, +) == model.totalMoney, context)
            try #require(driver.ledger.machines.count == model.balances.count, context)
            for (name, balance) in model.balances {
                try #require(balance >= 0, context)
                try #require(try driver.balance(of: name) == balance, "\(context): balance of \(name)")
            }
        }

        let expectedAnswers: Set<String> = [
            "accept", "already_done", "registered", "machine_exists", "not_logged_in", "request_id_reused",
            "unknown_key",
            "expired_key", "self_transfer", "insufficient_funds",
        ]
        #expect(
            expectedAnswers.subtracting(seen).isEmpty,
            "seed \(seed) never produced \(expectedAnswers.subtracting(seen))")
        try expectReplayMatches(driver, policy: policy, issued: issued, seed: seed)
    }

    /// A random `SEND`: any name as payer (maybe unregistered), a key that is
    /// current, old, never issued, malformed, upper-cased or the payer's own,
    /// often the payer's whole balance, sometimes with a request id.
    func nextSend(
        _ random: inout SplitMix64, model: ReferenceModel, driver: inout LedgerDriver, issued: [String]
    ) -> (String, String, Int64, String?) {
        let from = random.pick(Self.names) ?? "m0"
        let registered = model.balances.keys.sorted()
        let keyText: String
        switch random.next() % 20 {
        case 0..<8: keyText = random.pick(registered).flatMap { model.currentKey[$0] } ?? "none"
        case 8..<12: keyText = random.pick(issued) ?? "none"
        case 12: keyText = driver.freshKey().text
        case 13: keyText = "not-a-key"
        case 14, 15: keyText = (random.pick(issued) ?? "none").uppercased()
        default: keyText = model.currentKey[from] ?? "none"
        }
        let balance = model.balances[from] ?? 0
        let amount = random.next() % 10 < 3 && balance > 0 ? balance : 1 + Int64(random.next() % 6_000)
        let id = random.next() % 10 < 4 ? "r\(random.next() % 6)" : nil
        return (from, keyText, amount, id)
    }

    /// Replays the journal the driver produced into a fresh ledger and compares every visible part of the state.
    func expectReplayMatches(_ driver: LedgerDriver, policy: KeyPolicy, issued: [String], seed: UInt64) throws {
        let context = Comment(rawValue: "seed \(seed) replay")
        var replayed = Ledger(policy: policy)
        for event in driver.events {
            try replayed.apply(event)
        }
        let live = driver.ledger
        #expect(replayed.lastSeq == live.lastSeq, context)
        #expect(replayed.eventCount == live.eventCount, context)
        #expect(replayed.totalMoney == live.totalMoney, context)
        #expect(replayed.machines == live.machines, context)
        #expect(replayed.transfers == live.transfers, context)
        #expect(replayed.history(limit: 1_000) == live.history(limit: 1_000), context)
        for name in live.machines.keys {
            #expect(replayed.history(of: name, limit: 1_000) == live.history(of: name, limit: 1_000), context)
        }
        for moment in [driver.now, driver.now.adding(seconds: 5), driver.now.adding(seconds: 60)] {
            #expect(replayed.machinesWithExpiredKeys(at: moment) == live.machinesWithExpiredKeys(at: moment), context)
            for text in issued {
                let key = try #require(PaymentKey(text))
                #expect(replayed.knowsKey(key), context)
                #expect(
                    replayed.owner(ofKey: KeyText(text), at: moment) == live.owner(ofKey: KeyText(text), at: moment),
                    "\(context): key \(text)")
            }
        }
        #expect(live.transfers.count > 100, "the sequence should exercise many transfers; \(context)")
    }
}
