import CarteiraCore
import Testing

@Suite("Ledger rules: registration and login")
struct RegistrationTests {
    @Test("registering creates the machine with the initial balance and a key that expires one TTL later")
    func registerCreatesMachine() throws {
        var driver = try LedgerDriver(policy: KeyPolicy(ttlSeconds: 180, graceSeconds: 30))
        let alice = try driver.register("alice")
        #expect(alice.balance == Centavos(10_000))
        #expect(alice.keyExpires == startTime.adding(seconds: 180))
        #expect(alice.registeredAt == startTime)
        #expect(alice.transferCount == 0)
        #expect(driver.ledger.totalMoney == Centavos(10_000))
        #expect(driver.ledger.lastSeq == 1)
        #expect(driver.check(alice.key) == "alice")
        let event = try #require(driver.events.last)
        guard case let .registered(registration) = event.kind else {
            Issue.record("expected a registration, got \(event)")
            return
        }
        #expect(registration.balance == Centavos(10_000))
        #expect(registration.key == alice.key)
        #expect(registration.tokenDigest == alice.tokenDigest)
    }

    @Test("an initial balance of zero is allowed and a negative one is bad_amount")
    func initialBalanceBounds() throws {
        var driver = try LedgerDriver()
        #expect(try driver.register("zero", balance: 0).balance == .zero)
        let decision = try driver.run(
            .register(
                machine: machine("minus"), tokenDigest: driver.freshDigest(), key: driver.freshKey(),
                initialBalance: Centavos(-1)))
        #expect(decision.code == .badAmount)
        #expect(driver.ledger.machines[try machine("minus")] == nil)
    }

    @Test("an initial balance that would overflow the total money is bad_amount")
    func initialBalanceOverflow() throws {
        var driver = try LedgerDriver()
        try driver.register("rich", balance: Int64.max)
        let decision = try driver.run(
            .register(
                machine: machine("one-more"), tokenDigest: driver.freshDigest(), key: driver.freshKey(),
                initialBalance: Centavos(1)))
        #expect(decision.code == .badAmount)
    }

    @Test("registering a taken name is machine_exists and changes nothing")
    func duplicateMachine() throws {
        var driver = try LedgerDriver()
        let first = try driver.register("alice")
        let seqBefore = driver.ledger.lastSeq
        let decision = try driver.run(
            .register(
                machine: machine("alice"), tokenDigest: driver.freshDigest(), key: driver.freshKey(),
                initialBalance: Centavos(10_000)))
        #expect(decision.code == .machineExists)
        #expect(driver.ledger.lastSeq == seqBefore)
        #expect(driver.ledger.machines[try machine("alice")] == first)
        #expect(driver.ledger.totalMoney == Centavos(10_000))
    }

    @Test("authenticate finds the machine with its token digest, and refuses unknown names, wrong and missing digests")
    func authenticate() throws {
        var driver = try LedgerDriver()
        let alice = try driver.register("alice")
        try driver.register("bob")
        let bob = try #require(driver.ledger.machines[try machine("bob")])

        #expect(try driver.ledger.authenticate(machine("alice"), tokenDigest: alice.tokenDigest).get() == alice)
        func code(_ name: String, _ digest: TokenDigest?) throws -> ErrorCode? {
            if case let .failure(rejection) = driver.ledger.authenticate(try machine(name), tokenDigest: digest) {
                return rejection.code
            }
            return nil
        }
        #expect(try code("carol", alice.tokenDigest) == .unknownMachine)
        #expect(try code("alice", bob.tokenDigest) == .badToken)
        #expect(try code("alice", nil) == .badToken)
        #expect(try code("alice", driver.freshDigest()) == .badToken)
    }

    @Test("rotating the key of an unknown machine is unknown_machine")
    func rotateUnknownMachine() throws {
        var driver = try LedgerDriver()
        let decision = try driver.run(.rotateKey(machine: machine("ghost"), newKey: driver.freshKey(), reason: .admin))
        #expect(decision.code == .unknownMachine)
        #expect(driver.ledger.lastSeq == 0)
    }
}

@Suite("Ledger rules: transfers")
struct TransferTests {
    @Test("a transfer moves the amount from payer to payee and records it for both, newest first")
    func transferMovesMoney() throws {
        var driver = try LedgerDriver()
        try driver.register("alice")
        let bob = try driver.register("bob")
        let decision = try driver.send("alice", to: bob.key, 5_000)
        let event = try #require(decision.event)
        let transfer = try #require(event.transfer)
        #expect(try driver.balance(of: "alice") == 5_000)
        #expect(try driver.balance(of: "bob") == 15_000)
        #expect(driver.ledger.totalMoney == Centavos(20_000))
        #expect(transfer.tx == TxID(seq: event.seq))
        #expect(transfer.from == (try machine("alice")))
        #expect(transfer.to == (try machine("bob")))
        #expect(transfer.key == bob.key)
        #expect(transfer.amount == Centavos(5_000))
        #expect(transfer.requestID == nil)
        #expect(driver.ledger.transfer(transfer.tx)?.transfer == transfer)

        driver.advance(seconds: 1)
        let second = try #require(try driver.send("bob", to: driver.key(of: "alice"), 1).event)
        let aliceHistory = driver.ledger.history(of: try machine("alice"), limit: 20).map(\.seq)
        #expect(aliceHistory == [second.seq, event.seq])
        #expect(driver.ledger.history(of: try machine("bob"), limit: 1).map(\.seq) == [second.seq])
        #expect(driver.ledger.history(limit: 20).map(\.seq) == [second.seq, event.seq])
        #expect(driver.ledger.machines[try machine("bob")]?.lastTransferAt == driver.now)
    }

    @Test("paying exactly the whole balance is allowed and leaves zero; one centavo more is insufficient_funds")
    func exactBalance() throws {
        var driver = try LedgerDriver()
        try driver.register("alice")
        let bob = try driver.register("bob")
        #expect(try driver.send("alice", to: bob.key, 10_001).code == .insufficientFunds)
        #expect(try driver.send("alice", to: bob.key, 10_000).event != nil)
        #expect(try driver.balance(of: "alice") == 0)
        #expect(try driver.send("alice", to: bob.key, 1).code == .insufficientFunds)
        #expect(try driver.balance(of: "bob") == 20_000)
    }

    @Test("paying one's own key is self_transfer")
    func selfTransfer() throws {
        var driver = try LedgerDriver()
        let alice = try driver.register("alice")
        #expect(try driver.send("alice", to: alice.key, 100).code == .selfTransfer)
        #expect(try driver.balance(of: "alice") == 10_000)
    }

    @Test("a key never issued, or text not of the UUID form, is unknown_key")
    func unknownKey() throws {
        var driver = try LedgerDriver()
        try driver.register("alice")
        let bob = try driver.register("bob")
        let neverIssued = driver.freshKey()
        for text in [
            neverIssued.text, "", "bob", "not-a-key", String(bob.key.text.dropLast()), bob.key.text + "0",
            "{\(bob.key.text)}", String(bob.key.text.filter { $0 != "-" }),
        ] {
            #expect(try driver.send("alice", to: text, 100).code == .unknownKey, "key text \(text)")
            #expect(driver.check(text) == "unknown_key", "key text \(text)")
        }
        #expect(try driver.balance(of: "alice") == 10_000)
    }

    @Test("a key written in upper case is the same key")
    func upperCaseKey() throws {
        var driver = try LedgerDriver()
        try driver.register("alice")
        let bob = try driver.register("bob")
        #expect(driver.check(bob.key.text.uppercased()) == "bob")
        #expect(try driver.send("alice", to: bob.key.text.uppercased(), 100).event != nil)
    }

    @Test("a zero or negative amount is bad_amount, never an event that apply would refuse")
    func nonPositiveAmount() throws {
        var driver = try LedgerDriver()
        try driver.register("alice")
        let bob = try driver.register("bob")
        #expect(try driver.send("alice", to: bob.key, 0).code == .badAmount)
        #expect(try driver.send("alice", to: bob.key, -500).code == .badAmount)
        #expect(try driver.balance(of: "alice") == 10_000)
    }

    @Test("a transfer from a machine that is not registered is not_logged_in")
    func unknownSender() throws {
        var driver = try LedgerDriver()
        let bob = try driver.register("bob")
        #expect(try driver.send("ghost", to: bob.key, 100).code == .notLoggedIn)
    }
}

@Suite("Ledger rules: key expiry and grace")
struct KeyGraceTests {
    static let policy = KeyPolicy(ttlSeconds: 180, graceSeconds: 30)

    @Test("a key replaced by the timer stays payable for the grace period counted from its expiry")
    func timerRotationGrace() throws {
        var driver = try LedgerDriver(policy: Self.policy)
        try driver.register("alice")
        let bob = try driver.register("bob")
        let expiry = bob.keyExpires
        driver.now = expiry.adding(milliseconds: -1)
        #expect(driver.ledger.machinesWithExpiredKeys(at: driver.now).isEmpty)
        // The timer runs a little late, as it may.
        driver.now = expiry.adding(seconds: 5)
        #expect(driver.ledger.machinesWithExpiredKeys(at: driver.now) == [try machine("alice"), try machine("bob")])
        let newKey = try driver.rotate("bob", reason: .expired)
        #expect(try driver.key(of: "bob") == newKey)
        #expect(driver.check(newKey) == "bob")

        driver.now = expiry.adding(seconds: 30)
        #expect(driver.check(bob.key) == "bob")
        #expect(try driver.send("alice", to: bob.key, 100).event != nil)
        driver.now = expiry.adding(seconds: 30).adding(milliseconds: 1)
        #expect(driver.check(bob.key) == "expired_key")
        #expect(try driver.send("alice", to: bob.key, 100).code == .expiredKey)
        #expect(try driver.send("alice", to: newKey, 100).event != nil)
    }

    @Test("a key replaced early by ROTATE stays payable for the grace period counted from the rotation")
    func earlyRotationGrace() throws {
        var driver = try LedgerDriver(policy: Self.policy)
        try driver.register("alice")
        let bob = try driver.register("bob")
        driver.advance(seconds: 60)
        let rotatedAt = driver.now
        try driver.rotate("bob", reason: .request)

        driver.now = rotatedAt.adding(seconds: 30)
        #expect(driver.check(bob.key) == "bob")
        #expect(try driver.send("alice", to: bob.key, 100).event != nil)
        driver.now = rotatedAt.adding(seconds: 30).adding(milliseconds: 1)
        // Long before the old key's own expiry, the early rotation already ended its grace.
        #expect(driver.now < bob.keyExpires)
        #expect(driver.check(bob.key) == "expired_key")
        #expect(try driver.send("alice", to: bob.key, 100).code == .expiredKey)
    }

    @Test("a current key that nobody rotated is payable until its expiry plus grace, then expired_key")
    func currentKeyPastExpiry() throws {
        var driver = try LedgerDriver(policy: Self.policy)
        try driver.register("alice")
        let bob = try driver.register("bob")
        driver.now = bob.keyExpires.adding(seconds: 30)
        #expect(try driver.send("alice", to: bob.key, 100).event != nil)
        driver.now = bob.keyExpires.adding(seconds: 30).adding(milliseconds: 1)
        #expect(try driver.send("alice", to: bob.key, 100).code == .expiredKey)
        #expect(driver.check(bob.key) == "expired_key")
    }

    @Test("refreshing the earliest expiry after the timer keeps the scan exact")
    func earliestExpiryRefresh() throws {
        var driver = try LedgerDriver(policy: Self.policy)
        try driver.register("alice")
        driver.advance(seconds: 100)
        let bob = try driver.register("bob")
        driver.now = startTime.adding(seconds: 180)
        #expect(driver.ledger.machinesWithExpiredKeys(at: driver.now) == [try machine("alice")])
        try driver.rotate("alice", reason: .expired)
        driver.ledger.refreshEarliestExpiry()
        #expect(driver.ledger.machinesWithExpiredKeys(at: driver.now).isEmpty)
        #expect(driver.ledger.machinesWithExpiredKeys(at: bob.keyExpires) == [try machine("bob")])
    }
}

@Suite("Ledger rules: request id idempotency and the order of checks")
struct IdempotencyTests {
    /// alice has paid bob 10,00 with request id `pay-1`.
    static func paid() throws -> (driver: LedgerDriver, first: TxID, bobKey: PaymentKey) {
        var driver = try LedgerDriver()
        try driver.register("alice")
        let bob = try driver.register("bob")
        let transfer = try #require(try driver.send("alice", to: bob.key, 1_000, id: "pay-1").event?.transfer)
        #expect(transfer.requestID == (try requestID("pay-1")))
        return (driver, transfer.tx, bob.key)
    }

    @Test("the same request id with the same key and amount answers the first transfer and moves no money")
    func retryIsAlreadyDone() throws {
        let paid = try Self.paid()
        var driver = paid.driver
        let (first, bobKey) = (paid.first, paid.bobKey)
        let seq = driver.ledger.lastSeq
        #expect(try driver.send("alice", to: bobKey, 1_000, id: "pay-1") == .alreadyDone(first))
        #expect(try driver.send("alice", to: bobKey.text.uppercased(), 1_000, id: "pay-1") == .alreadyDone(first))
        #expect(driver.ledger.lastSeq == seq)
        #expect(try driver.balance(of: "alice") == 9_000)
        #expect(try driver.balance(of: "bob") == 11_000)
    }

    @Test("`10` and `10,00` are the same amount for a retry")
    func amountSpellings() throws {
        let (driver, first, bobKey) = try Self.paid()
        for text in ["10", "10,00", "10.0", "10,0"] {
            let amount = try #require(Centavos(amount: text))
            let decision = driver.ledger.decide(
                .transfer(
                    from: try machine("alice"), keyText: KeyText(bobKey.text), amount: amount,
                    requestID: try requestID("pay-1")),
                at: driver.now)
            #expect(decision == .alreadyDone(first), "amount \(text)")
        }
    }

    @Test("a retry is answered even after the key expired and was replaced")
    func retryAfterExpiry() throws {
        let paid = try Self.paid()
        var driver = paid.driver
        let (first, bobKey) = (paid.first, paid.bobKey)
        driver.advance(seconds: 3_600)
        try driver.rotate("bob", reason: .expired)
        #expect(driver.check(bobKey) == "expired_key")
        #expect(try driver.send("alice", to: bobKey, 1_000, id: "pay-1") == .alreadyDone(first))
    }

    @Test("the same request id with another amount or another key is request_id_reused")
    func reusedID() throws {
        let paid = try Self.paid()
        var driver = paid.driver
        let bobKey = paid.bobKey
        let carol = try driver.register("carol")
        #expect(try driver.send("alice", to: bobKey, 1_001, id: "pay-1").code == .requestIDReused)
        #expect(try driver.send("alice", to: carol.key, 1_000, id: "pay-1").code == .requestIDReused)
        let bobNewKey = try driver.rotate("bob")
        #expect(try driver.send("alice", to: bobNewKey, 1_000, id: "pay-1").code == .requestIDReused)
        #expect(try driver.balance(of: "alice") == 9_000)
    }

    @Test("request ids are scoped per machine: another machine may use the same id")
    func idsPerMachine() throws {
        let paid = try Self.paid()
        var driver = paid.driver
        let first = paid.first
        let alice = try driver.key(of: "alice")
        let transfer = try #require(try driver.send("bob", to: alice, 1_000, id: "pay-1").event?.transfer)
        #expect(transfer.tx != first)
        #expect(try driver.balance(of: "bob") == 10_000)
    }

    @Test(
        "checks run in order: request id before key, key before self_transfer, self_transfer before insufficient_funds")
    func orderOfChecks() throws {
        var driver = try Self.paid().driver
        let aliceKey = try driver.key(of: "alice")
        let never = driver.freshKey()
        // request id before key: a reused id with a key that does not exist.
        #expect(try driver.send("alice", to: never, 1_000, id: "pay-1").code == .requestIDReused)
        #expect(try driver.send("alice", to: "garbage", 1_000, id: "pay-1").code == .requestIDReused)
        // key before self_transfer: alice's own replaced key, past grace.
        try driver.rotate("alice")
        driver.advance(seconds: 31)
        #expect(try driver.send("alice", to: aliceKey, 1, id: "fresh").code == .expiredKey)
        // key before insufficient_funds.
        #expect(try driver.send("alice", to: never, 1_000_000).code == .unknownKey)
        // self_transfer before insufficient_funds.
        #expect(try driver.send("alice", to: driver.key(of: "alice"), 1_000_000).code == .selfTransfer)
        // bad_amount before everything the ledger looks up.
        #expect(try driver.send("alice", to: never, 0, id: "pay-1").code == .badAmount)
        // A refused id was not consumed.
        #expect(try driver.send("alice", to: driver.key(of: "bob"), 1, id: "fresh").event != nil)
    }
}
