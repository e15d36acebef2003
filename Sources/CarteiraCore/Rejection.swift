/// Every error code of the wire protocol, in the order the checks run
/// (PROTOCOL.md, Error codes). The raw value is the stable wire name.
public enum ErrorCode: String, Sendable, Hashable, CaseIterable {
    case badRequest = "bad_request"
    case unknownCommand = "unknown_command"
    case lineTooLong = "line_too_long"
    case badName = "bad_name"
    case badAmount = "bad_amount"
    case notLoggedIn = "not_logged_in"
    case alreadyLoggedIn = "already_logged_in"
    case rateLimited = "rate_limited"
    case requestIDReused = "request_id_reused"
    case unknownKey = "unknown_key"
    case expiredKey = "expired_key"
    case selfTransfer = "self_transfer"
    case insufficientFunds = "insufficient_funds"
    case machineExists = "machine_exists"
    case unknownMachine = "unknown_machine"
    case badToken = "bad_token"
    case unavailable = "unavailable"

    /// Answers that cost a token from the connection's rate-limit bucket.
    public var isCharged: Bool {
        self == .unknownKey || self == .expiredKey || self == .badToken
    }
}

/// A refused request: a value, never an exception. Nothing changed.
public struct Rejection: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: ErrorCode
    /// For people; may change between versions.
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// A journal event that breaks a ledger rule: replay stops on it.
public struct LedgerViolation: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
