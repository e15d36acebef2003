import CarteiraCore
public import CarteiraProtocol

extension Response {
    /// Decodes the server's answer to `request`. An `ERR` answer throws
    /// `ClientError.refused`; an answer of the wrong shape throws
    /// `ClientError.protocolViolation`.
    public init(reply: ServerReply, to request: Request) throws(ClientError) {
        let fields: [String]
        switch reply {
        case let .error(code, message):
            throw .refused(code: code, message: message)
        case let .history(entries):
            guard case .history = request else { throw violation("a history answer to \(request.name)") }
            self = .history(entries)
            return
        case let .ok(okFields):
            fields = okFields
        }
        func expect(_ count: Int) throws(ClientError) {
            guard fields.count == count else {
                throw violation("\(request.name) answered \(fields.count) field(s), expected \(count)")
            }
        }
        switch request {
        case .ping:
            try expect(1)
            guard fields[0] == "PONG" else { throw violation("PING answered \(fields[0])") }
            self = .pong
        case .register:
            try expect(4)
            self = .registered(
                machine: try field(fields[0], MachineName.init), token: try field(fields[1], Token.init),
                key: try field(fields[2], PaymentKey.init), balance: try cents(fields[3]))
        case .login:
            try expect(3)
            self = .loggedIn(
                machine: try field(fields[0], MachineName.init), key: try field(fields[1], PaymentKey.init),
                balance: try cents(fields[2]))
        case .whoami:
            try expect(4)
            self = .whoami(
                machine: try field(fields[0], MachineName.init), key: try field(fields[1], PaymentKey.init),
                balance: try cents(fields[2]), keyExpires: try time(fields[3]))
        case .balance:
            try expect(1)
            self = .balance(try cents(fields[0]))
        case .key:
            try expect(2)
            self = .key(try field(fields[0], PaymentKey.init), expires: try time(fields[1]))
        case .rotate:
            try expect(2)
            self = .rotated(try field(fields[0], PaymentKey.init), expires: try time(fields[1]))
        case .check:
            try expect(1)
            self = .owner(try field(fields[0], MachineName.init))
        case .send:
            // `OK|tx|cents`, or `OK|tx|cents|again` for a retry of a done request id.
            guard fields.count == 2 || (fields.count == 3 && fields[2] == "again") else {
                throw violation("SEND answered \(fields.count) field(s), expected 2, or 3 ending in again")
            }
            self = .sent(tx: try field(fields[0], TxID.init), balance: try cents(fields[1]), again: fields.count == 3)
        case .history:
            throw violation("HISTORY answered without its count")
        case .quit:
            try expect(1)
            guard fields[0] == "BYE" else { throw violation("QUIT answered \(fields[0])") }
            self = .bye
        }
    }
}

private func violation(_ detail: String) -> ClientError {
    .protocolViolation(detail)
}

private func field<Value>(_ text: String, _ make: (String) -> Value?) throws(ClientError) -> Value {
    guard let value = make(text) else { throw violation("malformed field \(text.prefix(80))") }
    return value
}

/// A non-negative decimal integer that fits `Int64`, digits only.
private func integer(_ text: String) throws(ClientError) -> Int64 {
    guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = Int64(text)
    else {
        throw violation("malformed number \(text.prefix(80))")
    }
    return value
}

private func cents(_ text: String) throws(ClientError) -> Centavos { Centavos(try integer(text)) }
private func time(_ text: String) throws(ClientError) -> Timestamp { Timestamp(milliseconds: try integer(text)) }
