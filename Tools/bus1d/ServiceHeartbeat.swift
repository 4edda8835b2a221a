import Bus1Coordinator
import Glibc
import Synchronization

/// What `bus1d` tells the service manager while the coordinator's loop turns
/// (installed as `Coordinator.onTurn`, so it runs on the loop's own thread):
/// `READY=1` at the first turn (the socket is listening and the loop serving),
/// `STATUS=` whenever the number of peers changes, and `WATCHDOG=1` at most
/// `WATCHDOG_USEC`/2 apart when the service has a watchdog. Because the pings come
/// from the loop turning, a loop that hangs stops them and systemd restarts it.
/// `STOPPING=1` goes out from ``stopping()`` (signal thread or shutdown path).
final class ServiceHeartbeat: @unchecked Sendable {
    private let notifier: ServiceNotifier
    private let coordinator: Coordinator
    /// Half of `WATCHDOG_USEC`; nil without a watchdog.
    private let watchdogPeriod: Duration?
    private var lastPing = ContinuousClock.now
    private var announcedPeers: Int?
    private let stoppingSent = Atomic<Bool>(false)

    /// How often the loop must turn at least: a quarter of the watchdog timeout
    /// (so pings are at most half of it apart), else once a second for `STATUS`.
    var turnInterval: Duration { watchdogPeriod.map { $0 / 2 } ?? .seconds(1) }

    /// Takes `$WATCHDOG_USEC` and `$WATCHDOG_PID` (and unsets them); a watchdog
    /// meant for another process (`WATCHDOG_PID` not ours) is ignored.
    init(notifier: ServiceNotifier, coordinator: Coordinator) {
        self.notifier = notifier
        self.coordinator = coordinator
        let microseconds = getenv("WATCHDOG_USEC").flatMap { Int64(String(cString: $0)) }
        let pid = getenv("WATCHDOG_PID").flatMap { pid_t(String(cString: $0)) }
        unsetenv("WATCHDOG_USEC")
        unsetenv("WATCHDOG_PID")
        if let microseconds, microseconds > 0, pid == nil || pid == getpid() {
            watchdogPeriod = .microseconds(microseconds) / 2
        } else {
            watchdogPeriod = nil
        }
    }

    /// One turn of the loop.
    func turn() {
        let peers = coordinator.peerCount
        if announcedPeers == nil {
            notifier.send("READY=1", "STATUS=\(Self.status(peers: peers, at: coordinator.configuration.address))",
                          "MAINPID=\(getpid())")
            announcedPeers = peers
        } else if peers != announcedPeers {
            notifier.send("STATUS=\(Self.status(peers: peers, at: coordinator.configuration.address))")
            announcedPeers = peers
        }
        if let watchdogPeriod, ContinuousClock.now - lastPing >= watchdogPeriod / 2 {
            notifier.send("WATCHDOG=1")
            lastPing = .now
        }
    }

    /// Says the daemon is shutting down; once, from whichever path gets there first.
    func stopping() {
        guard !stoppingSent.exchange(true, ordering: .relaxed) else { return }
        notifier.send("STOPPING=1", "STATUS=stopping")
    }

    private static func status(peers: Int, at address: String) -> String {
        "serving \(peers) peer\(peers == 1 ? "" : "s") at \(address)"
    }
}
