import Bus1Linux
import Glibc

/// Readiness notification for the coordinator's loop: "tell me when this fd has
/// input or hung up" (or, `writable`, "has room to send"). A token fires once,
/// then is disarmed until watched again, in both implementations
/// (``IOURingReadiness``, ``PollReadiness``), so the loop's logic does not depend
/// on the backend; EventBackendConformanceTests runs the same checks over each.
protocol ReadinessSource: AnyObject {
    var mechanism: String { get }
    /// Arms `token` for `fd`. Tokens are never reused for another fd.
    func watch(_ fd: Int32, token: UInt64, writable: Bool) throws(LinuxError)
    /// Disarms `token` (its fd is about to be closed).
    func unwatch(_ token: UInt64) throws(LinuxError)
    /// Waits until at least one token fires or the timeout passes; returns the fired tokens.
    func wait(timeoutNanoseconds: Int64?) throws(LinuxError) -> [UInt64]
}

extension ReadinessSource {
    /// Arms `token` for input or hang-up on `fd`.
    func watch(_ fd: Int32, token: UInt64) throws(LinuxError) { try watch(fd, token: token, writable: false) }
}
