public import CarteiraCore

/// Why a client operation did not produce an answer.
public enum ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server answered `ERR|code|message`. The code is kept as written so
    /// that a code added by a newer server still reaches the person.
    case refused(code: String, message: String)
    /// No connection could be opened within the connect timeout. `reason` is
    /// already written for people (never a SwiftNIO description).
    case cannotConnect(ServerAddress, reason: String)
    /// The connection closed before the answer arrived.
    case connectionLost
    /// The server did not answer within the request timeout; the client
    /// closed the connection so that the request cannot be carried out later.
    case timedOut(ServerAddress, seconds: Double)
    /// The server wrote something this client cannot make sense of: most
    /// likely it is not a Carteira server. The connection is closed because
    /// answers can no longer be matched.
    case protocolViolation(String)
    /// No token is saved for this machine and this command may not register it.
    /// `path` is the token file that was looked for.
    case notRegistered(MachineName, server: ServerAddress, path: String)
    /// The server refused the saved token (`bad_token`) or does not know the
    /// machine (`unknown_machine`): the token in `path` is stale or wrong.
    case staleToken(MachineName, server: ServerAddress, path: String, code: String)
    /// A `SEND` was written but no answer came back, not even to a retry:
    /// re-sending with the same request id tells whether it was made.
    case paymentOutcomeUnknown(RequestID, because: String)
    /// A `SEND` that never left this machine: no connection was logged in
    /// before the deadline.
    case paymentNotSent(RequestID, because: String)
    /// TLS could not be set up, or the server failed the check (`--tls`):
    /// nothing was sent. `reason` is written for people. Not retried.
    case tlsFailed(reason: String)

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
        case .timedOut: "timed_out"
        case .protocolViolation: "not_carteira"
        case .notRegistered: "not_registered"
        case .staleToken: "stale_token"
        case .paymentOutcomeUnknown: "payment_outcome_unknown"
        case .paymentNotSent: "payment_not_sent"
        case .tlsFailed: "tls_failed"
        }
    }

    /// Whether the server was not reached or not understood (exit status 3)
    /// rather than reached and refusing (exit status 1).
    public var isReachability: Bool {
        switch self {
        case .cannotConnect, .connectionLost, .timedOut, .protocolViolation, .paymentOutcomeUnknown, .paymentNotSent,
            .tlsFailed:
            true
        case .refused(let code, _): code == ErrorCode.unavailable.rawValue
        case .notRegistered, .staleToken: false
        }
    }

    /// For people: whole sentences, no internals.
    public var message: String {
        switch self {
        case let .refused(_, message): message
        case let .cannotConnect(_, reason): reason
        case .connectionLost: "the connection to the server was lost"
        case let .timedOut(address, seconds):
            "the server at \(address) did not answer within \(formatSeconds(seconds)); the connection was closed"
        case let .protocolViolation(detail):
            "the server does not speak the Carteira protocol (is it carteira-server?): \(detail)"
        case let .notRegistered(machine, server, path):
            "machine \(machine) has no saved token for \(server) (looked for \(path)); "
                + "run `carteira register --machine \(machine)` first"
        case let .staleToken(machine, server, path, code):
            "the server at \(server) \(code == ErrorCode.unknownMachine.rawValue ? "does not know machine \(machine)" : "refused the saved token of machine \(machine)") "
                + "(the token in \(path) is stale, perhaps the server's journal was reset); "
                + "to start over, delete that file and run `carteira register --machine \(machine)`"
        case let .paymentOutcomeUnknown(id, because):
            "\(stop(because)) The payment may or may not have been made: run the same send again with "
                + "--request-id \(id) to find out (it is never made twice)"
        case let .tlsFailed(reason): reason
        case let .paymentNotSent(id, because):
            "\(stop(because)) Nothing was sent; it is safe to try again, "
                + "and with --request-id \(id) it can never be paid twice"
        }
    }

    public var description: String { "\(code): \(message)" }
}

/// `text` ending in a full stop (unless it already ends a sentence).
func stop(_ text: String) -> String {
    text.last.map { ".?!".contains($0) } == true ? text : text + "."
}

/// `2 s`, `0.5 s`.
func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
}
