#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A terminal's size in character cells.
public struct TerminalSize: Sendable, Hashable {
    public var rows: Int
    public var columns: Int

    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
    }
}

/// What the process can learn about the terminal behind a descriptor.
public enum Terminal {
    /// True when `fd` is a terminal (not a pipe or a file).
    public static func isTerminal(fd: Int32) -> Bool { isatty(fd) == 1 }

    /// The terminal's size, or nil when `fd` is not a terminal or its size
    /// is not known (a pseudo-terminal nobody sized reports 0 × 0).
    public static func size(fd: Int32) -> TerminalSize? {
        guard let size = windowSize(fd), size.ws_col > 0, size.ws_row > 0 else { return nil }
        return TerminalSize(rows: Int(size.ws_row), columns: Int(size.ws_col))
    }

    /// The terminal's width in columns, or nil when it cannot be read.
    public static func columns(fd: Int32) -> Int? {
        guard let size = windowSize(fd), size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    /// `TIOCGWINSZ` on `fd`, or nil when it fails (not a terminal).
    private static func windowSize(_ fd: Int32) -> winsize? {
        var size = winsize()
        return ioctl(fd, UInt(TIOCGWINSZ), &size) == 0 ? size : nil
    }
}
