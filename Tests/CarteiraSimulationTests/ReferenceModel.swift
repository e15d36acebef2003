import CarteiraCore
import CarteiraJournal

/// A failed check: what broke, for the report that names the seed.
struct Violation: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// The small reference model: what is on stable storage, read back from the
/// disk's stable bytes line by line (each line's hash checked against the
/// one before), with the ledger's rules applied by simple code of its own.
/// Every answer a client sees is checked against it: an answer may show only
/// what is here.
struct ReferenceModel {
    struct Machine {
        var tokenDigest: String
        /// Every key it was given, with the `seq` that gave it.
        var keys: [(key: String, seq: Int64)]
        /// Its balance after each change, by `seq`.
        var balances: [(seq: Int64, balance: Int64)]
        var registeredSeq: Int64
    }

    let initialBalance: Int64
    private(set) var lastSeq: Int64 = -1
    private(set) var parsedOffset = 0
    private var previousHash = JournalCodec.zeroHash
    private(set) var machines: [String: Machine] = [:]
    private(set) var keyOwner: [String: String] = [:]
    private(set) var transfers: [Int64: Event.Transfer] = [:]
    /// `machine|request id` → the transfer's `seq`.
    private(set) var requests: [String: Int64] = [:]
    private(set) var totalMoney: Int64 = 0

    init(initialBalance: Int64) {
        self.initialBalance = initialBalance
    }

    /// Reads the whole lines among the stable bytes past what it has read.
    mutating func absorb(_ disk: SimDisk) throws(Violation) {
        let bytes = disk.stableBytes(from: parsedOffset)
        guard let lastNewline = bytes.lastIndex(of: UInt8(ascii: "\n")) else { return }
        var start = bytes.startIndex
        while start <= lastNewline {
            guard let end = bytes[start...lastNewline].firstIndex(of: UInt8(ascii: "\n")) else { break }
            let line = String(decoding: bytes[start..<end], as: UTF8.self)
            let decoded: (event: Event, hash: String)
            do {
                decoded = try JournalCodec.decode(line[...], previousHash: previousHash)
            } catch {
                throw Violation("stable line at byte \(start) does not decode or chain: \(error): \(line.prefix(120))")
            }
            try apply(decoded.event)
            previousHash = decoded.hash
            start = end + 1
            parsedOffset = start
        }
    }

    private mutating func apply(_ event: Event) throws(Violation) {
        guard event.seq == lastSeq + 1 else { throw Violation("stable seq \(event.seq) follows \(lastSeq)") }
        switch event.kind {
        case .genesis:
            guard event.seq == 0 else { throw Violation("genesis at seq \(event.seq)") }
        case let .registered(registration):
            let name = registration.machine.text
            guard machines[name] == nil else { throw Violation("\(name) registered twice (seq \(event.seq))") }
            guard keyOwner[registration.key.text] == nil else { throw Violation("a key issued twice") }
            guard registration.balance.value == initialBalance else {
                throw Violation("\(name) registered with \(registration.balance.value), not \(initialBalance)")
            }
            machines[name] = Machine(
                tokenDigest: registration.tokenDigest.text, keys: [(registration.key.text, event.seq)],
                balances: [(event.seq, registration.balance.value)], registeredSeq: event.seq)
            keyOwner[registration.key.text] = name
            totalMoney += registration.balance.value
        case let .transfer(transfer):
            let from = transfer.from.text
            let to = transfer.to.text
            guard transfer.tx == TxID(seq: event.seq) else { throw Violation("tx \(transfer.tx) at seq \(event.seq)") }
            guard let payer = machines[from], let payee = machines[to] else {
                throw Violation("transfer \(transfer.tx) between unknown machines")
            }
            guard from != to else { throw Violation("self transfer \(transfer.tx)") }
            guard keyOwner[transfer.key.text] == to else {
                throw Violation("transfer \(transfer.tx) to \(to) through a key it never had")
            }
            let amount = transfer.amount.value
            let payerBalance = payer.balances[payer.balances.count - 1].balance
            let payeeBalance = payee.balances[payee.balances.count - 1].balance
            guard amount > 0, payerBalance >= amount else {
                throw Violation("transfer \(transfer.tx) of \(amount) from a balance of \(payerBalance)")
            }
            if let requestID = transfer.requestID {
                let id = "\(from)|\(requestID.text)"
                guard requests[id] == nil else {
                    throw Violation("request id \(requestID) of \(from) carried out twice")
                }
                requests[id] = event.seq
            }
            machines[from]?.balances.append((event.seq, payerBalance - amount))
            machines[to]?.balances.append((event.seq, payeeBalance + amount))
            transfers[event.seq] = transfer
        case let .keyRotated(rotation):
            let name = rotation.machine.text
            guard machines[name] != nil else { throw Violation("rotation for unknown \(name)") }
            guard keyOwner[rotation.key.text] == nil else { throw Violation("a key issued twice") }
            machines[name]?.keys.append((rotation.key.text, event.seq))
            keyOwner[rotation.key.text] = name
        }
        lastSeq = event.seq
    }

    /// The balances `machine` had at some `seq` in `range` (its stable
    /// history only).
    func balances(of machine: String, in range: ClosedRange<Int64>) -> [Int64] {
        guard let history = machines[machine]?.balances else { return [] }
        var result: [Int64] = []
        for (index, entry) in history.enumerated() {
            let next = index + 1 < history.count ? history[index + 1].seq : Int64.max
            // Entry holds from entry.seq until next - 1.
            if entry.seq <= range.upperBound && next > range.lowerBound { result.append(entry.balance) }
        }
        return result
    }

    func balance(of machine: String, at seq: Int64) -> Int64? {
        machines[machine]?.balances.last { $0.seq <= seq }?.balance
    }

    func hasKey(_ key: String, of machine: String) -> Bool { keyOwner[key] == machine }
}
