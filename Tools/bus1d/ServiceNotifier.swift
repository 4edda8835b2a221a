import Bus1Linux
import Glibc

/// The service manager's notification socket (`sd_notify(3)`, implemented here:
/// no libsystemd): one datagram of `KEY=value` lines per notification to the
/// `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
/// namespace). Only a `Type=notify` service has it set; without it there is no
/// notifier.
final class ServiceNotifier: @unchecked Sendable {
    /// Where the notifications go. The socket we send from is close-on-exec and
    /// unbound; it is used only from the coordinator's thread and, once, from the
    /// signal thread (`sendto` on one datagram socket is thread-safe).
    private let destination: UnixSocketAddress
    private let socket: FileDescriptor

    /// Takes `$NOTIFY_SOCKET` (and unsets it, so nothing this process starts
    /// inherits it); nil when it is unset or unusable.
    init?() {
        guard let raw = getenv("NOTIFY_SOCKET") else { return nil }
        let path = String(cString: raw)
        unsetenv("NOTIFY_SOCKET")
        guard let destination = try? UnixSocketAddress(path) else { return nil }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.destination = destination
        socket = FileDescriptor(adopting: fd)
    }

    /// Sends one notification (`READY=1`, `STATUS=...`, ...). Best effort, like
    /// `sd_notify`: a service manager that went away is no reason to stop serving.
    func send(_ assignments: String...) {
        let message = Array(assignments.joined(separator: "\n").utf8)
        _ = try? destination.withSockaddr { address, length throws(LinuxError) in
            try retryingLibcOnInterrupt("sendto NOTIFY_SOCKET") {
                message.withUnsafeBytes { sendto(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), address, length) }
            }
        }
    }
}
