import Bus1Coordinator
import Bus1Linux
import Glibc

/// systemd socket activation (`sd_listen_fds(3)`, implemented here: no
/// libsystemd): the service manager binds the bus socket itself (`bus1.socket`)
/// and passes it as fd 3, saying so in `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES`.
///
/// The passed socket is used as it is: the daemon neither replaces, chmods nor
/// removes its path (the socket unit owns it, and keeps queueing connections
/// while the daemon restarts).
enum SocketActivation {
    /// The first fd passed (`SD_LISTEN_FDS_START`).
    private static let firstDescriptor: Int32 = 3

    /// The listener passed to this process, or nil if none was (no `LISTEN_FDS`,
    /// or `LISTEN_PID` names another process: the variables were meant for a
    /// parent that did not clear them). Unsets the three variables either way, so
    /// nothing this process starts inherits them, and makes every passed fd
    /// close-on-exec. Refuses more than one socket, and a socket a bus cannot serve
    /// on (anything but a listening `AF_UNIX` `SOCK_SEQPACKET` socket).
    static func takeListener() throws(CoordinatorError) -> BusListener? {
        let pid = environment("LISTEN_PID"), count = environment("LISTEN_FDS"), names = environment("LISTEN_FDNAMES")
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) }
        guard let count, let pid, pid_t(pid) == getpid() else { return nil }
        guard let passed = Int32(count), passed >= 0, passed <= 1024 else {
            throw .unusableListener("LISTEN_FDS=\(count) is not a count of fds")
        }
        for fd in firstDescriptor..<(firstDescriptor + passed) { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        guard passed > 0 else { return nil }
        guard passed == 1 else {
            throw .unusableListener("bus1d serves one socket, but \(passed) were passed (LISTEN_FDNAMES=\(names ?? ""))")
        }
        return try BusListener.adopt(FileDescriptor(adopting: firstDescriptor))
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
