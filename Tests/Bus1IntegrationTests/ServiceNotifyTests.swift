import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// `bus1d` as a `Type=notify` service: what it tells the socket in
/// `NOTIFY_SOCKET`, received here as systemd would.
@Suite("bus1d sd_notify", .timeLimit(.minutes(10)))
struct ServiceNotifyTests {
    @Test("READY=1 once listening, STATUS as peers come, STOPPING=1 on SIGTERM")
    func readyStatusStopping() throws {
        let path = freshSocketPath("notify")
        let notify = try NotifyReceiver(address: path + ".notify")
        let daemon = try ChildProcess("bus1d", ["--config", "/dev/null", "--address", path],
                                      environment: ["NOTIFY_SOCKET": notify.address], mergeStandardError: true)
        #expect(notify.awaitAssignment("READY=1"), "got \(notify.received)")
        #expect(notify.received.contains("STATUS=serving 0 peers at \(path)"), "got \(notify.received)")

        var options = PeerOptions(address: path)
        options.waitMode = .park
        let peer = try Peer.connect(options: options)
        #expect(notify.awaitMatch { $0 == "STATUS=serving 1 peer at \(path)" } != nil, "got \(notify.received)")
        _ = peer

        daemon.signal(SIGTERM)
        #expect(notify.awaitAssignment("STOPPING=1"), "got \(notify.received)")
        #expect(daemon.finish(timeoutSeconds: 60) == .exited(0), "\(daemon.transcript)")
    }

    @Test("WATCHDOG=1 comes from the turning loop, at most WATCHDOG_USEC/2 apart; an abstract NOTIFY_SOCKET works")
    func watchdog() throws {
        let path = freshSocketPath("watchdog")
        let notify = try NotifyReceiver(address: "@bus1-test-watchdog-\(getpid())-\(monotonicNanoseconds())")
        let daemon = try ChildProcess("bus1d", ["--config", "/dev/null", "--address", path],
                                      environment: ["NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000"],
                                      mergeStandardError: true)
        #expect(notify.awaitAssignment("READY=1"), "got \(notify.received)")
        #expect(notify.awaitAssignment("WATCHDOG=1", count: 2), "got \(notify.received)")
        daemon.signal(SIGTERM)
        #expect(notify.awaitAssignment("STOPPING=1"), "got \(notify.received)")
        #expect(daemon.finish(timeoutSeconds: 60) == .exited(0), "\(daemon.transcript)")
    }
}
