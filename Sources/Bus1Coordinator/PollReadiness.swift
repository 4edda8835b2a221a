import Bus1Linux
import Glibc

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
