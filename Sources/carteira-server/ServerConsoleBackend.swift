import CarteiraConsole
import CarteiraCore
import CarteiraJournal
import CarteiraServer

/// The admin console's view of the running server: reads come from the
/// ledger service and are shown only once what they reflect is durable.
struct ServerConsoleBackend: ConsoleBackend {
    let server: CarteiraServer
    private let verifier = DedicatedThread(name: "carteira-verify")

    init(server: CarteiraServer) {
        self.server = server
    }

    func ledger() async -> Ledger {
        let (ledger, seq) = await server.ledgerService.snapshot()
        // After a journal failure the state is shown anyway: the operator
        // needs to see it, and the console says nothing to peers.
        try? await server.journalWriter.waitDurable(through: seq)
        return ledger
    }

    func sessions() async -> [ConsoleSession] {
        await server.ledgerService.sessionSummaries().map { summary in
            ConsoleSession(
                remoteAddress: summary.remoteAddress, machine: summary.machine, connectedAt: summary.connectedAt,
                requestsServed: summary.requestsServed)
        }
    }

    func statistics() async -> ConsoleStatistics {
        let journal = server.journalWriter.statistics()
        let service = server.ledgerService
        return ConsoleStatistics(
            journalPath: server.journalPath, journalSizeBytes: journal.fileSize, lastSeq: journal.lastSeq,
            syncs: Int64(journal.syncs), eventsSynced: Int64(journal.eventsSynced),
            requestsLastMinute: Int64(await service.requestsLastMinute()),
            uptimeSeconds: await service.uptimeMilliseconds() / 1000, startedAt: service.startedAt)
    }

    func rotateKey(of machine: MachineName) async -> Result<(PaymentKey, Timestamp), Rejection> {
        switch await server.ledgerService.adminRotate(machine) {
        case let .failure(rejection):
            return .failure(rejection)
        case let .success(rotation):
            do {
                try await server.journalWriter.waitDurable(through: rotation.seq)
            } catch {
                return .failure(Rejection(.unavailable, "the journal could not be written"))
            }
            return .success((rotation.key, rotation.expires))
        }
    }

    func verifyJournal() async -> Result<String, JournalVerifyFailure> {
        let directory = server.configuration.journalDirectory
        // Reading a large journal takes a while: not on the shared task pool.
        return await verifier.run {
            do {
                let summary = try JournalVerifier.verify(directory: directory)
                return .success(JournalReport.summary(summary, directory: directory))
            } catch {
                return .failure(JournalVerifyFailure("\(error)"))
            }
        }
    }

    func shutdown() async {
        server.shutdown()
    }
}
