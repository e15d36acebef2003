#if Postgres
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`, the `--journal` value that
    /// selects the PostgreSQL journal. The password comes from the URL or, if
    /// the URL has none, from `PGPASSWORD`.
    public struct PostgresURL: Sendable, Hashable, CustomStringConvertible {
        public var user: String
        public var password: String?
        public var host: String
        public var port: Int
        public var database: String

        public static func isPostgres(_ text: String) -> Bool {
            text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
        }

        /// Parses `text`, or throws a message for people naming what is wrong.
        public init(_ text: String, environment: [String: String] = [:]) throws(PostgresURLError) {
            let rest: Substring
            if text.hasPrefix("postgres://") {
                rest = text.dropFirst("postgres://".count)
            } else if text.hasPrefix("postgresql://") {
                rest = text.dropFirst("postgresql://".count)
            } else {
                throw PostgresURLError("a PostgreSQL journal is postgres://USER@HOST:PORT/DB")
            }
            guard let at = rest.lastIndex(of: "@") else {
                throw PostgresURLError("the PostgreSQL URL needs a user: postgres://USER@HOST:PORT/DB")
            }
            let credentials = rest[..<at]
            let location = rest[rest.index(after: at)...]
            let userPart: Substring
            if let colon = credentials.firstIndex(of: ":") {
                userPart = credentials[..<colon]
                password = Self.unescape(credentials[credentials.index(after: colon)...])
            } else {
                userPart = credentials
                password = nil
            }
            guard let user = Self.unescape(userPart), !user.isEmpty else {
                throw PostgresURLError("the PostgreSQL URL needs a user: postgres://USER@HOST:PORT/DB")
            }
            self.user = user
            if password == nil { password = environment["PGPASSWORD"] }
            guard let slash = location.firstIndex(of: "/") else {
                throw PostgresURLError("the PostgreSQL URL needs a database: postgres://USER@HOST:PORT/DB")
            }
            var database = location[location.index(after: slash)...]
            if let query = database.firstIndex(of: "?") { database = database[..<query] }
            guard let name = Self.unescape(database), !name.isEmpty else {
                throw PostgresURLError("the PostgreSQL URL needs a database: postgres://USER@HOST:PORT/DB")
            }
            self.database = name
            let hostPort = location[..<slash]
            if let colon = hostPort.lastIndex(of: ":") {
                host = String(hostPort[..<colon])
                guard let port = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(port) else {
                    throw PostgresURLError("the PostgreSQL port must be 1 to 65535")
                }
                self.port = port
            } else {
                host = String(hostPort)
                port = 5432
            }
            guard !host.isEmpty else {
                throw PostgresURLError("the PostgreSQL URL needs a host: postgres://USER@HOST:PORT/DB")
            }
        }

        /// The URL without its password, for logs and messages.
        public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }

        /// Undoes `%XX` escapes; nil for a malformed escape.
        private static func unescape(_ text: Substring) -> String? {
            var bytes: [UInt8] = []
            var iterator = text.utf8.makeIterator()
            while let byte = iterator.next() {
                guard byte == UInt8(ascii: "%") else {
                    bytes.append(byte)
                    continue
                }
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            }
            return String(validating: bytes, as: UTF8.self)
        }
    }

    public struct PostgresURLError: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ description: String) { self.description = description }
    }
#endif
