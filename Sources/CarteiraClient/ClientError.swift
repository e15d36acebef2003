public import CarteiraCore

/// Why a client operation did not produce an answer.
public enum ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server answered `ERR|code|message`. The code is kept as written so
    /// that a code added by a newer server still reaches the person.
    case refused(code: String, message: String)
    /// No connection could be opened within the connect timeout.
    case cannotConnect(ServerAddress, reason: String)
    /// The connection closed before the answer arrived.
    case connectionLost
    /// The server wrote something this client cannot make sense of; the
    /// connection is closed because answers can no longer be matched.
    case protocolViolation(String)
    /// No token is saved for this machine and this command may not register it.
    case notRegistered(MachineName, server: ServerAddress)
    /// A `SEND` whose answer was lost and could not be confirmed by a retry:
    /// re-sending with the same request id tells whether it was made.
    case paymentOutcomeUnknown(RequestID)

    /// The wire code of a refusal, when this client knows it.
    public var errorCode: ErrorCode? {
        if case let .refused(code, _) = self { ErrorCode(rawValue: code) } else { nil }
    }

    /// A stable short name, used as the `error` field of JSON output.
    public var code: String {
        switch self {
        case let .refused(code, _): code
        case .cannotConnect: "cannot_connect"
        case .connectionLost: "connection_lost"
        case .protocolViolation: "protocol_violation"
        case .notRegistered: "not_registered"
        case .paymentOutcomeUnknown: "payment_outcome_unknown"
        }
    }

    /// For people.
    public var message: String {
        switch self {
        case let .refused(_, message): message
        case let .cannotConnect(address, reason): "cannot reach the server at \(address): \(reason)"
        case .connectionLost: "the connection to the server was lost"
        case let .protocolViolation(detail): "the server sent something unexpected: \(detail)"
        case let .notRegistered(machine, server):
            "machine \(machine) has no saved token for \(server); run `carteira register --machine \(machine)` first"
        case let .paymentOutcomeUnknown(id):
            "the answer to the payment was lost and the server could not be reached to confirm it; "
                + "run the same send again with --request-id \(id) to learn whether it was made (it is never made twice)"
        }
    }

    public var description: String { "\(code): \(message)" }
}
