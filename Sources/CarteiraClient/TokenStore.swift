public import CarteiraCore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where machine tokens live: one file per server and machine,
/// `<directory>/<host>_<port>/<machine>.token`, mode 0600 in directories of
/// mode 0700, each written atomically (a temporary file renamed over it).
public struct TokenStore: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// `$CARTEIRA_HOME` when set, else `~/.carteira`.
    public static func defaultDirectory(environment: [String: String]) -> String {
        if let home = environment["CARTEIRA_HOME"], !home.isEmpty { return home }
        let userHome = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return userHome + "/.carteira"
    }

    public enum Failure: Error, Sendable, Hashable, CustomStringConvertible {
        case malformed(path: String)
        case io(path: String, operation: String, errno: Int32)
        /// Group or others may read or write the file (as `ssh` refuses such a key).
        case tooOpen(path: String, mode: UInt32)

        public var description: String {
            switch self {
            case let .malformed(path):
                "the token file \(path) does not hold a token; delete it and run `carteira register` to start over"
            case let .tooOpen(path, mode):
                "permissions \(String(mode, radix: 8)) for the token file \(path) are too open: anyone who can read it can spend "
                    + "from this wallet, so it is not used; make it private with `chmod 600 \(path)`"
            case let .io(path, operation, code): "cannot \(operation) \(path): \(String(cString: strerror(code)))"
            }
        }
    }

    /// The file that holds `machine`'s token for `server`.
    public func path(server: ServerAddress, machine: MachineName) -> String {
        "\(serverDirectory(server))/\(machine.text).token"
    }

    private func serverDirectory(_ server: ServerAddress) -> String {
        // `localhost` is the same server as 127.0.0.1, so they share tokens.
        let name = ["localhost", "localhost."].contains(server.host.lowercased()) ? "127.0.0.1" : server.host
        // Only characters safe in a file name; `:` of an IPv6 host becomes `_`.
        let host = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") ? $0 : "_" })
        return "\(directory)/\(host)_\(server.port)"
    }

    /// The saved token, or `nil` when there is none.
    public func load(server: ServerAddress, machine: MachineName) throws(Failure) -> Token? {
        let path = path(server: server, machine: machine)
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw .io(path: path, operation: "open", errno: errno)
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .io(path: path, operation: "inspect", errno: errno) }
        let mode = UInt32(status.st_mode) & 0o777
        guard mode & 0o077 == 0 else { throw .tooOpen(path: path, mode: mode) }
        // A token file is 33 bytes; read a little more to notice junk.
        var bytes = [UInt8](repeating: 0, count: 128)
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw .io(path: path, operation: "read", errno: errno) }
        var text = String(decoding: bytes[..<count], as: UTF8.self)
        if text.hasSuffix("\n") { text.removeLast() }
        guard let token = Token(text) else { throw .malformed(path: path) }
        return token
    }

    /// Saves `token`, replacing any earlier one for the same server and machine.
    public func save(_ token: Token, server: ServerAddress, machine: MachineName) throws(Failure) {
        try makeDirectory(directory)
        try makeDirectory(serverDirectory(server))
        let path = path(server: server, machine: machine)
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .io(path: temporary, operation: "create", errno: errno) }
        let bytes = Array((token.text + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let writeErrno = errno
        // fsync before rename: after a crash the file holds the whole token or the old one.
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw .io(path: temporary, operation: "write", errno: written < 0 ? writeErrno : EIO)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw .io(path: path, operation: "rename", errno: code)
        }
    }

    private func makeDirectory(_ path: String) throws(Failure) {
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            throw .io(path: path, operation: "create directory", errno: errno)
        }
    }
}
