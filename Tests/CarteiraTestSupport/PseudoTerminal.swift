import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The other side of a pseudo-terminal: what a person types and sees.
public final class PseudoTerminal {
    public let master: Int32
    public let slave: Int32
    private var transcript: [UInt8] = []
    private var cursor = 0

    /// A fresh pseudo-terminal of `rows` × `columns`.
    public init(rows: UInt16 = 24, columns: UInt16 = 120) throws {
        // posix_openpt and friends are not in Swift's Glibc module; these
        // are the Linux ioctls behind them: TIOCSPTLCK (unlock), TIOCGPTN (number).
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
            throw POSIXError(.ENODEV)
        }
        slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
        guard slave >= 0 else { throw POSIXError(.ENODEV) }
        var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
    }

    deinit {
        close(slave)
        close(master)
    }

    public func type(_ keys: String) {
        var bytes = Array(keys.utf8)
        _ = write(master, &bytes, bytes.count)
    }

    /// Waits (with a deadline) until `text` appears on the screen after
    /// whatever the previous wait found; true if it did.
    public func shows(_ text: String, within seconds: Double = 10) -> Bool {
        let wanted = Array(text.utf8)
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let found = find(wanted) {
                cursor = found + wanted.count
                return true
            }
            guard Date() < deadline else { return false }
            var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = read(master, &chunk, chunk.count)
            if count > 0 { transcript += chunk[0..<count] }
        }
    }

    private func find(_ wanted: [UInt8]) -> Int? {
        guard transcript.count - cursor >= wanted.count else { return nil }
        for start in cursor...(transcript.count - wanted.count)
        where transcript[start..<(start + wanted.count)].elementsEqual(wanted) {
            return start
        }
        return nil
    }
}

/// One test at a time, across suites and test targets of the test process,
/// for what the process has only one of (readline's state, the SIGINT and
/// SIGPIPE dispositions a pager changes). Waiters get it in order.
public actor TestGate {
    /// Held by every test that opens a `LineEditor` or runs a pager.
    public static let readline = TestGate()

    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func acquire() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    public func release() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }

    /// Runs `body` holding the gate.
    public nonisolated func exclusively<Value: Sendable>(
        _ body: @Sendable () async throws -> Value
    ) async throws -> Value {
        await acquire()
        do {
            let value = try await body()
            await release()
            return value
        } catch {
            await release()
            throw error
        }
    }
}
