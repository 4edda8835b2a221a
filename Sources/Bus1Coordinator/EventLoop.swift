import Bus1Linux
import Glibc

/// Readiness notification for the coordinator's loop: "tell me when this fd has
/// input or hung up" (or, `writable`, "has room to send"). A token fires once, then is disarmed until watched again, in
/// both implementations, so the loop's logic does not depend on the backend.
protocol ReadinessSource: AnyObject {
    var mechanism: String { get }
    /// Arms `token` for `fd`. Tokens are never reused for another fd.
    func watch(_ fd: Int32, token: UInt64, writable: Bool) throws(LinuxError)
    /// Disarms `token` (its fd is about to be closed).
    func unwatch(_ token: UInt64) throws(LinuxError)
    /// Waits until at least one token fires or the timeout passes; returns the fired tokens.
    func wait(timeoutNanoseconds: Int64?) throws(LinuxError) -> [UInt64]
}

/// io_uring `IORING_OP_POLL_ADD` (one-shot) per armed fd; all submissions go in
/// with the wait, one `io_uring_enter` per loop turn.
final class IOURingReadiness: ReadinessSource {
    private let ring: IOURing
    private var armed: Set<UInt64> = []
    private var completions: [(userData: UInt64, result: Int32)] = []
    /// User data of POLL_REMOVE requests; their completions are ignored.
    private static let removalMarker: UInt64 = .max
    var mechanism: String { "io_uring" }

    init() throws(LinuxError) { ring = try IOURing(entries: 256) }

    func watch(_ fd: Int32, token: UInt64, writable: Bool) throws(LinuxError) {
        guard armed.insert(token).inserted else { return }
        try ring.queuePoll(fd, events: UInt32(writable ? POLLOUT : POLLIN), userData: token)
    }

    func unwatch(_ token: UInt64) throws(LinuxError) {
        guard armed.remove(token) != nil else { return }
        try ring.queuePollRemoval(of: token, userData: Self.removalMarker)
    }

    func wait(timeoutNanoseconds: Int64?) throws(LinuxError) -> [UInt64] {
        try ring.submitAndWait(timeoutNanoseconds: timeoutNanoseconds)
        ring.reap(into: &completions)
        var fired: [UInt64] = []
        for c in completions where c.userData != Self.removalMarker {
            // A cancelled poll (-ECANCELED) belongs to a token already unwatched.
            if armed.remove(c.userData) != nil { fired.append(c.userData) }
        }
        return fired
    }
}

/// `poll(2)` over the armed fds: the fallback where io_uring is refused.
final class PollReadiness: ReadinessSource {
    private var armed: [UInt64: (fd: Int32, events: Int16)] = [:]
    var mechanism: String { "poll(2)" }

    func watch(_ fd: Int32, token: UInt64, writable: Bool) throws(LinuxError) {
        armed[token] = (fd, Int16(writable ? POLLOUT : POLLIN))
    }
    func unwatch(_ token: UInt64) throws(LinuxError) { armed[token] = nil }

    func wait(timeoutNanoseconds: Int64?) throws(LinuxError) -> [UInt64] {
        let tokens = Array(armed.keys)
        var fds = tokens.map { pollfd(fd: armed[$0]!.fd, events: armed[$0]!.events, revents: 0) }
        let timeout = timeoutNanoseconds.map { Int32(clamping: ($0 + 999_999) / 1_000_000) } ?? -1
        let n = try retryingLibcOnInterrupt("poll") { poll(&fds, nfds_t(fds.count), timeout) }
        guard n > 0 else { return [] }
        var fired: [UInt64] = []
        for (i, p) in fds.enumerated() where p.revents != 0 {
            fired.append(tokens[i])
            armed[tokens[i]] = nil
        }
        return fired
    }
}

extension ReadinessSource {
    /// Arms `token` for input or hang-up on `fd`.
    func watch(_ fd: Int32, token: UInt64) throws(LinuxError) { try watch(fd, token: token, writable: false) }
}
