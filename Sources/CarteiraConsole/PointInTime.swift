#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
public import CarteiraCore
import CarteiraTerminal

/// A monotonic clock in nanoseconds, for `\timing`.
public func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// A moment in the journal to look back at: after the line with a `seq`,
/// or after the last line not later than a time.
public enum PointInTime: Sendable, Hashable, CustomStringConvertible {
    case seq(Int64)
    case time(Timestamp)

    /// A `seq` (digits only) or a time as `TerminalTime.parse` reads it.
    public init?(_ text: some StringProtocol) {
        if !text.isEmpty && text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let seq = Int64(text) else { return nil }
            self = .seq(seq)
        } else if let time = TerminalTime.parse(text) {
            self = .time(time)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case let .seq(seq): "seq \(seq)"
        case let .time(time): time.iso8601
        }
    }
}
