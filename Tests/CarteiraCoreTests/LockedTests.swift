import CarteiraCore
import Dispatch
import Testing

/// A lock shared by the threads of one test.
private final class Shared: Sendable {
    let counter = Locked(0)
    let log = Locked<[Int]>([])
}

@Suite("Locked: the package's lock (Mutex, or pthread_mutex_t under -DCARTEIRA_TSAN)")
struct LockedTests {
    @Test("two threads adding under the lock lose no update, and the value comes back out")
    func mutualExclusion() {
        let shared = Shared()
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
            for index in 0..<10_000 {
                shared.counter.withLock { $0 += 1 }
                shared.log.withLock { $0.append(thread * 10_000 + index) }
            }
        }
        #expect(shared.counter.withLock { $0 } == 20_000)
        let log = shared.log.withLock { $0 }
        #expect(log.count == 20_000 && Set(log).count == 20_000)
    }

    @Test("withLockIfAvailable is nil, without running its body, while another thread holds the lock; then it runs")
    func ifAvailable() {
        let shared = Shared()
        let holding = DispatchSemaphore(value: 0)
        let tried = DispatchSemaphore(value: 0)
        let released = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            shared.counter.withLock { value in
                value = 1
                holding.signal()
                tried.wait()
            }
            released.signal()
        }
        holding.wait()
        let whileHeld: Int? = shared.counter.withLockIfAvailable { value in
            value = 99
            return value
        }
        tried.signal()
        released.wait()
        #expect(whileHeld == nil)
        #expect(shared.counter.withLock { $0 } == 1)
        #expect(shared.counter.withLockIfAvailable { $0 } == 1)
    }

    @Test("a throwing body's error comes out typed and the lock is free again")
    func throwingBody() {
        struct Refused: Error, Equatable {}
        let shared = Shared()
        #expect(throws: Refused.self) {
            try shared.counter.withLock { (value: inout Int) throws(Refused) -> Void in
                value = 5
                throw Refused()
            }
        }
        #expect(shared.counter.withLockIfAvailable { $0 } == 5)
    }
}
