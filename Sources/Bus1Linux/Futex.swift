import CBus1Linux
import Glibc

/// `futex(2)` on a 32-bit word shared between processes (never `FUTEX_PRIVATE`,
/// so a wake from another process finds the waiter).
public enum Futex {
    /// Outcome of a wait.
    public enum WaitResult: Sendable, Equatable {
        /// Woken, or the word did not hold `expected` (`EAGAIN`), or interrupted: re-check.
        case woken
        case timedOut
    }

    /// Waits while `word` holds `expected`, at most `timeoutNanoseconds` (nil: forever).
    public static func wait(
        _ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64?
    ) throws(LinuxError) -> WaitResult {
        let result = b1l_futex_wait(word, expected, timeoutNanoseconds ?? -1)
        switch -result {
        case 0, EAGAIN, EINTR: return .woken
        case ETIMEDOUT: return .timedOut
        default: throw LinuxError("futex(FUTEX_WAIT)", code: -result)
        }
    }

    /// Wakes up to `count` waiters; returns how many were woken.
    @discardableResult
    public static func wake(_ word: UnsafeMutablePointer<UInt32>, count: Int32 = Int32.max) throws(LinuxError) -> Int {
        Int(try retryingOnInterrupt("futex(FUTEX_WAKE)") { b1l_futex_wake(word, count) })
    }
}
