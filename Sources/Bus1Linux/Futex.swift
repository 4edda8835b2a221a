import CBus1Linux
import Glibc

/// `futex(2)` on a 32-bit word shared between processes (never `FUTEX_PRIVATE`,
/// so a wake from another process finds the waiter).
public enum Futex {
    /// Outcome of a wait.
    public enum WaitResult: Sendable, Equatable {
        /// Woken (perhaps spuriously), or the word did not hold `expected` (`EAGAIN`): re-check.
        case woken
        case timedOut
    }

    /// Waits while `word` holds `expected`, at most `timeoutNanoseconds` (nil or
    /// negative: forever). A signal does not end the wait: the funnel retries
    /// `EINTR` with the same absolute deadline, so the wait still ends on time.
    public static func wait(
        _ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64?
    ) throws(LinuxError) -> WaitResult {
        var deadline: Int64 = -1
        if let timeout = timeoutNanoseconds, timeout >= 0 {
            let (sum, overflow) = Int64(bitPattern: monotonicNanoseconds()).addingReportingOverflow(timeout)
            deadline = overflow ? .max : sum
        }
        let result = try retryingOnInterrupt("futex(FUTEX_WAIT_BITSET)", tolerating: [EAGAIN, ETIMEDOUT]) {
            b1l_futex_wait_until(word, expected, deadline)
        }
        return result == -ETIMEDOUT ? .timedOut : .woken
    }

    /// Wakes up to `count` waiters; returns how many were woken.
    @discardableResult
    public static func wake(_ word: UnsafeMutablePointer<UInt32>, count: Int32 = Int32.max) throws(LinuxError) -> Int {
        Int(try retryingOnInterrupt("futex(FUTEX_WAKE)") { b1l_futex_wake(word, count) })
    }
}
