import Glibc

/// A value behind a pthread mutex, for state that threads share (the async
/// reactor's waiter table).
///
/// Not `Synchronization.Mutex`: on Linux its lock lives in the Swift runtime,
/// which ThreadSanitizer does not see, so every access made under it was reported
/// as a race and `--sanitize=thread` could not check Bus1's own code. A pthread
/// mutex is intercepted by ThreadSanitizer and costs the same uncontended.
///
/// Sendable: `value` is read and written only inside ``withLock(_:)``, under the mutex.
public final class Locked<Value: Sendable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, under the mutex.
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
