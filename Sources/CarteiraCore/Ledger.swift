/// How long keys live and how long a replaced key stays payable. Not part of
/// the journal: a changed `--key-ttl` applies to keys issued from then on.
public struct KeyPolicy: Sendable, Hashable {
    public var ttlSeconds: Int64
    public var graceSeconds: Int64

    public init(ttlSeconds: Int64 = 180, graceSeconds: Int64 = 30) {
        precondition(ttlSeconds > 0 && graceSeconds >= 0, "key TTL must be positive and grace not negative")
        self.ttlSeconds = ttlSeconds
        self.graceSeconds = graceSeconds
    }
}

/// A request that would change the ledger. Fresh keys and token digests come
/// in with it: the core draws no randomness and reads no clock.
public enum Command: Sendable, Hashable {
    case register(machine: MachineName, tokenDigest: TokenDigest, key: PaymentKey, initialBalance: Centavos)
    /// `keyText` is the key as the client wrote it; it is checked here, after
    /// the request id, in the protocol's order.
    case transfer(from: MachineName, keyText: String, amount: Centavos, requestID: RequestID?)
    case rotateKey(machine: MachineName, newKey: PaymentKey, reason: KeyRotationReason)
}

/// What `decide` made of a command.
public enum Decision: Sendable, Hashable {
    /// Apply this event (after journaling it) and answer from the new state.
    case accept(Event)
    /// Nothing changes; answer with the error.
    case reject(Rejection)
    /// A retried `SEND` with a known request id: answer with the first
    /// transfer; nothing changes.
    case alreadyDone(TxID)
}

/// One machine's wallet and identity.
public struct MachineRecord: Sendable, Hashable {
    public var name: MachineName
    public var key: PaymentKey
    public var keyExpires: Timestamp
    public var tokenDigest: TokenDigest
    public var balance: Centavos
    public var registeredAt: Timestamp
    public var lastTransferAt: Timestamp?
    /// Indices into `Ledger.transfers`, oldest first.
    public var transferIndices: [Int]
}

extension MachineRecord {
    mutating func record(transfer index: Int, at time: Timestamp, balance: Centavos) {
        self.balance = balance
        lastTransferAt = time
        transferIndices.append(index)
    }
}

/// An accepted transfer with where it stands in the journal.
public struct TransferRecord: Sendable, Hashable {
    public var seq: Int64
    public var at: Timestamp
    public var transfer: Event.Transfer

    public var tx: TxID { transfer.tx }
}

struct KeyRecord: Sendable, Hashable {
    var owner: MachineName
    var expires: Timestamp
    /// When it stopped being current, if it has.
    var replacedAt: Timestamp?

    /// The moment the key stopped (or will stop) being current: its expiry,
    /// or the rotation if that came earlier.
    var stoppedAt: Timestamp {
        if let replacedAt, replacedAt < expires { return replacedAt }
        return expires
    }
}

struct RequestKey: Sendable, Hashable {
    var machine: MachineName
    var id: RequestID
}

/// The ledger state machine: `decide` validates a command against the state
/// and yields an event or a rejection; only `apply` changes the state, and
/// replaying a journal is `apply` alone. Pure and deterministic.
public struct Ledger: Sendable {
    public var policy: KeyPolicy
    /// The last applied event's `seq`; -1 before the genesis line.
    public private(set) var lastSeq: Int64 = -1
    public private(set) var machines: [MachineName: MachineRecord] = [:]
    /// Every transfer, in journal order.
    public private(set) var transfers: [TransferRecord] = []
    /// All the money there is: the sum of every initial balance.
    public private(set) var totalMoney = Centavos.zero
    public private(set) var eventCount = 0
    private var keys: [PaymentKey: KeyRecord] = [:]
    private var transferIndexByTx: [TxID: Int] = [:]
    private var transferIndexByRequest: [RequestKey: Int] = [:]
    /// No key expires before this: lets the rotation timer skip its scan.
    private var earliestExpiry: Timestamp?

    public init(policy: KeyPolicy = KeyPolicy()) {
        self.policy = policy
    }

    // MARK: Deciding

    /// Validates `command` at `now` against the current state. Changes nothing.
    public func decide(_ command: Command, at now: Timestamp) -> Decision {
        let seq = lastSeq + 1
        switch command {
        case let .register(machine, tokenDigest, key, initialBalance):
            if machines[machine] != nil {
                return .reject(Rejection(.machineExists, "machine \(machine) is already registered"))
            }
            guard initialBalance >= .zero, totalMoney.adding(initialBalance) != nil else {
                return .reject(Rejection(.badAmount, "initial balance cannot be represented"))
            }
            precondition(keys[key] == nil, "a fresh key collided with an issued one")
            let registration = Event.Registration(
                machine: machine, key: key, expires: now.adding(seconds: policy.ttlSeconds),
                tokenDigest: tokenDigest, balance: initialBalance)
            return .accept(Event(seq: seq, at: now, kind: .registered(registration)))

        case let .transfer(from, keyText, amount, requestID):
            // `apply` refuses such an event, so `decide` must never yield one.
            guard amount > .zero else {
                return .reject(Rejection(.badAmount, "amount must be greater than zero"))
            }
            guard let sender = machines[from] else {
                return .reject(Rejection(.notLoggedIn, "machine \(from) is not registered"))
            }
            if let requestID, let index = transferIndexByRequest[RequestKey(machine: from, id: requestID)] {
                let first = transfers[index].transfer
                if PaymentKey(keyText) == first.key && amount == first.amount {
                    return .alreadyDone(first.tx)
                }
                return .reject(
                    Rejection(.requestIDReused, "request id \(requestID) was used for another transfer (\(first.tx))"))
            }
            let payee: MachineName
            switch owner(ofKey: keyText, at: now) {
            case let .success(name): payee = name
            case let .failure(rejection): return .reject(rejection)
            }
            guard payee != from else {
                return .reject(Rejection(.selfTransfer, "key belongs to \(from) itself"))
            }
            guard sender.balance >= amount else {
                return .reject(Rejection(.insufficientFunds, "balance \(sender.balance.brl) is below \(amount.brl)"))
            }
            // The key resolved, so it parses.
            guard let key = PaymentKey(keyText) else { return .reject(Rejection(.unknownKey, "no such key")) }
            let transfer = Event.Transfer(
                tx: TxID(seq: seq), from: from, to: payee, key: key, amount: amount, requestID: requestID)
            return .accept(Event(seq: seq, at: now, kind: .transfer(transfer)))

        case let .rotateKey(machine, newKey, reason):
            guard machines[machine] != nil else {
                return .reject(Rejection(.unknownMachine, "no machine named \(machine)"))
            }
            precondition(keys[newKey] == nil, "a fresh key collided with an issued one")
            let rotation = Event.KeyRotation(
                machine: machine, key: newKey, expires: now.adding(seconds: policy.ttlSeconds), reason: reason)
            return .accept(Event(seq: seq, at: now, kind: .keyRotated(rotation)))
        }
    }

    // MARK: Applying

    /// Applies one event. Checks every ledger rule, so a journal that breaks
    /// one is refused on replay; an event from `decide` always applies.
    public mutating func apply(_ event: Event) throws(LedgerViolation) {
        guard event.seq == lastSeq + 1 else {
            throw LedgerViolation("seq \(event.seq) does not follow \(lastSeq)")
        }
        switch event.kind {
        case .genesis:
            guard lastSeq == -1 else { throw LedgerViolation("genesis after the first line") }

        case let .registered(registration):
            guard lastSeq >= 0 else { throw LedgerViolation("event before the genesis line") }
            guard machines[registration.machine] == nil else {
                throw LedgerViolation("machine \(registration.machine) registered twice")
            }
            guard keys[registration.key] == nil else {
                throw LedgerViolation("key \(registration.key) issued twice")
            }
            guard registration.balance >= .zero else {
                throw LedgerViolation("negative initial balance for \(registration.machine)")
            }
            guard let total = totalMoney.adding(registration.balance) else {
                throw LedgerViolation("total money overflows")
            }
            totalMoney = total
            machines[registration.machine] = MachineRecord(
                name: registration.machine, key: registration.key, keyExpires: registration.expires,
                tokenDigest: registration.tokenDigest, balance: registration.balance, registeredAt: event.at,
                lastTransferAt: nil, transferIndices: [])
            keys[registration.key] = KeyRecord(owner: registration.machine, expires: registration.expires)
            noteExpiry(registration.expires)

        case let .transfer(transfer):
            guard lastSeq >= 0 else { throw LedgerViolation("event before the genesis line") }
            // Read-only copies for the checks; the records are then changed in
            // place, so their transfer lists are not copied on every transfer.
            guard let sender = machines[transfer.from] else {
                throw LedgerViolation("transfer from unknown machine \(transfer.from)")
            }
            guard let payee = machines[transfer.to] else {
                throw LedgerViolation("transfer to unknown machine \(transfer.to)")
            }
            guard transfer.from != transfer.to else { throw LedgerViolation("transfer to itself") }
            guard transfer.amount > .zero else { throw LedgerViolation("amount not positive") }
            guard keys[transfer.key]?.owner == transfer.to else {
                throw LedgerViolation("key \(transfer.key) was never \(transfer.to)'s")
            }
            guard transferIndexByTx[transfer.tx] == nil else {
                throw LedgerViolation("tx \(transfer.tx) appears twice")
            }
            if let requestID = transfer.requestID,
                transferIndexByRequest[RequestKey(machine: transfer.from, id: requestID)] != nil
            {
                throw LedgerViolation("request id \(requestID) of \(transfer.from) used twice")
            }
            guard let senderAfter = sender.balance.subtracting(transfer.amount), senderAfter >= .zero else {
                throw LedgerViolation("balance of \(transfer.from) would go below zero")
            }
            guard let payeeAfter = payee.balance.adding(transfer.amount) else {
                throw LedgerViolation("balance of \(transfer.to) overflows")
            }
            let index = transfers.count
            transfers.append(TransferRecord(seq: event.seq, at: event.at, transfer: transfer))
            transferIndexByTx[transfer.tx] = index
            if let requestID = transfer.requestID {
                transferIndexByRequest[RequestKey(machine: transfer.from, id: requestID)] = index
            }
            machines[transfer.from]?.record(transfer: index, at: event.at, balance: senderAfter)
            machines[transfer.to]?.record(transfer: index, at: event.at, balance: payeeAfter)

        case let .keyRotated(rotation):
            guard lastSeq >= 0 else { throw LedgerViolation("event before the genesis line") }
            guard let machine = machines[rotation.machine] else {
                throw LedgerViolation("key rotation for unknown machine \(rotation.machine)")
            }
            guard keys[rotation.key] == nil else { throw LedgerViolation("key \(rotation.key) issued twice") }
            keys[machine.key]?.replacedAt = event.at
            machines[rotation.machine]?.key = rotation.key
            machines[rotation.machine]?.keyExpires = rotation.expires
            keys[rotation.key] = KeyRecord(owner: rotation.machine, expires: rotation.expires)
            noteExpiry(rotation.expires)
        }
        lastSeq = event.seq
        eventCount += 1
    }

    private mutating func noteExpiry(_ expires: Timestamp) {
        if let earliest = earliestExpiry, earliest <= expires { return }
        earliestExpiry = expires
    }

    // MARK: Reading

    /// Who owns the key `keyText` at `now`, for `CHECK` and `SEND`.
    public func owner(ofKey keyText: String, at now: Timestamp) -> Result<MachineName, Rejection> {
        guard let key = PaymentKey(keyText), let record = keys[key] else {
            return .failure(Rejection(.unknownKey, "no machine has that key"))
        }
        if now > record.stoppedAt.adding(seconds: policy.graceSeconds) {
            return .failure(Rejection(.expiredKey, "that key was replaced; ask the payee for the current one"))
        }
        return .success(record.owner)
    }

    /// The machine `name` if `tokenDigest` is its token's.
    public func authenticate(_ name: MachineName, tokenDigest: TokenDigest?) -> Result<MachineRecord, Rejection> {
        guard let machine = machines[name] else {
            return .failure(Rejection(.unknownMachine, "no machine named \(name)"))
        }
        guard let tokenDigest, tokenDigest == machine.tokenDigest else {
            return .failure(Rejection(.badToken, "wrong token for \(name)"))
        }
        return .success(machine)
    }

    public func transfer(_ tx: TxID) -> TransferRecord? {
        transferIndexByTx[tx].map { transfers[$0] }
    }

    /// A machine's transfers, newest first, at most `limit`.
    public func history(of name: MachineName, limit: Int) -> [TransferRecord] {
        guard let indices = machines[name]?.transferIndices else { return [] }
        return indices.suffix(max(0, limit)).reversed().map { transfers[$0] }
    }

    /// Every transfer, newest first, at most `limit`.
    public func history(limit: Int) -> [TransferRecord] {
        transfers.suffix(max(0, limit)).reversed()
    }

    /// The machines whose current key has reached its expiry at `now`, in name
    /// order, for the rotation timer. Cheap when nothing is due.
    public func machinesWithExpiredKeys(at now: Timestamp) -> [MachineName] {
        guard let earliest = earliestExpiry, now >= earliest else { return [] }
        return machines.values.filter { now >= $0.keyExpires }.map(\.name).sorted()
    }

    /// Recomputes the earliest expiry after the timer rotated keys; the
    /// stored value only ever moves earlier on `apply`.
    public mutating func refreshEarliestExpiry() {
        earliestExpiry = machines.values.map(\.keyExpires).min()
    }

    /// True when `key` was ever issued.
    public func knowsKey(_ key: PaymentKey) -> Bool { keys[key] != nil }

    /// Checks the invariants: money conserved, nothing negative. For tests
    /// and `verify`; O(machines).
    public func checkInvariants() -> LedgerViolation? {
        var sum = Centavos.zero
        for machine in machines.values {
            if machine.balance < .zero { return LedgerViolation("\(machine.name) is below zero") }
            guard let next = sum.adding(machine.balance) else { return LedgerViolation("sum overflows") }
            sum = next
        }
        return sum == totalMoney ? nil : LedgerViolation("balances sum to \(sum.value), expected \(totalMoney.value)")
    }
}
