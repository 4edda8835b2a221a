import Bus1Linux
import Glibc

/// SIGTERM and SIGINT stop the daemon gracefully, from the first signal on.
///
/// The signals are blocked first thing in `main` (every thread made later
/// inherits the mask) and their dispositions reset to the default (a parent's
/// `SIG_IGN` survives `exec` and would otherwise discard them). From then on a
/// signal cannot be lost or kill the process: it stays pending until
/// ``relay(_:)``'s thread takes it with `sigwait`, even if it came before the
/// coordinator existed, and then `Coordinator.stop()` makes the loop return.
/// This replaces a handler installed after start-up, which left windows where
/// the first signal killed the daemon with its socket left behind or, inherited
/// as ignored, was dropped so that a second one was needed.
///
/// Why not swift-service-lifecycle (2.13.0 was evaluated): its `ServiceGroup`
/// runs async services and learns of signals through Dispatch signal sources
/// that exist only once the group runs; the coordinator is one blocking loop on
/// its own thread, so it would need a bridge service around it (a thread, a
/// continuation, a graceful-shutdown handler calling `stop()`) and would gain no
/// ordering, since there is one service. The sources leave the signal mask and
/// dispositions to the caller, so the windows above would still need this
/// type's blocking; what remains, `sigwait` on a blocked set, needs only libc
/// and adds no package to build.
enum ShutdownSignals {
    private static let handled = [SIGTERM, SIGINT]

    /// Blocks SIGTERM and SIGINT in the calling (main) thread, resets their
    /// dispositions, and ignores SIGPIPE (a peer closing its socket mid-send is an
    /// error return, not a reason to die). Call before anything else.
    static func block() {
        signal(SIGPIPE, SIG_IGN)
        var set = signalSet()
        for sig in handled { signal(sig, SIG_DFL) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Starts a thread that waits for the first SIGTERM or SIGINT and calls
    /// `action` with it, once. Later signals stay blocked and pending: shutdown is
    /// already under way.
    nonisolated static func relay(_ action: @escaping @Sendable (Int32) -> Void) throws(LinuxError) {
        try PlatformThread.start(detached: true) {
            var set = ShutdownSignals.signalSet()
            var received: Int32 = 0
            while sigwait(&set, &received) != 0 {}
            action(received)
        }
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in handled { sigaddset(&set, sig) }
        return set
    }
}
