/// What went wrong with a journal. Every case carries enough context to be
/// shown to an operator as it is.
public enum JournalError: Error, CustomStringConvertible, Sendable, Hashable {
    /// Another server (or `journal repair`) holds the directory's `LOCK`.
    case lockHeld(pid: Int32?)
    /// A line that is not a torn tail breaks the format, the hash chain or a
    /// ledger rule. `line` counts from 1: the genesis line is line 1.
    case corrupt(line: Int, reason: String)
    /// Only from `verify`: the journal ends in a torn tail starting at this
    /// byte offset.
    case tornTail(offset: Int64)
    /// A failed open, read, write, sync or truncate, with the errno text.
    case io(String)
    /// The writer failed or was shut down: nothing more becomes durable.
    case closed

    public var description: String {
        switch self {
        case let .lockHeld(pid):
            if let pid { return "the journal is locked by another server (pid \(pid))" }
            return "the journal is locked by another server"
        case let .corrupt(line, reason):
            return "line \(line): \(reason)"
        case let .tornTail(offset):
            return "torn tail at byte \(offset): the last line is incomplete or zero-filled (journal repair cuts it)"
        case let .io(message):
            return message
        case .closed:
            return "the journal writer has stopped: nothing more is durable"
        }
    }
}

/// Why one journal line does not decode. The caller adds the line number.
public struct JournalFormatError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}
