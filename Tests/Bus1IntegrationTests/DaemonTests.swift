import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// The built `bus1d` binary, as an operator runs it.
@Suite("bus1d", .timeLimit(.minutes(10)))
struct DaemonTests {
    @Test("Serves real peers, refuses a second daemon on the same path, and exits cleanly on SIGTERM")
    func lifecycle() throws { try DaemonChecks.lifecycle(.debug) }

    @Test("Replaces a stale socket file nobody listens on; BUS1_ADDRESS picks the path")
    func staleSocket() throws {
        let path = freshSocketPath("stale")
        // A socket file whose listener is gone.
        do { _ = try SeqPacket.listen(path: path) }
        #expect(access(path, F_OK) == 0)
        let daemon = try ChildProcess("bus1d", [], environment: ["BUS1_ADDRESS": path], mergeStandardError: true)
        #expect(daemon.awaitListening(), "\(daemon.transcript)")
        let peer = try ChildProcess("bus1-test-peer", ["garbage"], environment: ["BUS1_ADDRESS": path])
        #expect(peer.finish(timeoutSeconds: 60) == .exited(0), "\(peer.transcript)")
        daemon.signal(SIGINT)
        #expect(daemon.finish(timeoutSeconds: 30) == .exited(0), "\(daemon.transcript)")
    }

    /// A parked receiver notices the coordinator's death (its socket hangs up) at its
    /// next park slice and gets a typed error, never a hang; so does the next request.
    @Test("A dead coordinator is a typed error for its peers, never a hang", arguments: ["park", "busy", "default"])
    func deadCoordinator(mode: String) throws {
        let path = freshSocketPath("dead")
        let daemon = try ChildProcess("bus1d", ["--address", path], mergeStandardError: true)
        #expect(waitForSocket(path))
        let waiter = try testPeer("waiter", address: path, ["name": "w", "mode": mode])
        #expect(waiter.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(waiter.transcript)")
        daemon.signal(SIGKILL)
        #expect(daemon.waitForExit() == .signaled(SIGKILL))
        #expect(waiter.finish(timeoutSeconds: 30) == .exited(0), "\(waiter.transcript)")
        #expect(waiter.lines.contains { $0.hasPrefix("GONE") }, "\(waiter.transcript)")
    }

    /// The waiter keeps trying `Peer.connect` (a typed `noBus` while no
    /// daemon listens) until a new bus1d serves the same path.
    @Test("Peers reconnect to a coordinator restarted on the same path")
    func reconnect() throws {
        let path = freshSocketPath("restart")
        let first = try ChildProcess("bus1d", ["--address", path], mergeStandardError: true)
        #expect(waitForSocket(path))
        let waiter = try testPeer("waiter", address: path, ["name": "r", "mode": "park", "reconnect": "1"])
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
    func help() throws { try DaemonChecks.help(.debug) }

    @Test("--version prints the release")
    func version() throws {
        let process = try ChildProcess("bus1d", ["--version"], mergeStandardError: true)
        #expect(process.finish(timeoutSeconds: 30) == .exited(0))
        #expect(process.lines == [Bus1Version.string], "\(process.transcript)")
    }

    @Test("A path that is not a socket (a file, a directory, a symlink) is refused and left untouched", arguments: ["file", "directory", "symlink"])
    func refusesNonSocket(kind: String) throws {
        let path = freshSocketPath("not-socket")
        let content = Array("precious operator data\n".utf8)
        switch kind {
        case "file":
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            #expect(write(fd, content, content.count) == content.count)
            close(fd)
        case "directory":
            #expect(mkdir(path, 0o700) == 0)
        default:
            do { _ = try SeqPacket.listen(path: path + ".stale") }  // a stale socket behind the link
            #expect(symlink(path + ".stale", path) == 0)
        }
        var before = stat()
        #expect(lstat(path, &before) == 0)
        let daemon = try ChildProcess("bus1d", ["--config", "/dev/null", "--address", path], mergeStandardError: true)
        #expect(daemon.finish(timeoutSeconds: 30) == .exited(2), "\(daemon.transcript)")
        #expect(daemon.lines.contains { $0 == "bus1d: \(path) exists and is not a socket; refusing to replace it" }, "\(daemon.transcript)")
        var after = stat()
        #expect(lstat(path, &after) == 0 && after.st_ino == before.st_ino && after.st_mode == before.st_mode)
        if kind == "file" {
            var buffer = [UInt8](repeating: 0, count: 256)
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            let n = read(fd, &buffer, buffer.count)
            close(fd)
            #expect(Array(buffer[..<max(n, 0)]) == content, "the file's content changed")
        }
    }

    @Test("Out-of-range settings are refused at start, naming the flag and the allowed range, before anything is bound",
          arguments: [
            (["--address", ""], "bus1d: address '' is not allowed: must be a socket path of 1...107 bytes"),
            (["--address", "/tmp/" + String(repeating: "x", count: 103)], "is not allowed: must be a socket path of 1...107 bytes"),
            (["--pool-size", "1024"], "bus1d: pool-size 1024 is not allowed: must be a power of two in 65536...1073741824"),
            (["--pool-size", "100000"], "bus1d: pool-size 100000 is not allowed: must be a power of two"),
            (["--pool-size", "\(1 << 46)", "--max-pool-size", "\(1 << 60)"], "bus1d: max-pool-size \(1 << 60) is not allowed: must be a whole number in 65536...\(1 << 47)"),
            (["--pool-size", "\(1 << 31)"], "bus1d: pool-size \(1 << 31) is not allowed: must be a power of two in 65536...1073741824"),
            (["--ring-capacity", "3"], "bus1d: ring-capacity 3 is not allowed"),
            (["--coordinator-ring-capacity", "131072"], "bus1d: coordinator-ring-capacity 131072 is not allowed: must be a power of two in 2...65536"),
            (["--max-peers-per-uid", "0"], "bus1d: max-peers-per-uid 0 is not allowed: must be a whole number in 1...2147483647"),
            (["--max-nodes=-1"], "bus1d: max-nodes -1 is not allowed"),
            (["--max-handles", "0"], "bus1d: max-handles 0 is not allowed"),
            (["--max-channels", "0"], "bus1d: max-channels 0 is not allowed"),
            (["--max-queued-control-messages", "0"], "bus1d: max-queued-control-messages 0 is not allowed"),
            (["--max-queued-fds-per-uid", "0"], "bus1d: max-queued-fds-per-uid 0 is not allowed"),
            (["--allow-uid", "4294967295"], "bus1d: allow-uid 4294967295 is not allowed"),
          ])
    func refusesOutOfRange(arguments: [String], message: String) throws {
        let path = freshSocketPath("range")
        let hasAddress = arguments.contains("--address")
        let daemon = try ChildProcess("bus1d", ["--config", "/dev/null"] + (hasAddress ? [] : ["--address", path]) + arguments,
                                      mergeStandardError: true)
        #expect(daemon.finish(timeoutSeconds: 30) == .exited(2), "\(daemon.transcript)")
        #expect(daemon.lines.contains { $0.contains(message) }, "\(daemon.transcript)")
        #expect(access(path, F_OK) != 0, "a refused daemon bound its socket")
    }

    /// A parent that spawns the daemon with SIGTERM blocked (the mask is inherited)
    /// and signals it at once: the signal arrives before any handler could exist,
    /// and still stops the daemon cleanly, the first time.
    @Test("SIGTERM sent at once to a daemon spawned with it blocked stops it cleanly, and the socket is removed")
    func earlySignal() throws {
        let path = freshSocketPath("early")
        let daemon = try ChildProcess.activated("bus1d", ["--config", "/dev/null", "--address", path], socket: nil,
                                          blockedSignals: [SIGTERM, SIGINT])
        daemon.signal(SIGTERM)
        #expect(daemon.finish() == .exited(0), "\(daemon.transcript)")
        #expect(access(path, F_OK) != 0, "socket left behind")
    }
}

/// The `bus1d` checks run against each build: ``DaemonTests`` runs the debug
/// binary, ``ReleaseToolTests`` the release one.
enum DaemonChecks {
    /// Serves real peers, refuses a second daemon on the same path, exits cleanly
    /// on SIGTERM and removes its socket.
    static func lifecycle(_ build: ToolBuild) throws {
        let path = freshSocketPath("life")
        let daemon = try ChildProcess("bus1d", ["--config", "/dev/null", "--address", path], build: build, mergeStandardError: true)
        #expect(waitForSocket(path))

        let second = try ChildProcess("bus1d", ["--address", path], build: build, mergeStandardError: true)
        #expect(second.finish(timeoutSeconds: 30) == .exited(2), "\(second.transcript)")
        #expect(second.lines.contains { $0.contains("already running") }, "\(second.transcript)")

        try exchangeCheckedMessages(on: path, name: "d", count: 2000)

        daemon.signal(SIGTERM)
        #expect(daemon.finish(timeoutSeconds: 30) == .exited(0), "\(daemon.transcript)")
        #expect(access(path, F_OK) != 0, "socket left behind")
    }

    static func help(_ build: ToolBuild) throws {
        let help = try ChildProcess("bus1d", ["--help"], build: build, mergeStandardError: true)
        #expect(help.finish(timeoutSeconds: 30) == .exited(0))
        #expect(help.lines.contains { $0.contains("--address") })
        #expect(help.lines.contains { $0.contains("coordinator") })
    }
}
