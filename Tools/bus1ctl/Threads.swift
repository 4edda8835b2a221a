import Bus1
import Bus1Linux
import Glibc

/// SIGINT and SIGTERM, for the commands that run until killed: blocked in every
/// thread and taken by one watcher, which interrupts the peer's wait, so the
/// command leaves the bus and exits 0.
enum TerminationSignals {
    private static var set: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        return set
    }

    /// Blocks them; call before the first thread starts (threads inherit the mask).
    static func block() {
        var set = set
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Starts the watcher: the first of them interrupts `interrupter`'s peer.
    static func interrupt(_ interrupter: PeerInterrupter) {
        startThread {
            var set = set
            var signal: Int32 = 0
            while sigwait(&set, &signal) != 0 {}
            interrupter.interrupt()
        }
    }
}

/// Starts `body` on a detached thread of its own (`hz`'s clock, the signal
/// watcher); a tool that cannot start one cannot run, so failing is fatal.
func startThread(_ body: @escaping @Sendable () -> Void) {
    do {
        try PlatformThread.start(detached: true, body)
    } catch {
        fatalError("bus1ctl: cannot start a thread: \(error)")
    }
}
