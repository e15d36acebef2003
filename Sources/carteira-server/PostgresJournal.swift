import ArgumentParser
import CarteiraServer
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import UnixSignals

import CarteiraJournal

#if Postgres
    import CarteiraPostgres
#endif

/// `--journal postgres://USER@HOST:PORT/DB`: the glue between the command
/// line and the PostgreSQL journal, which only a build with the `Postgres`
/// trait has (`swift build --traits Postgres`).
enum PostgresJournal {
    static func isURL(_ journal: String) -> Bool {
        journal.hasPrefix("postgres://") || journal.hasPrefix("postgresql://")
    }

    static let missing =
        "this carteira-server was built without the PostgreSQL journal (build it with: swift build --traits Postgres)"

    /// Serves as a leader or standby of the journal at `url` until a
    /// graceful-shutdown signal. No console: several servers share the journal.
    static func serve(
        url text: String, advertise: String?, configuration: ServerConfiguration, eventLoops: Int, logger: Logger
    ) async throws {
        #if Postgres
            let url: PostgresURL
            do {
                url = try PostgresURL(text, environment: ProcessInfo.processInfo.environment)
            } catch {
                printError("carteira-server: \(error)")
                throw ExitCode(1)
            }
            let advertised = advertise ?? "\(configuration.host):\(configuration.port)"
            guard isHostPort(advertised) else {
                printError("carteira-server: --advertise must be HOST:PORT, like 10.0.0.2:7070, got \(advertised)")
                throw ExitCode(1)
            }
            let node = PostgresNode(
                configuration: configuration, options: PostgresNode.Options(url: url, advertise: advertised),
                logger: logger, eventLoopGroup: MultiThreadedEventLoopGroup(numberOfThreads: eventLoops))
            let signals = await GracefulShutdownSignals([.sigterm, .sigint])
            printOut(
                "carteira-server on \(url) as \(advertised), listening on \(configuration.host):\(configuration.port)")
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: node, successTerminationBehavior: .gracefullyShutdownGroup)],
                    logger: logger))
            do {
                try await signals.run(group)
            } catch {
                printError("carteira-server: \(error)")
                throw ExitCode(1)
            }
        #else
            printError("carteira-server: \(missing)")
            throw ExitCode(1)
        #endif
    }

    /// `HOST:PORT` with a port of 1-65535.
    static func isHostPort(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            return false
        }
        let host = text[..<colon]
        return (1...65535).contains(port) && !host.isEmpty && !host.contains(where: { $0.isWhitespace || $0 == "|" })
    }

    /// The URL without its password, for reports and messages: as
    /// `PostgresURL` writes itself. (A report names a URL only once the
    /// journal behind it was read, so only in a build with the trait.)
    static func displayName(_ text: String) -> String {
        #if Postgres
            if let url = try? PostgresURL(text) { return url.description }
        #endif
        return "the PostgreSQL journal"
    }

    /// A journal tool's error on a URL: the build lacks the trait.
    struct Unavailable: Error, CustomStringConvertible {
        var description: String { PostgresJournal.missing }
    }

    /// `journal verify` on a URL: the same report as for a file.
    static func report(_ text: String, expecting anchors: [JournalAnchor]) throws -> VerifyReport {
        #if Postgres
            try withStore(text) { store in try await PostgresJournalTools.report(store, expecting: anchors) }
        #else
            throw Unavailable()
        #endif
    }

    /// `journal replay|statement` on a URL: the state at `point`, or now.
    static func summary(_ text: String, through point: ReplayPoint?) throws -> VerifySummary {
        #if Postgres
            try withStore(text) { store in try await PostgresJournalTools.verify(store, through: point) }
        #else
            throw Unavailable()
        #endif
    }

    /// `journal export` on a URL: the lines, checked, on standard output.
    static func export(_ text: String) throws {
        #if Postgres
            _ = try withStore(text) { store in
                let out = FileHandle.standardOutput
                return try await PostgresJournalTools.export(store) { out.write(Data($0.utf8)) }
            }
        #else
            throw Unavailable()
        #endif
    }

    #if Postgres
        /// Connects to the journal at `text`, runs `body`, closes; blocks.
        private static func withStore<T: Sendable>(
            _ text: String, _ body: @escaping @Sendable (PostgresJournalStore) async throws -> T
        ) throws -> T {
            let environment = ProcessInfo.processInfo.environment
            let result: Result<T, any Error> = blockingWait {
                let store: PostgresJournalStore
                do {
                    let url = try PostgresURL(text, environment: environment)
                    var logger = Logger(label: "carteira-journal")
                    logger.logLevel = .critical
                    store = try await PostgresJournalStore.connect(url, limits: nil, logger: logger)
                } catch {
                    return .failure(error)
                }
                let outcome: Result<T, any Error>
                do {
                    outcome = .success(try await body(store))
                } catch {
                    outcome = .failure(error)
                }
                await store.close()
                return outcome
            }
            return try result.get()
        }
    #endif
}
