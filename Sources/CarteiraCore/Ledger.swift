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
    /// `keyText` is the key as the client wrote it; whether it names a key
    /// is checked here, after the request id, in the protocol's order.
    case transfer(from: MachineName, keyText: KeyText, amount: Centavos, requestID: RequestID?)
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

/// What `Ledger.decideTransfer` made of a transfer.
public enum TransferDecision: Sendable {
    /// Journal `accepted.event`, then `Ledger.apply(accepted)`.
    case accept(AcceptedTransfer)
    case reject(Rejection)
    case alreadyDone(TxID)
}

/// A transfer `Ledger.decideTransfer` accepted: its event, and where its
/// parties, key and request id are in the state that decided it.
public struct AcceptedTransfer: Sendable {
    public let event: Event
    /// The event's tx, for the answer and the push.
    public let tx: TxID
    /// The machine paid.
    public let payee: MachineID
    fileprivate let payer: UInt32
    fileprivate let key: UInt32
    fileprivate let amount: Int64
    fileprivate let requestID: RequestID?
    /// `TransferHashes.request` of its request id; 0 without one.
    fileprivate let requestHash: UInt32
}

/// A machine's place in the ledger: stable for the ledger's life, as
/// machines are never removed. Cheaper to keep and compare than its name.
public struct MachineID: Sendable, Hashable {
    fileprivate let index: UInt32
}

/// One machine's wallet and identity, as the ledger reads it out.
public struct MachineRecord: Sendable, Hashable {
    public var name: MachineName
    public var key: PaymentKey
    public var keyExpires: Timestamp
    public var tokenDigest: TokenDigest
    public var balance: Centavos
    public var registeredAt: Timestamp
    public var lastTransferAt: Timestamp?
    /// How many transfers it paid or received (`Ledger.history(of:limit:)`
    /// lists them).
    public var transferCount: Int
}

/// An accepted transfer with where it stands in the journal.
public struct TransferRecord: Sendable, Hashable {
    public var seq: Int64
    public var at: Timestamp
    public var transfer: Event.Transfer

    public var tx: TxID { transfer.tx }
}

/// An event as the journal's decoder hands it to `apply`: numbers decoded,
/// names and ids still the line's bytes, so replay builds no `String` per
/// field. The buffers are only valid during the call.
package struct EventBytes {
    package var seq: Int64
    /// Unix milliseconds.
    package var at: Int64
    package var kind: Kind
    /// A transfer's look-up hashes, when the decoder computed them ahead
    /// (replay does, on the threads that check the hash chain); `apply`
    /// computes them itself when they are absent.
    package var hashes: TransferHashes?

    package enum Kind {
        case genesis
        case registered(
            machine: UnsafeBufferPointer<UInt8>, key: KeyBits, expires: Int64, tokenDigest: DigestBits, balance: Int64)
        case transfer(
            tx: UnsafeBufferPointer<UInt8>, from: UnsafeBufferPointer<UInt8>, to: UnsafeBufferPointer<UInt8>,
            key: KeyBits, amount: Int64, requestID: UnsafeBufferPointer<UInt8>?)
        case keyRotated(machine: UnsafeBufferPointer<UInt8>, key: KeyBits, expires: Int64, reason: KeyRotationReason)
    }

    package init(seq: Int64, at: Int64, kind: Kind, hashes: TransferHashes? = nil) {
        self.seq = seq
        self.at = at
        self.kind = kind
        self.hashes = hashes
    }
}

/// The hashes `apply` looks a transfer up by: its payer's and payee's
/// names, and its request id seeded with the payer's name hash (a request
/// id is unique per payer). They depend on the line's bytes alone, so
/// replay computes them on the threads that check the hash chain, ahead of
/// `apply`.
package struct TransferHashes: Sendable, Hashable {
    package var payer: UInt32
    package var payee: UInt32
    package var request: UInt32

    package init(
        payer: UnsafeBufferPointer<UInt8>, payee: UnsafeBufferPointer<UInt8>, requestID: UnsafeBufferPointer<UInt8>?
    ) {
        let payerHash = Self.name(payer)
        self.payer = payerHash
        self.payee = Self.name(payee)
        self.request = requestID.map { Self.request($0, payer: payerHash) } ?? 0
    }

    /// A machine name's hash in `Ledger.machinesByName`.
    static func name(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        ByteTable.hash(UnsafeRawBufferPointer(bytes), seed: 0)
    }

    /// A request id's hash in `Ledger.transfersByRequest`, given its
    /// payer's name hash.
    static func request(_ requestID: UnsafeBufferPointer<UInt8>, payer: UInt32) -> UInt32 {
        ByteTable.hash(UnsafeRawBufferPointer(requestID), seed: payer)
    }
}

/// The ledger state machine: `decide` validates a command against the state
/// and yields an event or a rejection; only `apply` changes the state, and
/// replaying a journal is `apply` alone. Pure and deterministic.
///
/// The state is compact: machines, keys and transfers are fixed-size
/// records in arrays indexed by dense ids; names and request ids live in
/// byte arenas. `machines` and `transfers` read it out as records.
public struct Ledger: Sendable {
    public var policy: KeyPolicy
    /// The last applied event's `seq`; -1 before the genesis line.
    public private(set) var lastSeq: Int64 = -1
    /// All the money there is: the sum of every initial balance.
    public private(set) var totalMoney = Centavos.zero
    public private(set) var eventCount = 0
    /// In registration order.
    private var machineSlots: [MachineSlot] = []
    /// Name bytes → index into `machineSlots`.
    private var machinesByName = ByteTable()
    /// Every key ever issued.
    private var keySlots: [KeySlot] = []
    /// Key bits → the key's index in `keySlots` and its owner, so that a
    /// transfer finds its payee without loading the key's record.
    private var keysByBits: [KeyBits: KeyRef] = [:]
    /// Every transfer, in journal (so `seq`) order.
    private var transferSlots = ChunkedArray<TransferSlot>()
    /// Request id bytes, hashed with the payer's name hash
    /// (`TransferHashes`) → index into `transferSlots`.
    private var transfersByRequest = ByteTable()
    /// What `prefetch` loaded, kept so that the loads are not optimised
    /// away; never read.
    private var prefetched: UInt64 = 0
    /// No key expires before this (Unix ms): lets the rotation timer skip
    /// its scan.
    private var earliestExpiry: Int64?

    public init(policy: KeyPolicy = KeyPolicy()) {
        self.policy = policy
    }

    /// Every machine, read out as records.
    public var machines: Machines { Machines(ledger: self) }

    /// Every transfer, in journal order, read out as records.
    public var transfers: Transfers { Transfers(ledger: self) }

    /// Loads the table slots a transfer's `apply` will look up first, so
    /// that replay can start the cache misses of several lines at once
    /// (their loads are independent) before applying them one by one.
    package mutating func prefetch(_ hashes: TransferHashes) {
        // The parties' records, through the first name entry with each hash
        // (`apply` then checks the names' bytes).
        func balance(_ hash: UInt32) -> Int64 {
            guard let machine = machinesByName.firstValue(hash: hash), Int(machine) < machineSlots.count else {
                return 0
            }
            return machineSlots[Int(machine)].balance
        }
        prefetched &+=
            transfersByRequest.slot(hash: hashes.request)
            ^ UInt64(bitPattern: balance(hashes.payer) ^ balance(hashes.payee))
    }

    // MARK: Deciding

    /// Validates `command` at `now` against the current state. Changes nothing.
    public func decide(_ command: Command, at now: Timestamp) -> Decision {
        let seq = lastSeq + 1
        switch command {
        case let .register(machine, tokenDigest, key, initialBalance):
            if machineIndex(of: machine) != nil {
                return .reject(Rejection(.machineExists, "machine \(machine) is already registered"))
            }
            guard initialBalance >= .zero, totalMoney.adding(initialBalance) != nil else {
                return .reject(Rejection(.badAmount, "initial balance cannot be represented"))
            }
            precondition(!knowsKey(key), "a fresh key collided with an issued one")
            let registration = Event.Registration(
                machine: machine, key: key, expires: now.adding(seconds: policy.ttlSeconds),
                tokenDigest: tokenDigest, balance: initialBalance)
            return .accept(Event(seq: seq, at: now, kind: .registered(registration)))

        case let .transfer(from, keyText, amount, requestID):
            switch decideTransfer(from: from, keyText: keyText, amount: amount, requestID: requestID, at: now) {
            case let .accept(accepted): return .accept(accepted.event)
            case let .reject(rejection): return .reject(rejection)
            case let .alreadyDone(tx): return .alreadyDone(tx)
            }

        case let .rotateKey(machine, newKey, reason):
            guard machineIndex(of: machine) != nil else {
                return .reject(Rejection(.unknownMachine, "no machine named \(machine)"))
            }
            precondition(!knowsKey(newKey), "a fresh key collided with an issued one")
            let rotation = Event.KeyRotation(
                machine: machine, key: newKey, expires: now.adding(seconds: policy.ttlSeconds), reason: reason)
            return .accept(Event(seq: seq, at: now, kind: .keyRotated(rotation)))
        }
    }

    /// `decide` for a transfer, keeping what it found: an accepted one
    /// carries the indices `apply(_: AcceptedTransfer)` needs, so the server
    /// looks nothing up twice.
    public func decideTransfer(
        from: MachineName, keyText: KeyText, amount: Centavos, requestID: RequestID?, at now: Timestamp
    ) -> TransferDecision {
        let seq = lastSeq + 1
        // `apply` refuses such an event, so `decide` must never yield one.
        guard amount > .zero else {
            return .reject(Rejection(.badAmount, "amount must be greater than zero"))
        }
        // The payer's name hash also seeds its request ids' (`TransferHashes`).
        let (payerHash, payer) = from.withUTF8 { name in
            let hash = TransferHashes.name(name)
            return (hash, machinesByName.find(UnsafeRawBufferPointer(name), hash: hash))
        }
        guard let sender = payer else {
            return .reject(Rejection(.notLoggedIn, "machine \(from) is not registered"))
        }
        var requestHash: UInt32 = 0
        if let requestID {
            requestHash = withBytes(requestID.text) { TransferHashes.request($0, payer: payerHash) }
        }
        if let requestID, let index = transferIndex(payer: sender, hash: requestHash, requestID: requestID.text) {
            let first = transferSlots[Int(index)]
            let tx = TxID(seq: first.seq)
            if keyText.bits == keySlots[Int(first.key)].bits && amount.value == first.amount {
                return .alreadyDone(tx)
            }
            return .reject(
                Rejection(.requestIDReused, "request id \(requestID) was used for another transfer (\(tx))"))
        }
        let payee: UInt32
        let key: UInt32
        switch keyIndex(ofKey: keyText, at: now) {
        case let .success(found): (key, payee) = (found, keySlots[Int(found)].owner)
        case let .failure(rejection): return .reject(rejection)
        }
        guard payee != sender else {
            return .reject(Rejection(.selfTransfer, "key belongs to \(from) itself"))
        }
        let balance = Centavos(machineSlots[Int(sender)].balance)
        guard balance >= amount else {
            return .reject(Rejection(.insufficientFunds, "balance \(balance.brl) is below \(amount.brl)"))
        }
        let tx = TxID(seq: seq)
        let transfer = Event.Transfer(
            tx: tx, from: from, to: machineSlots[Int(payee)].name, key: keySlots[Int(key)].bits.paymentKey,
            amount: amount,
            requestID: requestID)
        return .accept(
            AcceptedTransfer(
                event: Event(seq: seq, at: now, kind: .transfer(transfer)), tx: tx, payee: MachineID(index: payee),
                payer: sender, key: key, amount: amount.value, requestID: requestID, requestHash: requestHash))
    }

    // MARK: Applying

    /// Applies one event. Checks every ledger rule, so a journal that breaks
    /// one is refused on replay; an event from `decide` always applies.
    public mutating func apply(_ event: Event) throws(LedgerViolation) {
        var failure: LedgerViolation?
        let seq = event.seq
        let at = event.at.milliseconds
        switch event.kind {
        case .genesis:
            failure = applying(EventBytes(seq: seq, at: at, kind: .genesis))
        case let .registered(r):
            r.machine.withUTF8 { machine in
                failure = applying(
                    EventBytes(
                        seq: seq, at: at,
                        kind: .registered(
                            machine: machine, key: KeyBits(r.key), expires: r.expires.milliseconds,
                            tokenDigest: DigestBits(r.tokenDigest), balance: r.balance.value)))
            }
        case let .transfer(t):
            withBytes(t.tx.text) { tx in
                t.from.withUTF8 { from in
                    t.to.withUTF8 { to in
                        withBytes(t.requestID?.text) { requestID in
                            failure = applying(
                                EventBytes(
                                    seq: seq, at: at,
                                    kind: .transfer(
                                        tx: tx, from: from, to: to, key: KeyBits(t.key), amount: t.amount.value,
                                        requestID: requestID)))
                        }
                    }
                }
            }
        case let .keyRotated(k):
            k.machine.withUTF8 { machine in
                failure = applying(
                    EventBytes(
                        seq: seq, at: at,
                        kind: .keyRotated(
                            machine: machine, key: KeyBits(k.key), expires: k.expires.milliseconds, reason: k.reason)))
            }
        }
        if let failure { throw failure }
    }

    private mutating func applying(_ event: EventBytes) -> LedgerViolation? {
        do throws(LedgerViolation) {
            try apply(event)
            return nil
        } catch {
            return error
        }
    }

    /// Applies one event given as the journal line's bytes: the same rules,
    /// in the same order, as `apply(_: Event)`, which comes here.
    package mutating func apply(_ event: EventBytes) throws(LedgerViolation) {
        guard event.seq == lastSeq + 1 else {
            throw LedgerViolation("seq \(event.seq) does not follow \(lastSeq)")
        }
        switch event.kind {
        case .genesis:
            guard lastSeq == -1 else { throw LedgerViolation("genesis after the first line") }

        case let .registered(machine, key, expires, tokenDigest, balance):
            guard lastSeq >= 0 else { throw LedgerViolation("event before the genesis line") }
            let nameHash = TransferHashes.name(machine)
            guard machinesByName.find(UnsafeRawBufferPointer(machine), hash: nameHash) == nil else {
                throw LedgerViolation("machine \(text(machine)) registered twice")
            }
            guard keysByBits[key] == nil else {
                throw LedgerViolation("key \(key.paymentKey) issued twice")
            }
            guard balance >= 0 else {
                throw LedgerViolation("negative initial balance for \(text(machine))")
            }
            guard let total = totalMoney.adding(Centavos(balance)) else {
                throw LedgerViolation("total money overflows")
            }
            guard let name = MachineName(text(machine)) else {
                throw LedgerViolation("\(text(machine)) is not a machine name")
            }
            precondition(machineSlots.count < Int(Int32.max), "more machines than a dense index holds")
            totalMoney = total
            let index = UInt32(machineSlots.count)
            let keyIndex = addKey(key, owner: index, expires: expires)
            machineSlots.append(
                MachineSlot(
                    name: name, key: keyIndex, keyExpires: expires, tokenDigest: tokenDigest, balance: balance,
                    registeredAt: event.at, lastTransferAt: Int64.min, newestTransfer: -1, transferCount: 0))
            machinesByName.insert(UnsafeRawBufferPointer(machine), hash: nameHash, value: index)
            noteExpiry(expires)

        case let .transfer(tx, from, to, key, amount, requestID):
            guard lastSeq >= 0 else { throw LedgerViolation("event before the genesis line") }
            // Replay's decoder computed the hashes ahead; otherwise each is
            // computed when it is needed.
            let payerHash = event.hashes?.payer ?? TransferHashes.name(from)
            guard let sender = machinesByName.find(UnsafeRawBufferPointer(from), hash: payerHash) else {
                throw LedgerViolation("transfer from unknown machine \(text(from))")
            }
            // The key names its owner: when that is `to`, the name needs no
            // look-up of its own.
            let keyRef = keysByBits[key]
            let payee: UInt32
            if let keyRef, machinesByName.entryEquals(Int(keyRef.owner), UnsafeRawBufferPointer(to)) {
                payee = keyRef.owner
            } else {
                let payeeHash = event.hashes?.payee ?? TransferHashes.name(to)
                guard let named = machinesByName.find(UnsafeRawBufferPointer(to), hash: payeeHash) else {
                    throw LedgerViolation("transfer to unknown machine \(text(to))")
                }
                payee = named
            }
            guard sender != payee else { throw LedgerViolation("transfer to itself") }
            guard amount > 0 else { throw LedgerViolation("amount not positive") }
            guard let keyRef, keyRef.owner == payee else {
                throw LedgerViolation("key \(key.paymentKey) was never \(text(to))'s")
            }
            // A tx is its transfer's seq (`TxID(seq:)`), which is why the
            // ledger does not store it: so no tx can appear twice either.
            guard TxID.seq(ofText: tx) == event.seq else {
                if let earlier = TxID.seq(ofText: tx), transferIndex(seq: earlier) != nil {
                    throw LedgerViolation("tx \(text(tx)) appears twice")
                }
                throw LedgerViolation("tx \(text(tx)) is not \(TxID(seq: event.seq)), the one its seq gives")
            }
            var requestHash: UInt32 = 0
            if let requestID {
                requestHash = event.hashes?.request ?? TransferHashes.request(requestID, payer: payerHash)
                let earlier = transfersByRequest.find(UnsafeRawBufferPointer(requestID), hash: requestHash) {
                    transferSlots[Int($0)].from == sender
                }
                guard earlier == nil else {
                    throw LedgerViolation("request id \(text(requestID)) of \(text(from)) used twice")
                }
            }
            let senderBalance = machineSlots[Int(sender)].balance
            let payeeBalance = machineSlots[Int(payee)].balance
            let (senderAfter, underflow) = senderBalance.subtractingReportingOverflow(amount)
            guard !underflow, senderAfter >= 0 else {
                throw LedgerViolation("balance of \(text(from)) would go below zero")
            }
            let (payeeAfter, overflow) = payeeBalance.addingReportingOverflow(amount)
            guard !overflow else {
                throw LedgerViolation("balance of \(text(to)) overflows")
            }
            addTransfer(
                seq: event.seq, at: event.at, amount: amount, from: (sender, senderAfter), to: (payee, payeeAfter),
                key: keyRef.index, requestID: requestID, requestHash: requestHash)

        case let .keyRotated(machine, key, expires, _):
            guard lastSeq >= 0 else { throw LedgerViolation("event before the genesis line") }
            guard let index = machineIndex(ofBytes: machine) else {
                throw LedgerViolation("key rotation for unknown machine \(text(machine))")
            }
            guard keysByBits[key] == nil else { throw LedgerViolation("key \(key.paymentKey) issued twice") }
            keySlots[Int(machineSlots[Int(index)].key)].replacedAt = event.at
            machineSlots[Int(index)].key = addKey(key, owner: index, expires: expires)
            machineSlots[Int(index)].keyExpires = expires
            noteExpiry(expires)
        }
        lastSeq = event.seq
        eventCount += 1
    }

    /// Applies a transfer `decideTransfer` accepted on this very state (no
    /// event came between): the change `apply(accepted.event)` makes, without
    /// finding its parties, key and request id again. Returns the payer's
    /// and the payee's balances after it.
    public mutating func apply(_ accepted: AcceptedTransfer) -> (payer: Centavos, payee: Centavos) {
        // Every event moves `lastSeq`, so an unchanged one means the state
        // `decideTransfer` checked the rules against.
        precondition(accepted.event.seq == lastSeq + 1, "an accepted transfer applies to the state that decided it")
        let (amount, payee) = (accepted.amount, accepted.payee.index)
        // `decideTransfer` checked the payer's funds; the payee's sum stays
        // within `totalMoney`, which fits `Int64`.
        let payerAfter = machineSlots[Int(accepted.payer)].balance - amount
        let payeeAfter = machineSlots[Int(payee)].balance + amount
        withBytes(accepted.requestID?.text) { requestID in
            addTransfer(
                seq: accepted.event.seq, at: accepted.event.at.milliseconds, amount: amount,
                from: (accepted.payer, payerAfter), to: (payee, payeeAfter), key: accepted.key,
                requestID: requestID, requestHash: accepted.requestHash)
        }
        lastSeq = accepted.event.seq
        eventCount += 1
        return (Centavos(payerAfter), Centavos(payeeAfter))
    }

    /// The change of a transfer whose rules hold: the new balances, the
    /// record and its request id's entry.
    private mutating func addTransfer(
        seq: Int64, at: Int64, amount: Int64, from: (index: UInt32, balance: Int64),
        to: (index: UInt32, balance: Int64), key: UInt32, requestID: UnsafeBufferPointer<UInt8>?, requestHash: UInt32
    ) {
        precondition(transferSlots.count < Int(Int32.max), "more transfers than a dense index holds")
        let index = UInt32(transferSlots.count)
        var request = TransferSlot.noRequest
        if let requestID {
            request = UInt32(transfersByRequest.count)
            transfersByRequest.insert(UnsafeRawBufferPointer(requestID), hash: requestHash, value: index)
        }
        let previousOfPayer = machineSlots[Int(from.index)].record(transfer: index, at: at, balance: from.balance)
        let previousOfPayee = machineSlots[Int(to.index)].record(transfer: index, at: at, balance: to.balance)
        transferSlots.append(
            TransferSlot(
                seq: seq, at: at, amount: amount, from: from.index, to: to.index, key: key, request: request,
                previousOfPayer: previousOfPayer, previousOfPayee: previousOfPayee))
    }

    private mutating func addKey(_ key: KeyBits, owner: UInt32, expires: Int64) -> UInt32 {
        let index = UInt32(keySlots.count)
        keySlots.append(KeySlot(bits: key, owner: owner, expires: expires, replacedAt: Int64.max))
        keysByBits[key] = KeyRef(index: index, owner: owner)
        return index
    }

    private mutating func noteExpiry(_ expires: Int64) {
        if let earliest = earliestExpiry, earliest <= expires { return }
        earliestExpiry = expires
    }

    // MARK: Looking up

    private func machineIndex(of name: MachineName) -> UInt32? {
        name.withUTF8 { machineIndex(ofBytes: $0) }
    }

    private func machineIndex(ofBytes name: UnsafeBufferPointer<UInt8>) -> UInt32? {
        machinesByName.find(UnsafeRawBufferPointer(name), hash: TransferHashes.name(name))
    }

    /// The transfer `payer` made with this request id, whose hash
    /// (`TransferHashes.request`) is `hash`.
    private func transferIndex(payer: UInt32, hash: UInt32, requestID: String) -> UInt32? {
        withBytes(requestID) { bytes in
            transfersByRequest.find(UnsafeRawBufferPointer(bytes), hash: hash) { transferSlots[Int($0)].from == payer }
        }
    }

    /// The transfer with this `seq`: transfers are in `seq` order.
    private func transferIndex(seq: Int64) -> Int? {
        var low = 0
        var high = transferSlots.count
        while low < high {
            let middle = (low + high) / 2
            if transferSlots[middle].seq < seq { low = middle + 1 } else { high = middle }
        }
        return low < transferSlots.count && transferSlots[low].seq == seq ? low : nil
    }

    /// The index in `keySlots` of the key `keyText`, if it is payable at `now`.
    private func keyIndex(ofKey keyText: KeyText, at now: Timestamp) -> Result<UInt32, Rejection> {
        guard let bits = keyText.bits, let index = keysByBits[bits]?.index else {
            return .failure(Rejection(.unknownKey, "no machine has that key"))
        }
        if now > Timestamp(milliseconds: keySlots[Int(index)].stoppedAt).adding(seconds: policy.graceSeconds) {
            return .failure(Rejection(.expiredKey, "that key was replaced; ask the payee for the current one"))
        }
        return .success(index)
    }

    fileprivate func machineRecord(at index: Int) -> MachineRecord {
        let slot = machineSlots[index]
        return MachineRecord(
            name: slot.name, key: keySlots[Int(slot.key)].bits.paymentKey,
            keyExpires: Timestamp(milliseconds: slot.keyExpires), tokenDigest: slot.tokenDigest.tokenDigest,
            balance: Centavos(slot.balance), registeredAt: Timestamp(milliseconds: slot.registeredAt),
            lastTransferAt: slot.lastTransferAt == Int64.min ? nil : Timestamp(milliseconds: slot.lastTransferAt),
            transferCount: Int(slot.transferCount))
    }

    /// The machine named `name`, if it is registered.
    public func machineID(of name: MachineName) -> MachineID? {
        machineIndex(of: name).map { MachineID(index: $0) }
    }

    /// A machine's balance without building its whole record: the server
    /// reads it on every `SEND` and `BALANCE`.
    public func balance(of name: MachineName) -> Centavos? {
        machineIndex(of: name).map { Centavos(machineSlots[Int($0)].balance) }
    }

    fileprivate func machineRecord(named name: MachineName) -> MachineRecord? {
        machineIndex(of: name).map { machineRecord(at: Int($0)) }
    }

    fileprivate var machineCount: Int { machineSlots.count }
    fileprivate var transferCount: Int { transferSlots.count }

    fileprivate func transferRecord(at index: Int) -> TransferRecord {
        let slot = transferSlots[index]
        var requestID: RequestID?
        if slot.request != TransferSlot.noRequest {
            requestID = RequestID(transfersByRequest.string(Int(slot.request)))
        }
        let transfer = Event.Transfer(
            tx: TxID(seq: slot.seq), from: machineSlots[Int(slot.from)].name, to: machineSlots[Int(slot.to)].name,
            key: keySlots[Int(slot.key)].bits.paymentKey, amount: Centavos(slot.amount), requestID: requestID)
        return TransferRecord(seq: slot.seq, at: Timestamp(milliseconds: slot.at), transfer: transfer)
    }

    // MARK: Reading

    /// Who owns the key `keyText` at `now`, for `CHECK` and `SEND`.
    public func owner(ofKey keyText: KeyText, at now: Timestamp) -> Result<MachineName, Rejection> {
        keyIndex(ofKey: keyText, at: now).map { machineSlots[Int(keySlots[Int($0)].owner)].name }
    }

    /// The machine `name` if `tokenDigest` is its token's.
    public func authenticate(_ name: MachineName, tokenDigest: TokenDigest?) -> Result<MachineRecord, Rejection> {
        guard let index = machineIndex(of: name) else {
            return .failure(Rejection(.unknownMachine, "no machine named \(name)"))
        }
        guard let tokenDigest, DigestBits(tokenDigest) == machineSlots[Int(index)].tokenDigest else {
            return .failure(Rejection(.badToken, "wrong token for \(name)"))
        }
        return .success(machineRecord(at: Int(index)))
    }

    public func transfer(_ tx: TxID) -> TransferRecord? {
        guard let seq = withBytes(tx.text, { TxID.seq(ofText: $0) }), let index = transferIndex(seq: seq) else {
            return nil
        }
        return transferRecord(at: index)
    }

    /// A machine's transfers, newest first, at most `limit`.
    public func history(of name: MachineName, limit: Int) -> [TransferRecord] {
        guard let machine = machineIndex(of: name) else { return [] }
        var records: [TransferRecord] = []
        var next = machineSlots[Int(machine)].newestTransfer
        while next >= 0 && records.count < limit {
            records.append(transferRecord(at: Int(next)))
            next = transferSlots[Int(next)].previous(of: machine)
        }
        return records
    }

    /// Every transfer, newest first, at most `limit`.
    public func history(limit: Int) -> [TransferRecord] {
        let count = transferSlots.count
        return (max(0, count - max(0, limit))..<count).reversed().map { transferRecord(at: $0) }
    }

    /// The machines whose current key has reached its expiry at `now`, in name
    /// order, for the rotation timer. Cheap when nothing is due.
    public func machinesWithExpiredKeys(at now: Timestamp) -> [MachineName] {
        guard let earliest = earliestExpiry, now.milliseconds >= earliest else { return [] }
        return machineSlots.filter { now.milliseconds >= $0.keyExpires }.map(\.name).sorted()
    }

    /// Recomputes the earliest expiry after the timer rotated keys; the
    /// stored value only ever moves earlier on `apply`.
    public mutating func refreshEarliestExpiry() {
        earliestExpiry = machineSlots.map(\.keyExpires).min()
    }

    /// True when `key` was ever issued.
    public func knowsKey(_ key: PaymentKey) -> Bool { keysByBits[KeyBits(key)] != nil }

    /// Checks the invariants: money conserved, nothing negative. For tests
    /// and `verify`; O(machines).
    public func checkInvariants() -> LedgerViolation? {
        var sum = Centavos.zero
        for machine in machineSlots {
            if machine.balance < 0 { return LedgerViolation("\(machine.name) is below zero") }
            guard let next = sum.adding(Centavos(machine.balance)) else { return LedgerViolation("sum overflows") }
            sum = next
        }
        return sum == totalMoney ? nil : LedgerViolation("balances sum to \(sum.value), expected \(totalMoney.value)")
    }
}

extension MachineSlot {
    /// Records its transfer `index`; returns its transfer before.
    mutating func record(transfer index: UInt32, at time: Int64, balance: Int64) -> Int32 {
        self.balance = balance
        lastTransferAt = time
        transferCount += 1
        defer { newestTransfer = Int32(index) }
        return newestTransfer
    }
}

extension Ledger {
    /// The ledger's machines by name, read out as `MachineRecord`s.
    public struct Machines: Sendable, Equatable {
        fileprivate let ledger: Ledger

        public var count: Int { ledger.machineCount }
        public var isEmpty: Bool { count == 0 }

        public subscript(name: MachineName) -> MachineRecord? { ledger.machineRecord(named: name) }

        /// Every machine, in registration order.
        public var values: [MachineRecord] { (0..<count).map { ledger.machineRecord(at: $0) } }

        /// Every machine's name, in registration order.
        public var keys: [MachineName] { ledger.machineSlots.map(\.name) }

        /// The same machines with the same records, whatever the order.
        public static func == (lhs: Machines, rhs: Machines) -> Bool {
            lhs.count == rhs.count && lhs.values.allSatisfy { rhs[$0.name] == $0 }
        }
    }

    /// The ledger's transfers in journal order, read out as `TransferRecord`s.
    public struct Transfers: RandomAccessCollection, Sendable, Equatable {
        fileprivate let ledger: Ledger

        public var startIndex: Int { 0 }
        public var endIndex: Int { ledger.transferCount }

        public subscript(position: Int) -> TransferRecord {
            precondition(indices.contains(position), "transfer index out of range")
            return ledger.transferRecord(at: position)
        }

        public static func == (lhs: Transfers, rhs: Transfers) -> Bool {
            lhs.elementsEqual(rhs)
        }
    }
}

extension TxID {
    /// The `seq` a tx written as `TxID(seq:)` writes it (`T000000000042` is
    /// 42); nil for any other text.
    package static func seq(ofText text: UnsafeBufferPointer<UInt8>) -> Int64? {
        let digits = text.count - 1
        guard digits >= 12, digits <= 19, text[0] == UInt8(ascii: "T") else { return nil }
        // Twelve digits are zero-padded; more never start with a zero.
        if digits > 12, text[1] == UInt8(ascii: "0") { return nil }
        return decimalValue(UnsafeBufferPointer(rebasing: text[1...]))
    }
}

/// The value of ASCII decimal digits (at least one, nothing else), or nil
/// when a byte is not a digit or the value does not fit `Int64`.
package func decimalValue(_ digits: UnsafeBufferPointer<UInt8>) -> Int64? {
    guard !digits.isEmpty else { return nil }
    var value: Int64 = 0
    for byte in digits {
        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
        let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = times10.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
        guard !overflow1, !overflow2 else { return nil }
        value = sum
    }
    return value
}

/// Writes `value`'s decimal digits, zero-padded to at least `width`, so
/// that the last one is just before `end` in `buffer`, and returns where
/// the first one is: the one digit writer of tx ids, the journal's numbers
/// and times, and the answer to a `SEND`.
@inlinable
package func writeDecimal(
    _ value: UInt64, width: Int = 1, endingAt end: Int, in buffer: UnsafeMutableRawBufferPointer
) -> Int {
    var rest = value
    var start = end
    repeat {
        start -= 1
        buffer[start] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
        rest /= 10
    } while rest > 0 || end - start < width
    return start
}

private func withBytes<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    var text = text
    return text.withUTF8(body)
}

private func withBytes<R>(_ text: String?, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
    guard var text else { return body(nil) }
    return text.withUTF8 { body($0) }
}

private func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
    String(decoding: bytes, as: UTF8.self)
}
