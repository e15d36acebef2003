import CarteiraCore
import CarteiraTestSupport
import Testing

/// 2026-11-18T11:06:40.000Z: a plain moment to start the clock at.
let startTime = Timestamp(milliseconds: 1_795_000_000_000)

func machine(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> MachineName {
    try #require(MachineName(text), sourceLocation: sourceLocation)
}

func requestID(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> RequestID {
    try #require(RequestID(text), sourceLocation: sourceLocation)
}

extension Event {
    var transfer: Transfer? {
        if case let .transfer(transfer) = kind { return transfer }
        return nil
    }
}

extension Decision {
    var event: Event? {
        if case let .accept(event) = self { return event }
        return nil
    }

    var code: ErrorCode? {
        if case let .reject(rejection) = self { return rejection.code }
        return nil
    }
}

/// A ledger past its genesis line with a clock and a key source: decides and
/// applies commands the way the ledger service does.
struct LedgerDriver {
    var ledger: Ledger
    var now = startTime
    /// Every event applied, genesis first: what the journal would hold.
    private(set) var events: [Event] = []
    private var random: SplitMix64

    init(policy: KeyPolicy = KeyPolicy(), seed: UInt64 = 1) throws {
        ledger = Ledger(policy: policy)
        random = SplitMix64(seed: seed)
        try apply(Event(seq: 0, at: now, kind: .genesis))
    }

    mutating func freshKey() -> PaymentKey {
        PaymentKey(randomBytes: random.bytes(16))
    }

    mutating func freshDigest() throws -> TokenDigest {
        try #require(TokenDigest(lowerHex(random.bytes(32))))
    }

    mutating func advance(seconds: Int64) {
        now = now.adding(seconds: seconds)
    }

    mutating func advance(milliseconds: Int64) {
        now = now.adding(milliseconds: milliseconds)
    }

    mutating func apply(_ event: Event) throws {
        try ledger.apply(event)
        events.append(event)
    }

    /// Decides `command` now and applies the event if it was accepted. A
    /// transfer goes the server's way, `decideTransfer` and then
    /// `apply(_: AcceptedTransfer)`, checked against `decide` on the same
    /// state; `events` keep what replay then applies with `apply(_: Event)`.
    @discardableResult
    mutating func run(_ command: Command) throws -> Decision {
        let decision = ledger.decide(command, at: now)
        guard case let .transfer(from, keyText, amount, requestID) = command else {
            if let event = decision.event { try apply(event) }
            return decision
        }
        switch ledger.decideTransfer(from: from, keyText: keyText, amount: amount, requestID: requestID, at: now) {
        case let .accept(accepted):
            #expect(decision == .accept(accepted.event))
            let payee = try #require(accepted.event.transfer?.to)
            #expect(ledger.machineID(of: payee) == accepted.payee)
            let balances = ledger.apply(accepted)
            events.append(accepted.event)
            #expect(ledger.lastSeq == accepted.event.seq)
            #expect(balances.payer == ledger.balance(of: from))
            #expect(balances.payee == ledger.balance(of: payee))
        case let .reject(rejection):
            #expect(decision == .reject(rejection))
        case let .alreadyDone(tx):
            #expect(decision == .alreadyDone(tx))
        }
        return decision
    }

    @discardableResult
    mutating func register(
        _ name: String, balance: Int64 = 10_000, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> MachineRecord {
        let name = try machine(name, sourceLocation: sourceLocation)
        let command = Command.register(
            machine: name, tokenDigest: try freshDigest(), key: freshKey(), initialBalance: Centavos(balance))
        let decision = try run(command)
        try #require(decision.event != nil, "register \(name): \(decision)", sourceLocation: sourceLocation)
        return try #require(ledger.machines[name], sourceLocation: sourceLocation)
    }

    @discardableResult
    mutating func send(_ from: String, to keyText: String, _ amount: Int64, id: String? = nil) throws -> Decision {
        try run(
            .transfer(
                from: machine(from), keyText: KeyText(keyText), amount: Centavos(amount),
                requestID: id.map { try requestID($0) }
            ))
    }

    mutating func send(_ from: String, to key: PaymentKey, _ amount: Int64, id: String? = nil) throws -> Decision {
        try send(from, to: key.text, amount, id: id)
    }

    /// Replaces `name`'s key now and returns the new one.
    @discardableResult
    mutating func rotate(
        _ name: String, reason: KeyRotationReason = .request, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> PaymentKey {
        let key = freshKey()
        let decision = try run(.rotateKey(machine: machine(name), newKey: key, reason: reason))
        try #require(decision.event != nil, "rotate \(name): \(decision)", sourceLocation: sourceLocation)
        return key
    }

    func key(of name: String) throws -> PaymentKey {
        try #require(ledger.machines[machine(name)]).key
    }

    func balance(of name: String) throws -> Int64 {
        try #require(ledger.machines[machine(name)]).balance.value
    }

    /// `CHECK` of `keyText` now: the owner's name, or the error code's wire name.
    func check(_ keyText: String) -> String {
        switch ledger.owner(ofKey: KeyText(keyText), at: now) {
        case let .success(owner): owner.text
        case let .failure(rejection): rejection.code.rawValue
        }
    }

    func check(_ key: PaymentKey) -> String {
        check(key.text)
    }
}
