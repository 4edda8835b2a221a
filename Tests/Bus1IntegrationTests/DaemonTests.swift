import Bus1Linux
import Glibc
import Testing

/// The built `bus1d` binary, as an operator runs it.
@Suite("bus1d", .timeLimit(.minutes(5)))
struct DaemonTests {
    /// A fresh directory for one daemon's socket.
    static func socketPath(_ label: String) -> String {
        var template = Array("/tmp/bus1d-\(label)-XXXXXX".utf8CString)
        precondition(mkdtemp(&template) != nil)
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/bus"
    }

    static func waitForSocket(_ path: String) -> Bool {
        for _ in 0..<2000 {
            if access(path, F_OK) == 0 { return true }
            usleep(5000)
        }
        return false
    }

    @Test("Serves real peers, refuses a second daemon on the same path, and exits cleanly on SIGTERM")
    func lifecycle() throws { try Self.lifecycle(.debug) }

    /// The lifecycle check against one build of `bus1d` (``ReleaseToolTests`` runs the release one).
    static func lifecycle(_ build: ToolBuild) throws {
        let path = Self.socketPath("life")
        let daemon = try ChildProcess("bus1d", ["--address", path], build: build, mergeStandardError: true)
        #expect(Self.waitForSocket(path))

        let second = try ChildProcess("bus1d", ["--address", path], build: build, mergeStandardError: true)
        #expect(second.finish(timeoutSeconds: 30) == .exited(2), "\(second.transcript)")
        #expect(second.lines.contains { $0.contains("already running") }, "\(second.transcript)")

        let consumer = try ChildProcess("bus1-test-peer", ["consumer", "address=\(path)", "name=d", "count=2000"])
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil)
        let producer = try ChildProcess("bus1-test-peer", ["producer", "address=\(path)", "name=d", "count=2000"])
        #expect(producer.finish() == .exited(0), "\(producer.transcript)")
        #expect(consumer.finish() == .exited(0), "\(consumer.transcript)")

        daemon.signal(SIGTERM)
        #expect(daemon.finish(timeoutSeconds: 30) == .exited(0), "\(daemon.transcript)")
        #expect(access(path, F_OK) != 0, "socket left behind")
    }

    @Test("Replaces a stale socket file nobody listens on; BUS1_ADDRESS picks the path")
    func staleSocket() throws {
        let path = Self.socketPath("stale")
        // A socket file whose listener is gone.
        do { _ = try SeqPacket.listen(path: path) }
        #expect(access(path, F_OK) == 0)
        let daemon = try ChildProcess("bus1d", [], environment: ["BUS1_ADDRESS": path], mergeStandardError: true)
        #expect(daemon.awaitLine(prefix: "", timeoutSeconds: 30)?.contains("listening") == true, "\(daemon.transcript)")
        let peer = try ChildProcess("bus1-test-peer", ["garbage"], environment: ["BUS1_ADDRESS": path])
        #expect(peer.finish(timeoutSeconds: 60) == .exited(0), "\(peer.transcript)")
        daemon.signal(SIGINT)
        #expect(daemon.finish(timeoutSeconds: 30) == .exited(0), "\(daemon.transcript)")
    }

    /// A parked receiver notices the coordinator's death (its socket hangs up) at its
    /// next park slice and gets a typed error, never a hang; so does the next request.
    @Test("A dead coordinator is a typed error for its peers, never a hang", arguments: ["park", "busy", "default"])
    func deadCoordinator(mode: String) throws {
        let path = Self.socketPath("dead")
        let daemon = try ChildProcess("bus1d", ["--address", path], mergeStandardError: true)
        #expect(Self.waitForSocket(path))
        let waiter = try ChildProcess("bus1-test-peer", ["waiter", "address=\(path)", "name=w", "mode=\(mode)"])
        #expect(waiter.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(waiter.transcript)")
        daemon.signal(SIGKILL)
        #expect(daemon.waitForExit() == .signaled(SIGKILL))
        #expect(waiter.finish(timeoutSeconds: 30) == .exited(0), "\(waiter.transcript)")
        #expect(waiter.lines.contains { $0.hasPrefix("GONE") }, "\(waiter.transcript)")
    }

    /// The waiter keeps trying `Peer.connect` (a typed `coordinatorGone` while no
    /// daemon listens) until a new bus1d serves the same path.
    @Test("Peers reconnect to a coordinator restarted on the same path")
    func reconnect() throws {
        let path = Self.socketPath("restart")
        let first = try ChildProcess("bus1d", ["--address", path], mergeStandardError: true)
        #expect(Self.waitForSocket(path))
        let waiter = try ChildProcess("bus1-test-peer", ["waiter", "address=\(path)", "name=r", "mode=park", "reconnect=1"])
        #expect(waiter.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(waiter.transcript)")
        first.signal(SIGKILL)
        #expect(first.waitForExit() == .signaled(SIGKILL))
        #expect(waiter.awaitLine(prefix: "OK", timeoutSeconds: 30) != nil, "\(waiter.transcript)")
        let second = try ChildProcess("bus1d", ["--address", path], mergeStandardError: true)  // replaces the stale socket
        #expect(waiter.finish(timeoutSeconds: 60) == .exited(0), "\(waiter.transcript)")
        #expect(waiter.lines.contains { $0.hasPrefix("RECONNECTED") }, "\(waiter.transcript)")
        second.signal(SIGTERM)
        #expect(second.finish(timeoutSeconds: 30) == .exited(0), "\(second.transcript)")
    }

    @Test("--help describes the daemon")
    func help() throws { try Self.help(.debug) }

    static func help(_ build: ToolBuild) throws {
        let help = try ChildProcess("bus1d", ["--help"], build: build, mergeStandardError: true)
        #expect(help.finish(timeoutSeconds: 30) == .exited(0))
        #expect(help.lines.contains { $0.contains("--address") })
        #expect(help.lines.contains { $0.contains("coordinator") })
    }
}
