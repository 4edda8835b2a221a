import Glibc

/// A failed system call: which operation, and the `errno` it returned.
///
/// Every syscall in Bus1 goes through ``retryingOnInterrupt(_:_:)`` and fails with
/// this one type, so callers can match on ``code`` (`EAGAIN`, `EPERM`, ...).
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

/// The one funnel for shim calls that return `-errno` on failure: retries `EINTR`,
/// turns any other negative result into a ``LinuxError``.
@inline(__always)
@discardableResult
public func retryingOnInterrupt<R: SignedInteger>(_ operation: String, _ call: () -> R) throws(LinuxError) -> R {
    while true {
        let result = call()
        if result >= 0 { return result }
        let code = Int32(truncatingIfNeeded: -result)
        if code == EINTR { continue }
        throw LinuxError(operation, code: code)
    }
}

/// The same funnel for libc calls that return -1 and set `errno`.
@inline(__always)
@discardableResult
public func retryingLibcOnInterrupt<R: SignedInteger>(_ operation: String, _ call: () -> R) throws(LinuxError) -> R {
    while true {
        let result = call()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw LinuxError(operation, code: code)
    }
}
