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

        static let stopDirectory = Mutex<String?>(nil)
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

        static func run(_ executable: String, _ arguments: [String]) -> (Int32, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            do {
                try process.run()
            } catch {
                return (-1, "cannot run \(executable): \(error)")
            }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
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
            tune: (inout PostgresNode.Options) -> Void = { _ in }
        ) {
            var options = PostgresNode.Options(url: url, advertise: "127.0.0.1:\(port)")
            options.pollInterval = .milliseconds(100)
            options.retryDelay = .milliseconds(200)
            tune(&options)
            let configuration = ServerConfiguration(host: "127.0.0.1", port: port, shutdownGraceSeconds: 2)
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
