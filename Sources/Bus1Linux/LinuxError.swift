import Glibc

/// A failed system call: which operation, and the `errno` it returned.
///
/// Every syscall in Bus1Linux goes through the funnel below and fails with this
/// one type, so callers can match on ``code`` (`EAGAIN`, `EPERM`, ...).
public struct LinuxError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The operation that failed, e.g. `"memfd_create"`.
    public let operation: String
    /// The positive `errno` value.
    public let code: Int32

    public init(_ operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(code))) (errno \(code))"
    }
}

// MARK: - The syscall funnel
//
// Every system call Bus1Linux makes goes through one of the functions below:
// `retryingOnInterrupt` for the C shim (which returns `-errno`; posix_spawn's
// returned error number is negated into that form), `retryingLibcOnInterrupt`
// for a Glibc call that returns -1 (or, for mmap, `MAP_FAILED`) and sets `errno`.
// They are the only place `EINTR` is retried, and every failure leaves them as a
// ``LinuxError`` carrying the call's name and its errno.
//
// Waits are retried too, and do not stretch their timeouts by it: `Futex.wait`
// passes the kernel an absolute deadline, and the shim's io_uring park and wake
// resume the requests an interrupted call left in flight (see bus1_linux.h).
// Bus1 has no wait that must return on a signal (bus1d takes SIGTERM and SIGINT
// on a thread of their own and stops its loop through a pipe), so there is no
// non-retrying variant. Two relative timeouts do restart when a call is retried:
// a socket's (`SO_RCVTIMEO`/`SO_SNDTIMEO`, which make the kernel return `EINTR`
// even under `SA_RESTART`) and `IOURing.submitAndWait`'s, which only bounds a
// turn of the coordinator's loop.
//
// Exceptions, each said where it happens: `close` is never retried (Linux closes
// the descriptor even when it reports `EINTR`), and calls that cannot fail
// (`getuid`, `clock_gettime(CLOCK_MONOTONIC)`, the wait-status macros) are
// called directly.

/// The funnel for shim calls that return a value `>= 0` or `-errno`: retries
/// `EINTR`, returns a failure whose code is in `tolerated` as its (negative)
/// result, and throws any other as a ``LinuxError`` named `operation`.
@inline(__always)
@discardableResult
public func retryingOnInterrupt<R: SignedInteger>(
    _ operation: String, tolerating tolerated: [Int32] = [], _ call: () -> R
) throws(LinuxError) -> R {
    while true {
        let result = call()
        if result >= 0 { return result }
        let code = Int32(truncatingIfNeeded: -result)
        if code == EINTR { continue }
        if tolerated.contains(code) { return result }
        throw LinuxError(operation, code: code)
    }
}

/// The funnel for Glibc calls that return -1 and set `errno`: retries `EINTR`,
/// returns a failure whose code is in `tolerated` as `-errno`, and throws any
/// other as a ``LinuxError`` named `operation`.
@inline(__always)
@discardableResult
public func retryingLibcOnInterrupt<R: SignedInteger>(
    _ operation: String, tolerating tolerated: [Int32] = [], _ call: () -> R
) throws(LinuxError) -> R {
    try retryingOnInterrupt(operation, tolerating: tolerated) {
        let result = call()
        return result >= 0 ? result : R(-Int64(errno))  // errno read at once, before anything else can change it
    }
}

/// The funnel for a Glibc call that returns a pointer, failing with `failure`
/// (`MAP_FAILED` for `mmap`) or nil and setting `errno`.
@inline(__always)
func retryingLibcOnInterrupt(
    _ operation: String, failure: UnsafeMutableRawPointer?, _ call: () -> UnsafeMutableRawPointer?
) throws(LinuxError) -> UnsafeMutableRawPointer {
    while true {
        let result = call()
        if let result, result != failure { return result }
        let code = errno
        if code == EINTR { continue }
        throw LinuxError(operation, code: code)
    }
}
