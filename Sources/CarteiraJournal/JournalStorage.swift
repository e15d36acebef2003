#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The journal file as the writer uses it: a seam so tests can inject a
/// failing or short write or a failing sync. Used from one thread at a time
/// (the writer thread, a caller running a batch in its place, or
/// `Journal.open` before the writer starts).
public protocol JournalStorage: Sendable {
    /// Writes all of `bytes` at the end of the file, or throws.
    func append(_ bytes: [UInt8]) throws
    /// Puts what was appended on stable storage (`fdatasync`).
    func sync() throws
    func truncate(to offset: Int64) throws
    func size() throws -> Int64
    /// Whether a batch may be written and synced on the thread that queued
    /// it, while the writer's own thread is parked (`JournalWriter
    /// .syncPendingHere()`): true only when a sync waits for nothing but the
    /// local disk, as a file's does; false (the default) for storage that
    /// waits on the network or on anything else.
    var syncsOnCaller: Bool { get }
}

extension JournalStorage {
    public var syncsOnCaller: Bool { false }
}

/// The journal file on a POSIX file system, opened for appending (created
/// if missing).
///
/// Every `sync` also checks that the open file is still the one at `path`:
/// a journal deleted (nothing at the path) or replaced (another device or
/// inode at the path) under a running server would take every later line
/// into a file nobody will ever replay, so the sync fails instead and nothing more is
/// acknowledged.
public final class PosixJournalStorage: JournalStorage {
    private let descriptor: Int32
    private let device: UInt64
    private let inode: UInt64
    public let path: String
    /// A local file: a sync waits only for the disk. False makes the writer
    /// run every batch on its own thread (benchmarks compare the two).
    public let syncsOnCaller: Bool

    public init(path: String, syncsOnCaller: Bool = true) throws {
        self.path = path
        self.syncsOnCaller = syncsOnCaller
        descriptor = try Posix.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC)
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let failure = Posix.error("stat", path)
            close(descriptor)
            throw failure
        }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }

    deinit {
        close(descriptor)
    }

    public func append(_ bytes: [UInt8]) throws {
        try Posix.writeAll(descriptor, bytes, what: path)
    }

    public func sync() throws {
        try Posix.sync(descriptor, what: path)
        try checkStillAtPath()
    }

    /// Throws unless the open file is still the one at `path`.
    private func checkStillAtPath() throws(JournalError) {
        var named = stat()
        guard stat(path, &named) == 0 else {
            if errno == ENOENT {
                throw .io("sync \(path): the journal file was deleted while the server was writing it")
            }
            throw Posix.error("stat", path)
        }
        // The path naming this very file is one of its links, so it was not
        // deleted: one `stat` a sync says all, no `fstat` for `st_nlink`.
        guard UInt64(named.st_dev) == device, UInt64(named.st_ino) == inode else {
            throw .io("sync \(path): the journal file was replaced by another file while the server was writing it")
        }
    }

    public func truncate(to offset: Int64) throws {
        guard ftruncate(descriptor, off_t(offset)) == 0 else { throw Posix.error("truncate", path) }
    }

    public func size() throws -> Int64 {
        try Posix.size(descriptor, what: path)
    }
}

/// Thin wrappers that turn errno into `JournalError.io` with the file named.
enum Posix {
    static func error(_ operation: String, _ path: String) -> JournalError {
        .io("\(operation) \(path): \(String(cString: strerror(errno)))")
    }

    static func open(_ path: String, _ flags: Int32) throws(JournalError) -> Int32 {
        while true {
            let descriptor = systemOpen(path, flags, 0o644)
            if descriptor >= 0 { return descriptor }
            if errno != EINTR { throw error("open", path) }
        }
    }

    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], what path: String) throws(JournalError) {
        // Loops on short writes; false when write(2) failed (errno says why).
        let complete = bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let result = write(descriptor, buffer.baseAddress.map { $0 + written }, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += result
            }
            return true
        }
        guard complete else { throw error("write", path) }
    }

    static func sync(_ descriptor: Int32, what path: String) throws(JournalError) {
        #if canImport(Darwin)
            let result = fsync(descriptor)
        #else
            let result = fdatasync(descriptor)
        #endif
        guard result == 0 else { throw error("sync", path) }
    }

    static func size(_ descriptor: Int32, what path: String) throws(JournalError) -> Int64 {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw error("stat", path) }
        return Int64(status.st_size)
    }

    /// Reads up to `count` bytes at `offset` into `pointer`; 0 at the end.
    static func read(
        _ descriptor: Int32, into pointer: UnsafeMutableRawPointer, count: Int, at offset: Int64, what path: String
    ) throws(JournalError) -> Int {
        while true {
            let result = pread(descriptor, pointer, count, off_t(offset))
            if result >= 0 { return result }
            if errno != EINTR { throw error("read", path) }
        }
    }

    /// Makes a new or removed directory entry durable.
    static func syncDirectory(_ path: String) throws(JournalError) {
        let descriptor = try open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw error("sync", path) }
    }

    static func fileExists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    static func makeDirectories(_ path: String) throws(JournalError) {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component + "/"
            if isDirectory(prefix) { continue }
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw error("mkdir", prefix) }
        }
    }

    /// Unix time in milliseconds, for naming the files `repair` keeps.
    static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

// `open` is variadic in C; Swift imports the three-argument form under the
// same name, which our `Posix.open` would shadow inside the enum.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    open(path, flags, mode)
}
