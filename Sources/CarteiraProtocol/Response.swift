public import CarteiraCore

/// One `TX|...` line of a `HISTORY` answer.
public struct HistoryEntry: Sendable, Hashable {
    public var tx: TxID
    public var at: Timestamp
    public var from: MachineName
    public var to: MachineName
    public var amount: Centavos

    public init(tx: TxID, at: Timestamp, from: MachineName, to: MachineName, amount: Centavos) {
        self.tx = tx
        self.at = at
        self.from = from
        self.to = to
        self.amount = amount
    }

    public init(_ record: TransferRecord) {
        self.init(
            tx: record.tx, at: record.at, from: record.transfer.from, to: record.transfer.to,
            amount: record.transfer.amount)
    }
}

/// A server answer, one per request.
public enum Response: Sendable, Hashable {
    case pong
    case registered(machine: MachineName, token: Token, key: PaymentKey, balance: Centavos)
    case loggedIn(machine: MachineName, key: PaymentKey, balance: Centavos)
    case whoami(machine: MachineName, key: PaymentKey, balance: Centavos, keyExpires: Timestamp)
    case balance(Centavos)
    case key(PaymentKey, expires: Timestamp)
    case rotated(PaymentKey, expires: Timestamp)
    case owner(MachineName)
    /// `again`: a retried request id whose transfer was already done; no
    /// money moved now (`OK|<tx>|<cents>|again`).
    case sent(tx: TxID, balance: Centavos, again: Bool)
    case history([HistoryEntry])
    case bye
    case error(Rejection)

    /// The answer as wire text, every line ending in `\n`.
    public var wire: String {
        switch self {
        case .pong: return "OK|PONG\n"
        case let .registered(machine, token, key, balance):
            return "OK|\(machine)|\(token.text)|\(key)|\(balance.value)\n"
        case let .loggedIn(machine, key, balance): return "OK|\(machine)|\(key)|\(balance.value)\n"
        case let .whoami(machine, key, balance, expires):
            return "OK|\(machine)|\(key)|\(balance.value)|\(expires.milliseconds)\n"
        case let .balance(balance): return "OK|\(balance.value)\n"
        case let .key(key, expires), let .rotated(key, expires): return "OK|\(key)|\(expires.milliseconds)\n"
        case let .owner(machine): return "OK|\(machine)\n"
        case let .sent(tx, balance, again): return Self.sentLine(tx: tx, balance: balance.value, again: again)
        case let .history(entries):
            var text = "OK|\(entries.count)\n"
            for entry in entries {
                text += "TX|\(entry.tx)|\(entry.at.milliseconds)|\(entry.from)|\(entry.to)|\(entry.amount.value)\n"
            }
            return text
        case .bye: return "OK|BYE\n"
        case let .error(rejection):
            return "ERR|\(rejection.code.rawValue)|\(sanitized(rejection.message))\n"
        }
    }
}

extension Response {
    /// The most bytes `writeSentLine` writes for a tx of `txBytes` bytes:
    /// `OK|`, `|`, a sign and 19 digits, `|again`, `\n`.
    public static func sentLineCapacity(txBytes: Int) -> Int { txBytes + 31 }

    /// `OK|<tx>|<cents>[|again]\n`, the answer to every `SEND`, written in
    /// one pass into `line` (at least `sentLineCapacity` bytes); returns
    /// how many bytes it wrote. The server writes it straight into the
    /// connection's output; `wire` makes a string of it.
    public static func writeSentLine(
        tx: TxID, balance: Int64, again: Bool, into line: UnsafeMutableRawBufferPointer
    ) -> Int {
        var txText = tx.text
        return txText.withUTF8 { txBytes in
            precondition(line.count >= sentLineCapacity(txBytes: txBytes.count), "room for a SEND answer")
            // Straight-line stores: a nested function appending through a
            // captured index made every byte a checked access.
            line[0] = UInt8(ascii: "O")
            line[1] = UInt8(ascii: "K")
            line[2] = UInt8(ascii: "|")
            UnsafeMutableRawBufferPointer(rebasing: line[3...]).copyMemory(from: UnsafeRawBufferPointer(txBytes))
            var end = 3 + txBytes.count
            line[end] = UInt8(ascii: "|")
            end += 1
            if balance < 0 {
                line[end] = UInt8(ascii: "-")
                end += 1
            }
            // The digits, written backwards at the end of the room, then
            // moved to their place.
            let start = writeDecimal(balance.magnitude, endingAt: line.count, in: line)
            let digits = line.count - start
            UnsafeMutableRawBufferPointer(rebasing: line[end...]).copyMemory(
                from: UnsafeRawBufferPointer(rebasing: line[start...]))
            end += digits
            if again {
                for byte in "|again".utf8 {
                    line[end] = byte
                    end += 1
                }
            }
            line[end] = UInt8(ascii: "\n")
            return end + 1
        }
    }

    private static func sentLine(tx: TxID, balance: Int64, again: Bool) -> String {
        String(unsafeUninitializedCapacity: sentLineCapacity(txBytes: tx.text.utf8.count)) { line in
            writeSentLine(tx: tx, balance: balance, again: again, into: UnsafeMutableRawBufferPointer(line))
        }
    }
}

/// A line the server writes on its own, between answers.
public enum Push: Sendable, Hashable {
    case received(tx: TxID, from: MachineName, amount: Centavos, balance: Centavos)
    case key(PaymentKey, expires: Timestamp)

    public var wire: String {
        switch self {
        case let .received(tx, from, amount, balance):
            return "EVT|received|\(tx)|\(from)|\(amount.value)|\(balance.value)\n"
        case let .key(key, expires):
            return "EVT|key|\(key)|\(expires.milliseconds)\n"
        }
    }

    /// Parses an `EVT|...` line (without its ending); `nil` for anything else.
    public static func parse(_ line: Substring) -> Push? {
        let fields = wireFields(line)
        guard fields.first == "EVT", fields.count >= 2 else { return nil }
        switch fields[1] {
        case "received":
            guard fields.count == 6, let tx = TxID(fields[2]), let from = MachineName(fields[3]),
                let amount = Int64(fields[4]), let balance = Int64(fields[5])
            else { return nil }
            return .received(tx: tx, from: from, amount: Centavos(amount), balance: Centavos(balance))
        case "key":
            guard fields.count == 4, let key = PaymentKey(fields[2]), let expires = Int64(fields[3]) else { return nil }
            return .key(key, expires: Timestamp(milliseconds: expires))
        default:
            return nil
        }
    }
}

/// One line from the server as a client first sees it.
public enum ServerLine: Sendable, Hashable {
    case ok([String])
    case error(code: String, message: String)
    case push(Push)
    case historyEntry(HistoryEntry)
    /// An `EVT|` of a kind this client does not know, or a line of no known shape.
    case unknown(String)

    public static func parse(_ line: Substring) -> ServerLine {
        var line = line
        if line.utf8.last == UInt8(ascii: "\r") { line = line.dropLast() }
        let fields = wireFields(line).map(String.init)
        switch fields.first {
        case "OK": return .ok(Array(fields.dropFirst()))
        case "ERR":
            guard fields.count >= 2 else { return .unknown(String(line)) }
            return .error(code: fields[1], message: fields.dropFirst(2).joined(separator: "|"))
        case "EVT":
            return Push.parse(line).map(ServerLine.push) ?? .unknown(String(line))
        case "TX":
            guard fields.count == 6, let tx = TxID(fields[1]), let at = Int64(fields[2]),
                let from = MachineName(fields[3]), let to = MachineName(fields[4]), let amount = Int64(fields[5])
            else { return .unknown(String(line)) }
            return .historyEntry(
                HistoryEntry(tx: tx, at: Timestamp(milliseconds: at), from: from, to: to, amount: Centavos(amount)))
        default:
            return .unknown(String(line))
        }
    }
}
