import CarteiraCore
import Dispatch
import Foundation

/// One OS thread of its own that runs the jobs given to it, in order. Blocking
/// terminal reads (readline, a pipe) run here: never on an event loop or the
/// Swift cooperative pool.
public final class DedicatedThread: Sendable {
    private let queue = JobQueue()

    public init(name: String) {
        let thread = Thread { [queue] in
            // A nil job is the stop signal from deinit.
            while let job = queue.next() { job() }
        }
        thread.name = name
        thread.start()
    }

    deinit { queue.submit(nil) }

    /// Runs `body` on the thread and returns its result.
    public func run<Value: Sendable>(_ body: @escaping @Sendable () -> Value) async -> Value {
        await withCheckedContinuation { continuation in
            queue.submit { continuation.resume(returning: body()) }
        }
    }
}

private final class JobQueue: Sendable {
    typealias Job = @Sendable () -> Void

    private let jobs = Locked<[Job?]>([])
    private let available = DispatchSemaphore(value: 0)

    func submit(_ job: Job?) {
        jobs.withLock { $0.append(job) }
        available.signal()
    }

    /// Blocks until a job is queued.
    func next() -> Job? {
        available.wait()
        return jobs.withLock { $0.removeFirst() }
    }
}
