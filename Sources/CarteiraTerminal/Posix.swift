#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CarteiraCore

/// A non-blocking pipe that wakes a thread sleeping in `poll`: other threads
/// (and the SIGINT handler) write one byte, the polling thread drains it.
struct WakePipe: Sendable {
    let readEnd: Int32
    let writeEnd: Int32

    init() throws(TerminalIOError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw TerminalIOError("pipe", errno: errno) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    /// Never blocks: a full pipe already means "wake up".
    func wake(_ reason: UInt8) {
        var byte = reason
        _ = write(writeEnd, &byte, 1)
    }

    /// The bytes written since the last drain.
    func drain() -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let count = read(readEnd, &buffer, buffer.count)
            guard count > 0 else { return bytes }
            bytes += buffer[0..<count]
        }
    }

    func close() {
        closeDescriptor(readEnd)
        closeDescriptor(writeEnd)
    }
}

func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}

/// What woke a `poll` on an input and a wake pipe.
enum PollResult {
    case input
    case woken
    case failed
}

/// Sleeps until `fd` has input (or hung up) or the wake pipe was written.
/// Reports the wake pipe first so a close is seen even under steady input.
func waitForInput(_ fd: Int32, or pipe: WakePipe) -> PollResult {
    var fds = [
        pollfd(fd: pipe.readEnd, events: Int16(POLLIN), revents: 0),
        pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
    ]
    while true {
        let ready = poll(&fds, 2, -1)
        if ready < 0 {
            if errno == EINTR { continue }
            return .failed
        }
        if fds[0].revents != 0 { return .woken }
        if fds[1].revents != 0 { return .input }
    }
}

/// Writes all of `text` to `fd`, retrying short writes and EINTR.
public func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            return
        }
        bytes = bytes.dropFirst(written)
    }
}

/// A system call that failed, with its errno.
public struct TerminalIOError: Error, Sendable, Hashable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation) failed: \(String(cString: strerror(errno)))" }
}

/// Reads lines from a file descriptor (a pipe or file) on the calling
/// thread, with no prompt and no echo. `close()` from any thread ends a
/// blocked `readLine()`.
public final class FileLineReader: Sendable {
    /// Longer lines are cut here; the rest up to the newline is dropped.
    public static let maximumLineBytes = 4096

    private let fd: Int32
    private let pipe: WakePipe
    private let buffer = Locked<[UInt8]>([])

    public init(fd: Int32) throws(TerminalIOError) {
        self.fd = fd
        self.pipe = try WakePipe()
    }

    deinit { pipe.close() }

    public func close() { pipe.wake(UInt8(ascii: "c")) }

    /// The next line without its newline; `nil` at end of input or after `close()`.
    public func readLine() -> String? {
        var chunk = [UInt8](repeating: 0, count: 4096)
        return buffer.withLock { pending -> String? in
            while true {
                if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    var line = pending[..<newline].prefix(Self.maximumLineBytes)
                    pending.removeSubrange(...newline)
                    if line.last == UInt8(ascii: "\r") { line.removeLast() }
                    return String(decoding: line, as: UTF8.self)
                }
                guard waitForInput(fd, or: pipe) == .input else { return nil }
                let count = read(fd, &chunk, chunk.count)
                if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                guard count > 0 else {
                    // End of input: a last line without a newline still counts.
                    guard !pending.isEmpty else { return nil }
                    let line = String(decoding: pending.prefix(Self.maximumLineBytes), as: UTF8.self)
                    pending.removeAll()
                    return line
                }
                pending += chunk[0..<count]
                // Keep the buffer bounded while a line is too long.
                if pending.count > Self.maximumLineBytes && !pending.contains(UInt8(ascii: "\n")) {
                    pending.removeSubrange(Self.maximumLineBytes...)
                }
            }
        }
    }
}
