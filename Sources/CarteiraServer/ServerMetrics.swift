import CarteiraCore
import CarteiraJournal
import CarteiraProtocol
import CoreMetrics
import Prometheus
import Synchronization

/// The server's instruments (docs/operations.md, Metrics), made through
/// swift-metrics on a Prometheus registry of this server's own, so that
/// several servers in one process (the tests) never share a series. Only
/// made when `--metrics` is given; every hook is one optional call.
///
/// Requests are counted when they are decided, by command and result
/// code; everything about the journal and the ledger's changes is counted
/// on the journal thread once it is durable, from the batch itself.
final class ServerMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    /// `carteira_requests_total{command,result}`, made on first use: most
    /// of the command × result pairs never happen.
    private let requests: [RequestSlot]
    private let connectionsOpen: CoreMetrics.Gauge
    private let open = Atomic<Int>(0)
    private let connectionsAccepted: CoreMetrics.Counter
    private let connectionsRefused: CoreMetrics.Counter
    private let syncs: CoreMetrics.Counter
    private let syncsOnEventLoop: CoreMetrics.Counter
    private let journalEvents: CoreMetrics.Counter
    private let journalBytes: CoreMetrics.Counter
    private let eventsPerSync: CoreMetrics.Recorder
    private let syncLatency: CoreMetrics.Timer
    private let durableSeq: CoreMetrics.Gauge
    private let journalFailures: CoreMetrics.Counter
    private let transfers: CoreMetrics.Counter
    private let transferredCents: CoreMetrics.Counter
    private let transferAmounts: CoreMetrics.Recorder
    private let registrations: CoreMetrics.Counter
    private let rotations: [KeyRotationReason: CoreMetrics.Counter]
    private let replaySeconds: CoreMetrics.Gauge
    private let replayEvents: CoreMetrics.Gauge

    /// Commands by index: the protocol's commands, then `invalid` for a line
    /// that is not a request.
    static let commands = Request.commandNames + ["invalid"]
    /// Results by index: `ok`, then every error code.
    static let results = ["ok"] + ErrorCode.allCases.map(\.rawValue)

    init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // A sync takes tens of microseconds on a fast disk, milliseconds on
        // a slow one.
        factory.durationHistogramBuckets["carteira_journal_sync_seconds"] = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
            .seconds(1),
        ]
        factory.valueHistogramBuckets["carteira_journal_events_per_sync"] = [
            1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096,
        ]
        // R$ 1, 5, 10, 20, 50, 100, 200, 500, 1.000, 10.000 in centavos.
        factory.valueHistogramBuckets["carteira_transfer_amount_cents"] = [
            100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 1_000_000,
        ]
        self.registry = registry
        self.factory = factory
        requests = (0..<(Self.commands.count * Self.results.count)).map { _ in RequestSlot() }
        func counter(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
        }
        func gauge(_ label: String) -> CoreMetrics.Gauge { CoreMetrics.Gauge(label: label, factory: factory) }
        func histogram(_ label: String) -> CoreMetrics.Recorder {
            CoreMetrics.Recorder(label: label, aggregate: true, factory: factory)
        }
        connectionsOpen = gauge("carteira_connections_open")
        connectionsAccepted = counter("carteira_connections_total", [("result", "accepted")])
        connectionsRefused = counter("carteira_connections_total", [("result", "refused")])
        syncs = counter("carteira_journal_syncs_total")
        syncsOnEventLoop = counter("carteira_journal_syncs_on_event_loop_total")
        journalEvents = counter("carteira_journal_events_total")
        journalBytes = counter("carteira_journal_bytes_total")
        eventsPerSync = histogram("carteira_journal_events_per_sync")
        syncLatency = CoreMetrics.Timer(label: "carteira_journal_sync_seconds", factory: factory)
        durableSeq = gauge("carteira_journal_durable_seq")
        journalFailures = counter("carteira_journal_failures_total")
        transfers = counter("carteira_transfers_total")
        transferredCents = counter("carteira_transferred_cents_total")
        transferAmounts = histogram("carteira_transfer_amount_cents")
        registrations = counter("carteira_registrations_total")
        rotations = Dictionary(
            uniqueKeysWithValues: KeyRotationReason.allCases.map {
                ($0, counter("carteira_key_rotations_total", [("reason", $0.rawValue)]))
            })
        replaySeconds = gauge("carteira_replay_seconds")
        replayEvents = gauge("carteira_replay_events")
        connectionsOpen.record(0)
    }

    /// The Prometheus text exposition of every series.
    func scrape() -> [UInt8] {
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return bytes
    }

    // MARK: Hooks

    func replayed(events: Int, took: Duration, durableSeq seq: Int64) {
        replayEvents.record(events)
        replaySeconds.record(Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
        durableSeq.record(seq)
    }

    /// One request decided: `command` is `nil` for a line that is not a
    /// request.
    func request(_ command: Request?, answered response: Response) {
        let commandIndex = command.map(\.commandIndex) ?? Self.commands.count - 1
        var resultIndex = 0
        if case let .error(rejection) = response {
            resultIndex = 1 + (ErrorCode.allCases.firstIndex(of: rejection.code) ?? 0)
        }
        let slot = commandIndex * Self.results.count + resultIndex
        let counter = requests[slot].counter.withLock { counter in
            if let counter { return counter }
            let made = CoreMetrics.Counter(
                label: "carteira_requests_total",
                dimensions: [("command", Self.commands[commandIndex]), ("result", Self.results[resultIndex])],
                factory: factory)
            counter = made
            return made
        }
        counter.increment()
    }

    func connectionAdmitted() {
        connectionsAccepted.increment()
        connectionsOpen.record(open.add(1, ordering: .relaxed).newValue)
    }

    func connectionRefused() { connectionsRefused.increment() }

    /// An admitted connection closed.
    func connectionClosed() { connectionsOpen.record(open.subtract(1, ordering: .relaxed).newValue) }

    /// On the thread that ran `batch`, once it is durable.
    func durable(_ batch: JournalBatch, through seq: Int64) {
        syncs.increment()
        if batch.ranOnCaller { syncsOnEventLoop.increment() }
        journalEvents.increment(by: batch.events.count)
        journalBytes.increment(by: batch.bytes)
        eventsPerSync.record(batch.events.count)
        syncLatency.recordNanoseconds(batch.syncNanoseconds)
        durableSeq.record(seq)
        for event in batch.events {
            switch event.kind {
            case let .transfer(transfer):
                transfers.increment()
                transferredCents.increment(by: transfer.amount.value)
                transferAmounts.record(transfer.amount.value)
            case .registered:
                registrations.increment()
            case let .keyRotated(rotation):
                rotations[rotation.reason]?.increment()
            case .genesis:
                break
            }
        }
    }

    func journalFailed() { journalFailures.increment() }
}

/// One `carteira_requests_total` series, made on its first request.
private final class RequestSlot: Sendable {
    let counter = Locked<CoreMetrics.Counter?>(nil)
}
