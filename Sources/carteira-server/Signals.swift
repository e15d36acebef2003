import ServiceLifecycle
import UnixSignals

/// The signals that stop the server gracefully, trapped before it says it
/// is listening.
///
/// `ServiceGroup` installs its own handlers only once `run()` is under way,
/// so a SIGTERM sent the moment a script or supervisor reads the
/// "listening on" line would otherwise meet the default action and kill the
/// process mid-start (exit by signal, not 0).
struct GracefulShutdownSignals: Sendable {
    private let signals: UnixSignalsSequence

    /// Returns once the handlers are registered.
    init(_ trapped: [UnixSignal]) async {
        signals = await UnixSignalsSequence(trapping: trapped)
    }

    /// Runs `group` to its end; each trapped signal asks it to shut down
    /// gracefully. (Before `run()` starts, the request is remembered.)
    func run(_ group: ServiceGroup) async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { [signals] in
                for await _ in signals { await group.triggerGracefulShutdown() }
            }
            try await group.run()
            tasks.cancelAll()
        }
    }
}
