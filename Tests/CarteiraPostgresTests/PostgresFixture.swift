// The tests need the `Postgres` trait:
// swift test --traits Postgres --scratch-path .build-postgres --filter CarteiraPostgresTests
#if Postgres
    import CarteiraCore
    import CarteiraJournal
    import CarteiraPostgres
    import CarteiraServer
    import CarteiraTestSupport
    import Foundation
    import Logging
    import Synchronization

    #if canImport(Glibc)
        import Glibc
    #endif

    /// One real PostgreSQL for the whole test run, started by
    /// `tools/pg-local` (initdb into a temporary directory, loopback, a free
    /// port) and stopped when the process exits. Each test gets a database of
    /// its own. Where none can be started, `unavailableReason` says why and
    /// the tests are skipped with it.
    enum PostgresFixture {
        struct Server: Sendable {
            var directory: String
            var port: Int
        }

        static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()

        static let started: Result<Server, FixtureError> = start()

        static var available: Bool {
            if case .success = started { return true }
            return false
        }

        static var unavailableReason: String {
            if case let .failure(error) = started { return "no PostgreSQL could be started: \(error.message)" }
            return ""
        }

        private static func start() -> Result<Server, FixtureError> {
            let directory = "/tmp/carteira-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let port = freePort()
            let (status, output) = run(
                repository.appendingPathComponent("tools/pg-local").path, ["start", directory, "\(port)"])
            guard status == 0 else { return .failure(FixtureError(message: output)) }
            stopDirectory.withLock { $0 = directory }
            atexit {
                if let directory = PostgresFixture.stopDirectory.withLock({ $0 }) {
                    _ = PostgresFixture.run(
                        PostgresFixture.repository.appendingPathComponent("tools/pg-local").path,
                        ["stop", directory])
                    try? FileManager.default.removeItem(atPath: directory)
                }
            }
            return .success(Server(directory: directory, port: port))
        }

        static let stopDirectory = Locked<String?>(nil)
        private static let databases = Atomic<Int>(0)

        /// A new, empty database on the shared server.
        static func database() throws -> PostgresURL {
            let server = try started.get()
            let name = "carteira_test_\(databases.wrappingAdd(1, ordering: .relaxed).newValue)"
            let (status, output) = run(
                "/usr/bin/psql",
                [
                    "-X", "-q", "-h", "127.0.0.1", "-p", "\(server.port)", "-U", "carteira", "-d", "postgres", "-c",
                    "CREATE DATABASE \(name)",
                ])
            guard status == 0 else { throw FixtureError(message: "CREATE DATABASE: \(output)") }
            return try PostgresURL("postgres://carteira@127.0.0.1:\(server.port)/\(name)")
        }

        /// Runs SQL with psql on `url`'s database; its output.
        @discardableResult
        static func sql(_ url: PostgresURL, _ statement: String) throws -> String {
            let (status, output) = run(
                "/usr/bin/psql",
                [
                    "-X", "-q", "-t", "-A", "-h", url.host, "-p", "\(url.port)", "-U", url.user, "-d", url.database,
                    "-c", statement,
                ])
            guard status == 0 else { throw FixtureError(message: "psql: \(output)") }
            return output.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Runs `executable` with `arguments` to completion: its exit status
        /// and what it wrote to standard output and error (through a
        /// temporary file, so a daemon it starts cannot hold a pipe open).
        static func run(_ executable: String, _ arguments: [String]) -> (Int32, String) {
            let outputPath = "/tmp/carteira-pg-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            defer { unlink(outputPath) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
            guard spawned == 0 else { return (-1, "cannot run \(executable): \(String(cString: strerror(spawned)))") }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            // WIFEXITED / WEXITSTATUS, which Swift does not import.
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return (code, output)
        }

        /// A loopback port nothing listens on now.
        static func freePort() -> Int {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(descriptor) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }

    struct FixtureError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    let quietLogger: Logger = {
        var logger = Logger(label: "carteira-postgres-test")
        logger.logLevel = ProcessInfo.processInfo.environment["CARTEIRA_TEST_LOG"] != nil ? .debug : .critical
        return logger
    }()

    /// A node on `url` serving on a free port, started in a task of its own.
    final class RunningNode: Sendable {
        let node: PostgresNode
        let port: Int
        private let task: Task<Void, Never>

        init(
            url: PostgresURL, port: Int = PostgresFixture.freePort(),
            tune: (inout PostgresNode.Options) -> Void = { _ in },
            configure: (inout ServerConfiguration) -> Void = { _ in }
        ) {
            var options = PostgresNode.Options(url: url, advertise: "127.0.0.1:\(port)")
            options.pollInterval = .milliseconds(100)
            options.retryDelay = .milliseconds(200)
            tune(&options)
            var configuration = ServerConfiguration(host: "127.0.0.1", port: port, shutdownGraceSeconds: 2)
            configure(&configuration)
            let node = PostgresNode(configuration: configuration, options: options, logger: quietLogger)
            self.node = node
            self.port = port
            task = Task { try? await node.run() }
        }

        func stop() async {
            node.stop()
            await task.value
        }

        /// Waits until the node has the role.
        func becomes(_ role: PostgresNode.Role, within seconds: Double = 15) async -> Bool {
            await eventually(within: seconds) { node.role == role }
        }
    }
#endif
