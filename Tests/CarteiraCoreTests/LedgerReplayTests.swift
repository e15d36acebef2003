import CarteiraTestSupport
import CarteiraCore
import Testing

/// A replayed ledger with alice and bob registered (R$ 100,00 each) and one
/// transfer alice → bob of R$ 10,00 with request id `pay-1`: the state every
/// bad event below is applied to.
struct ReplayBase {
    var ledger: Ledger
    let at = startTime.adding(seconds: 10)
    let alice: MachineName
    let bob: MachineName
    let aliceKey: PaymentKey
    let bobKey: PaymentKey
    let digest: TokenDigest
    let firstTx = TxID(seq: 3)

    init() throws {
        var random = SplitMix64(seed: 7)
        alice = try machine("alice")
        bob = try machine("bob")
        aliceKey = PaymentKey(randomBytes: random.bytes(16))
        bobKey = PaymentKey(randomBytes: random.bytes(16))
        digest = try #require(TokenDigest(lowerHex(random.bytes(32))))
        let expires = startTime.adding(seconds: 180)
        ledger = Ledger()
        try ledger.apply(Event(seq: 0, at: startTime, kind: .genesis))
        try ledger.apply(
            Event(
                seq: 1, at: startTime,
                kind: .registered(
                    .init(
                        machine: alice, key: aliceKey, expires: expires, tokenDigest: digest, balance: Centavos(10_000))
                )))
        try ledger.apply(
            Event(
                seq: 2, at: startTime,
                kind: .registered(
                    .init(machine: bob, key: bobKey, expires: expires, tokenDigest: digest, balance: Centavos(10_000))))
        )
        try ledger.apply(
            Event(
                seq: 3, at: startTime,
                kind: .transfer(
                    .init(
                        tx: firstTx, from: alice, to: bob, key: bobKey, amount: Centavos(1_000),
                        requestID: try requestID("pay-1")))))
    }

    var next: Int64 { ledger.lastSeq + 1 }

    func transfer(
        seq: Int64? = nil, tx: TxID? = nil, from: MachineName? = nil, to: MachineName? = nil, key: PaymentKey? = nil,
        amount: Int64 = 100, requestID: RequestID? = nil
    ) -> Event {
        let seq = seq ?? next
        let transfer = Event.Transfer(
            tx: tx ?? TxID(seq: seq), from: from ?? alice, to: to ?? bob, key: key ?? bobKey, amount: Centavos(amount),
            requestID: requestID)
        return Event(seq: seq, at: at, kind: .transfer(transfer))
    }

    func registration(_ name: MachineName, key: PaymentKey, balance: Int64 = 10_000) -> Event {
        Event(
            seq: next, at: at,
            kind: .registered(
                .init(
                    machine: name, key: key, expires: at.adding(seconds: 180), tokenDigest: digest,
                    balance: Centavos(balance))))
    }

    func rotation(_ name: MachineName, key: PaymentKey) -> Event {
        Event(
            seq: next, at: at,
            kind: .keyRotated(.init(machine: name, key: key, expires: at.adding(seconds: 180), reason: .request)))
    }
}

/// One event that breaks a ledger rule.
struct ViolationCase: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let event: @Sendable (ReplayBase) throws -> Event

    init(_ description: String, _ event: @escaping @Sendable (ReplayBase) throws -> Event) {
        self.testDescription = description
        self.event = event
    }
}

let unissuedKey = PaymentKey(randomBytes: Array(repeating: 0x5A, count: 16))

let violations: [ViolationCase] = [
    ViolationCase("seq gap") { $0.transfer(seq: $0.next + 1) },
    ViolationCase("seq repeated") { $0.transfer(seq: $0.next - 1) },
    ViolationCase("seq going back to zero") { $0.transfer(seq: 0) },
    ViolationCase("a second genesis") { Event(seq: $0.next, at: $0.at, kind: .genesis) },
    ViolationCase("registering a name twice") { $0.registration($0.alice, key: unissuedKey) },
    ViolationCase("registering with a key already issued") { $0.registration(try machine("carol"), key: $0.aliceKey) },
    ViolationCase("registering with a negative balance") {
        $0.registration(try machine("carol"), key: unissuedKey, balance: -1)
    },
    ViolationCase("registering more money than can be counted") {
        $0.registration(try machine("carol"), key: unissuedKey, balance: Int64.max)
    },
    ViolationCase("a transfer from an unknown machine") { $0.transfer(from: try machine("ghost")) },
    ViolationCase("a transfer to an unknown machine") { $0.transfer(to: try machine("ghost")) },
    ViolationCase("a transfer to itself") { $0.transfer(to: $0.alice, key: $0.aliceKey) },
    ViolationCase("a transfer of zero") { $0.transfer(amount: 0) },
    ViolationCase("a transfer of a negative amount") { $0.transfer(amount: -100) },
    ViolationCase("a transfer that overdraws the payer") { $0.transfer(amount: 9_001) },
    ViolationCase("a transfer through a key the payee never had") { $0.transfer(key: $0.aliceKey) },
    ViolationCase("a transfer through a key never issued") { $0.transfer(key: unissuedKey) },
    ViolationCase("a transfer repeating a tx id") { $0.transfer(tx: $0.firstTx) },
    ViolationCase("a transfer repeating the payer's request id") { $0.transfer(requestID: try requestID("pay-1")) },
    ViolationCase("a key rotation for an unknown machine") { $0.rotation(try machine("ghost"), key: unissuedKey) },
    ViolationCase("a key rotation to a key already issued") { $0.rotation($0.alice, key: $0.bobKey) },
    ViolationCase("a key rotation back to the machine's own current key") { $0.rotation($0.alice, key: $0.aliceKey) },
]

@Suite("Ledger replay: apply refuses events that break a rule")
struct LedgerReplayTests {
    @Test(
        "an event breaking a ledger rule throws a LedgerViolation and leaves the state as it was", arguments: violations
    )
    func violation(_ violation: ViolationCase) throws {
        var base = try ReplayBase()
        let event = try violation.event(base)
        let machinesBefore = base.ledger.machines
        let transfersBefore = base.ledger.transfers
        let seqBefore = base.ledger.lastSeq
        let countBefore = base.ledger.eventCount
        #expect(throws: LedgerViolation.self) { try base.ledger.apply(event) }
        #expect(base.ledger.machines == machinesBefore)
        #expect(base.ledger.transfers == transfersBefore)
        #expect(base.ledger.lastSeq == seqBefore)
        #expect(base.ledger.eventCount == countBefore)
        #expect(base.ledger.totalMoney == Centavos(20_000))
        #expect(base.ledger.checkInvariants() == nil)
    }

    @Test("the base events themselves replay, and so do valid events of every kind after them")
    func validEventsApply() throws {
        var base = try ReplayBase()
        #expect(base.ledger.eventCount == 4)
        try base.ledger.apply(base.transfer(amount: 9_000))
        #expect(base.ledger.machines[base.alice]?.balance == .zero)
        // Another machine may use alice's request id.
        try base.ledger.apply(
            base.transfer(from: base.bob, to: base.alice, key: base.aliceKey, requestID: try requestID("pay-1")))
        try base.ledger.apply(base.rotation(base.bob, key: unissuedKey))
        // A replaced key still names its owner on replay, whatever the time.
        try base.ledger.apply(base.transfer(key: base.bobKey, amount: 100))
        try base.ledger.apply(
            base.registration(
                try machine("carol"), key: PaymentKey(randomBytes: Array(repeating: 1, count: 16)), balance: 0))
        #expect(base.ledger.totalMoney == Centavos(20_000))
        #expect(base.ledger.checkInvariants() == nil)
        #expect(base.ledger.lastSeq == 8)
    }

    @Test("any event before the genesis line is refused, and so is a genesis that is not seq 0")
    func beforeGenesis() throws {
        let base = try ReplayBase()
        let events: [Event] = [
            Event(
                seq: 0, at: startTime,
                kind: .registered(
                    .init(
                        machine: base.alice, key: base.aliceKey, expires: startTime, tokenDigest: base.digest,
                        balance: .zero))),
            Event(
                seq: 0, at: startTime,
                kind: .keyRotated(.init(machine: base.alice, key: base.aliceKey, expires: startTime, reason: .admin))),
            Event(
                seq: 0, at: startTime,
                kind: .transfer(
                    .init(
                        tx: TxID(seq: 0), from: base.alice, to: base.bob, key: base.bobKey, amount: Centavos(1),
                        requestID: nil))),
            Event(seq: 1, at: startTime, kind: .genesis),
        ]
        for event in events {
            var ledger = Ledger()
            #expect(throws: LedgerViolation.self, "\(event)") { try ledger.apply(event) }
            #expect(ledger.lastSeq == -1)
            #expect(ledger.machines.isEmpty)
        }
    }
}
