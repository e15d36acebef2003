import ArgumentParser
import CarteiraServer
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import UnixSignals

#if Postgres
    import CarteiraJournal
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
            printOut(
                "carteira-server on \(url) as \(advertised), listening on \(configuration.host):\(configuration.port)")
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: node, successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            do {
                try await group.run()
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

    /// `journal verify|replay|export` on a URL: the summary, the machine
    /// table or JSON, or the journal file's bytes.
    enum Output {
        case summary
        case table
        case json
        case export
    }

    static func offline(_ text: String, output: Output) throws {
        #if Postgres
            let environment = ProcessInfo.processInfo.environment
            let result: Result<Void, any Error> = blockingWait {
                let store: PostgresJournalStore
                let url: PostgresURL
                do {
                    url = try PostgresURL(text, environment: environment)
                    var logger = Logger(label: "carteira-journal")
                    logger.logLevel = .critical
                    store = try await PostgresJournalStore.connect(url, limits: nil, logger: logger)
                } catch {
                    return .failure(error)
                }
                let outcome: Result<Void, any Error>
                do {
                    try await write(output, of: store, url: url)
                    outcome = .success(())
                } catch {
                    outcome = .failure(error)
                }
                await store.close()
                return outcome
            }
            if case let .failure(error) = result {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode.failure
            }
        #else
            FileHandle.standardError.write(Data("error: \(missing)\n".utf8))
            throw ExitCode.failure
        #endif
    }

    #if Postgres
        private static func write(_ output: Output, of store: PostgresJournalStore, url: PostgresURL) async throws {
            if case .export = output {
                let out = FileHandle.standardOutput
                _ = try await PostgresJournalTools.export(store) { out.write(Data($0.utf8)) }
                return
            }
            let follower = try await PostgresJournalTools.verify(store)
            switch output {
            case .summary: print(PostgresJournalTools.summary(follower, url: url), terminator: "")
            case .table: print(JournalReport.machineTable(follower.ledger), terminator: "")
            case .json: print(JournalReport.machineJSON(follower.ledger), terminator: "")
            case .export: break
            }
        }
    #endif
}
