// `Locked`: the lock every Carteira module uses for state shared between
// threads. In a normal build it is Synchronization's `Mutex`, every member
// inlined into the caller, so it costs exactly what `Mutex` costs. Built with
// `-Xswiftc -DCARTEIRA_TSAN` (what `tools/sanitize thread` does) it is a
// `pthread_mutex_t` instead: on Linux `Mutex` locks with raw `futex` system
// calls that ThreadSanitizer does not intercept, so TSan sees no
// happens-before edge between two critical sections and reports every access
// to the state the lock holds as a race (docs/testing.md, Sanitizers). TSan
// does intercept `pthread_mutex_lock`/`unlock`, so with this lock it checks
// the same code for real races instead.
#if CARTEIRA_TSAN
    #if canImport(Glibc)
        import Glibc
    #elseif canImport(Musl)
        import Musl
    #elseif canImport(Darwin)
        import Darwin
    #endif

    /// A value that only one thread at a time may touch: the value and a
    /// `pthread_mutex_t` (ThreadSanitizer build). Both live on the heap,
    /// allocated once by `init` and freed by `deinit`, because a
    /// `pthread_mutex_t` must never move and a noncopyable struct may; the
    /// struct only holds their addresses. Same shape as `Mutex`.
    public struct Locked<Value: ~Copyable>: ~Copyable {
        @usableFromInline let mutex: UnsafeMutableRawPointer
        @usableFromInline let value: UnsafeMutablePointer<Value>

        /// A lock holding `initialValue`.
        public init(_ initialValue: consuming sending Value) {
            mutex = makeMutex()
            value = UnsafeMutablePointer<Value>.allocate(capacity: 1)
            value.initialize(to: initialValue)
        }

        deinit {
            value.deinitialize(count: 1)
            value.deallocate()
            destroyMutex(mutex)
        }

        /// Runs `body` with the value while holding the lock.
        @inlinable
        public borrowing func withLock<Result: ~Copyable, E: Error>(
            _ body: (inout sending Value) throws(E) -> sending Result
        ) throws(E) -> sending Result {
            lockMutex(mutex)
            defer { unlockMutex(mutex) }
            return try body(&value.pointee)
        }

        /// Runs `body` with the value if the lock is free at once; `nil`
        /// (and `body` not run) when another thread holds it.
        @inlinable
        public borrowing func withLockIfAvailable<Result: ~Copyable, E: Error>(
            _ body: (inout sending Value) throws(E) -> sending Result
        ) throws(E) -> sending Result? {
            guard tryLockMutex(mutex) else { return nil }
            defer { unlockMutex(mutex) }
            return try body(&value.pointee)
        }
    }

    // The pthread calls are not inlinable: the platform module is imported
    // internally, and the ThreadSanitizer build does not need the speed.

    @usableFromInline
    func makeMutex() -> UnsafeMutableRawPointer {
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        // A lock taken twice by one thread, or released by a thread that
        // does not hold it, fails loudly instead of deadlocking.
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        let error = pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        precondition(error == 0, "pthread_mutex_init failed: \(error)")
        return UnsafeMutableRawPointer(mutex)
    }

    @usableFromInline
    func destroyMutex(_ raw: UnsafeMutableRawPointer) {
        let mutex = raw.assumingMemoryBound(to: pthread_mutex_t.self)
        let error = pthread_mutex_destroy(mutex)
        precondition(error == 0, "pthread_mutex_destroy failed: \(error)")
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    @usableFromInline
    func lockMutex(_ raw: UnsafeMutableRawPointer) {
        let error = pthread_mutex_lock(raw.assumingMemoryBound(to: pthread_mutex_t.self))
        precondition(error == 0, "pthread_mutex_lock failed: \(error)")
    }

    @usableFromInline
    func tryLockMutex(_ raw: UnsafeMutableRawPointer) -> Bool {
        let error = pthread_mutex_trylock(raw.assumingMemoryBound(to: pthread_mutex_t.self))
        precondition(error == 0 || error == EBUSY, "pthread_mutex_trylock failed: \(error)")
        return error == 0
    }

    @usableFromInline
    func unlockMutex(_ raw: UnsafeMutableRawPointer) {
        let error = pthread_mutex_unlock(raw.assumingMemoryBound(to: pthread_mutex_t.self))
        precondition(error == 0, "pthread_mutex_unlock failed: \(error)")
    }
#else
    public import Synchronization

    /// A value that only one thread at a time may touch: Synchronization's
    /// `Mutex`, with every member inlined (normal build).
    public struct Locked<Value: ~Copyable>: ~Copyable {
        @usableFromInline let mutex: Mutex<Value>

        /// A lock holding `initialValue`.
        @inlinable
        public init(_ initialValue: consuming sending Value) {
            mutex = Mutex(initialValue)
        }

        /// Runs `body` with the value while holding the lock.
        @inlinable
        public borrowing func withLock<Result: ~Copyable, E: Error>(
            _ body: (inout sending Value) throws(E) -> sending Result
        ) throws(E) -> sending Result {
            try mutex.withLock(body)
        }

        /// Runs `body` with the value if the lock is free at once; `nil`
        /// (and `body` not run) when another thread holds it.
        @inlinable
        public borrowing func withLockIfAvailable<Result: ~Copyable, E: Error>(
            _ body: (inout sending Value) throws(E) -> sending Result
        ) throws(E) -> sending Result? {
            try mutex.withLockIfAvailable(body)
        }
    }
#endif

extension Locked: @unchecked Sendable where Value: ~Copyable {}
