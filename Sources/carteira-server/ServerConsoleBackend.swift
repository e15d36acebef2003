import CarteiraConsole
import CarteiraCore
import CarteiraJournal
import CarteiraServer
import CarteiraTerminal

/// The admin console's view of the running server: reads come from the
/// ledger service and are shown only once what they reflect is durable.
struct ServerConsoleBackend: ConsoleBackend {
    let server: CarteiraServer
    private let verifier = DedicatedThread(name: "carteira-verify")

    init(server: CarteiraServer) {
        self.server = server
    }

    func ledger() async -> Ledger {
        await server.durableLedger()
    }

    func sessions() async -> [ConsoleSession] {
        server.sessionSummaries().map { summary in
            var session = ConsoleSession(
                remoteAddress: summary.remoteAddress, machine: summary.machine, connectedAt: summary.connectedAt,
                requestsServed: summary.requestsServed)
            session.rateLimited = summary.rateLimited
            return session
        }
    }

    func statistics() async -> ConsoleStatistics {
        let journal = server.journalStatistics
        var statistics = ConsoleStatistics(
            journalPath: server.journalPath, journalSizeBytes: journal.fileSize, lastSeq: journal.lastSeq,
            lastHash: journal.lastHash,
            syncs: Int64(journal.syncs), eventsSynced: Int64(journal.eventsSynced),
            requestsLastMinute: Int64(await server.requestsLastMinute()),
            uptimeSeconds: server.uptimeMilliseconds() / 1000, startedAt: server.startedAt)
        let limits = server.rateLimitSummary()
        statistics.rateLimitedRefusals = limits.refusals
        statistics.limitedConnections = limits.limitedConnections
        statistics.limitedAddresses = limits.limitedAddresses
        statistics.limitedMachines = limits.limitedMachines
        return statistics
    }

    func rotateKey(of machine: MachineName) async -> Result<(PaymentKey, Timestamp), Rejection> {
        await server.rotateKey(of: machine)
    }

    func ledger(at point: PointInTime) async -> Result<Ledger, JournalVerifyFailure> {
        let directory = server.configuration.journalDirectory
        // A replay of the journal's prefix: not on the shared task pool.
        return await verifier.run {
            do {
                return .success(try JournalReplayAt.replay(directory, at: point).ledger)
            } catch {
                return .failure(JournalVerifyFailure("\(error)"))
            }
        }
    }

    func verifyJournal() async -> Result<ConsoleReport, JournalVerifyFailure> {
        let directory = server.configuration.journalDirectory
        // Reading a large journal takes a while: not on the shared task pool.
        return await verifier.run {
            do {
                let report = try JournalVerifier.report(directory: directory)
                let path = Journal.path(in: directory)
                return .success(
                    ConsoleReport(
                        text: JournalRows.render(report, journal: path, format: .table),
                        rows: JournalRows.rows(report, journal: path), passed: report.passed))
            } catch {
                return .failure(JournalVerifyFailure("\(error)"))
            }
        }
    }

    func shutdown() async {
        server.shutdown()
    }
}
