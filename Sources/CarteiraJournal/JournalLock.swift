import CarteiraCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The exclusive `flock` on `DIR/LOCK` that makes one server (or one
/// `journal repair`) the only writer of a journal. The file holds the
/// holder's PID so a refused second server can name it.
///
/// `flock` belongs to the open file description, so a second `acquire` in
/// the same process conflicts too.
public final class JournalLock: Sendable {
    public let path: String
    private let descriptor: Locked<Int32?>

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = Locked(descriptor)
    }

    deinit {
        release()
    }

    /// Takes the lock or throws `.lockHeld` naming the holder's PID.
    static func acquire(directory: String) throws(JournalError) -> JournalLock {
        let path = directory + "/" + Journal.lockFileName
        let descriptor = try Posix.open(path, O_RDWR | O_CREAT | O_CLOEXEC)
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let failure =
                errno == EWOULDBLOCK ? JournalError.lockHeld(pid: readPID(descriptor)) : Posix.error("lock", path)
            close(descriptor)
            throw failure
        }
        let pid = Array("\(getpid())\n".utf8)
        let written = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        // Overwrite, then cut whatever a longer old PID left behind.
        guard written == pid.count, ftruncate(descriptor, off_t(pid.count)) == 0
        else {
            let failure = Posix.error("write", path)
            close(descriptor)
            throw failure
        }
        return JournalLock(path: path, descriptor: descriptor)
    }

    /// True when a live process holds the lock of `directory` now. Takes the
    /// lock for an instant if it is free, and never keeps it.
    static func isHeld(directory: String) -> Bool {
        let path = directory + "/" + Journal.lockFileName
        guard let descriptor = try? Posix.open(path, O_RDONLY | O_CLOEXEC) else { return false }
        defer { close(descriptor) }
        if flock(descriptor, LOCK_EX | LOCK_NB) == 0 {
            flock(descriptor, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    /// Gives the lock up. Idempotent. Unlocks explicitly before closing: a
    /// child process being spawned at that moment holds a copy of the
    /// descriptor until its `exec`, and closing ours alone would leave the
    /// lock held through that copy.
    public func release() {
        descriptor.withLock { descriptor in
            if let open = descriptor {
                // A LOCK left behind after a clean exit names no process.
                _ = ftruncate(open, 0)
                flock(open, LOCK_UN)
                close(open)
            }
            descriptor = nil
        }
    }

    private static func readPID(_ descriptor: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 16)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: bytes[0..<count], as: UTF8.self)
        return Int32(text.split(separator: "\n").first ?? "")
    }
}
