import CBus1Linux
import Glibc

/// An io_uring instance (liburing), owned by one thread at a time.
///
/// Bus1 uses it for two things: parking on a futex word (`IORING_OP_FUTEX_WAIT`,
/// kernel >= 6.7, probed) and readiness polling in the coordinator's loop.
/// Creation fails with a ``LinuxError`` when the kernel or a container policy
/// refuses io_uring (`ENOSYS`, `EPERM`, `io_uring_disabled`); callers fall back.
public final class IOURing {
    private let ring: OpaquePointer

    /// Whether the kernel supports `IORING_OP_FUTEX_WAIT`/`_WAKE` on this ring.
    public let supportsFutex: Bool

    /// Creates a ring with `entries` submission slots (`io_uring_queue_init`).
    public init(entries: UInt32 = 64) throws(LinuxError) {
        var ring: OpaquePointer?
        try retryingOnInterrupt("io_uring_queue_init") { b1l_ring_create(entries, &ring) }
        guard let ring else { throw LinuxError("io_uring_queue_init", code: ENOMEM) }  // not reached: 0 means a ring
        self.ring = ring
        // A failed probe counts as no support.
        self.supportsFutex = (try? retryingOnInterrupt("io_uring_register(PROBE)", { b1l_ring_supports_futex(ring) })) == 1
    }

    deinit { b1l_ring_destroy(ring) }

    /// Why io_uring is unusable here, or nil if a ring can be created. For messages
    /// and test skips.
    public static func unavailabilityReason() -> String? {
        do {
            _ = try IOURing(entries: 4)
            return nil
        } catch {
            return "io_uring unavailable: \(error)"
        }
    }

    /// Why io_uring futex opcodes are unusable here, or nil if they work.
    public static func futexUnsupportedReason() -> String? {
        guard let ring = try? IOURing(entries: 4) else { return unavailabilityReason() }
        return ring.supportsFutex ? nil : "io_uring lacks IORING_OP_FUTEX_WAIT (kernel < 6.7)"
    }

    /// Parks while `word` holds `expected`, through one linked FUTEX_WAIT + timeout.
    /// Requires ``supportsFutex``. A signal does not end the park: the funnel
    /// retries `EINTR`, and the retry finishes the requests already in flight, so
    /// the timeout runs once.
    public func futexWait(
        _ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64?
    ) throws(LinuxError) -> Futex.WaitResult {
        let result = try retryingOnInterrupt("io_uring FUTEX_WAIT", tolerating: [ETIME]) {
            b1l_ring_futex_park(ring, word, expected, timeoutNanoseconds ?? -1)
        }
        return result == -ETIME ? .timedOut : .woken
    }

    /// Wakes up to `count` waiters of `word` through `IORING_OP_FUTEX_WAKE`.
    @discardableResult
    public func futexWake(_ word: UnsafeMutablePointer<UInt32>, count: UInt32 = UInt32(Int32.max)) throws(LinuxError) -> Int {
        Int(try retryingOnInterrupt("io_uring FUTEX_WAKE") { b1l_ring_futex_wake(ring, word, count) })
    }

    /// Wakes up to `count` waiters of each word in `words` through one submission
    /// of `IORING_OP_FUTEX_WAKE`s: one system call however many words. Returns how
    /// many waiters were woken. Throws `EBUSY` if the submission queue has no room
    /// for all of them (make the ring at least that large).
    @discardableResult
    public func futexWake(_ words: UnsafeBufferPointer<UnsafeMutablePointer<UInt32>?>, count: UInt32 = UInt32(Int32.max)) throws(LinuxError) -> Int {
        guard let base = words.baseAddress, words.count > 0 else { return 0 }
        return Int(try retryingOnInterrupt("io_uring FUTEX_WAKE") { b1l_ring_futex_wake_many(ring, base, Int32(words.count), count) })
    }

    /// Queues a one-shot poll of `fd` for `events` (`POLLIN`...); the completion
    /// carries `userData`. Throws `EBUSY` when the submission queue is full:
    /// ``submit()``, then queue again.
    public func queuePoll(_ fd: Int32, events: UInt32, userData: UInt64) throws(LinuxError) {
        try retryingOnInterrupt("io_uring_prep_poll_add") { b1l_ring_poll_add(ring, fd, events, userData) }
    }

    /// Queues an `IORING_OP_FUTEX_WAIT` on `word` without waiting: it completes
    /// (with `userData`) when `word` is woken, or at once if it no longer holds
    /// `expected`. Requires ``supportsFutex``; not on a ring that also parks
    /// (``futexWait(_:expected:timeoutNanoseconds:)`` reaps every completion).
    public func queueFutexWait(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, userData: UInt64) throws(LinuxError) {
        try retryingOnInterrupt("io_uring_prep_futex_wait") { b1l_ring_futex_wait_add(ring, word, expected, userData) }
    }

    /// The ring's own descriptor (owned by the ring): `poll(2)` and epoll report
    /// it readable while completions wait to be reaped.
    public var descriptor: Int32 { b1l_ring_fd(ring) }

    /// Queues the removal of the poll queued with `target`.
    public func queuePollRemoval(of target: UInt64, userData: UInt64) throws(LinuxError) {
        try retryingOnInterrupt("io_uring_prep_poll_remove") { b1l_ring_poll_remove(ring, target, userData) }
    }

    /// Submits what is queued without waiting, emptying the submission queue.
    /// Throws `EBUSY`/`EAGAIN` when the kernel has no room for more completions
    /// (reap some first).
    public func submit() throws(LinuxError) {
        try retryingOnInterrupt("io_uring_submit") { b1l_ring_submit(ring) }
    }

    /// Submits what is queued and waits for one completion or the timeout.
    public func submitAndWait(timeoutNanoseconds: Int64?) throws(LinuxError) {
        try retryingOnInterrupt("io_uring_submit_and_wait") { b1l_ring_submit_and_wait(ring, timeoutNanoseconds ?? -1) }
    }

    /// Completions ready now: (user data, result).
    public func reap(into completions: inout [(userData: UInt64, result: Int32)]) {
        completions.removeAll(keepingCapacity: true)
        var data = [UInt64](repeating: 0, count: 32)
        var results = [Int32](repeating: 0, count: 32)
        while true {
            // Never fails (see bus1_linux.h); through the funnel like every shim call.
            let n = Int((try? retryingOnInterrupt("io_uring_peek_cqe", { b1l_ring_reap(ring, &data, &results, 32) })) ?? 0)
            for i in 0..<n { completions.append((data[i], results[i])) }
            if n < 32 { return }
        }
    }
}
