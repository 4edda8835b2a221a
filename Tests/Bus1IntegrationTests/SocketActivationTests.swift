import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// `bus1d` serving on a socket handed over by a service manager: used as it is
/// (no re-bind, no chmod, not removed at exit), checked before use, and its
/// variables consumed.
@Suite("bus1d socket activation", .timeLimit(.minutes(10)))
struct SocketActivationTests {
    static let systemdSocketActivate = "/usr/bin/systemd-socket-activate"

    /// Two peers in this process, on the bus at `path`: one publishes a node, the
    /// other looks it up and sends 64 bytes, which arrive intact.
    static func exchange(on path: String, name: String) throws {
        var options = PeerOptions(address: path)
        options.waitMode = .park
        let consumer = try Peer.connect(options: options)
        try consumer.publish(try consumer.createNode(), as: name)
        let producer = try Peer.connect(options: options)
        let handle = try producer.lookup(name)
        var loan = try producer.loan(64)
        loan.write((0..<64).map { UInt8($0) })
        try producer.send(loan, to: handle)
        let message = try consumer.receive(timeout: .seconds(30))
        #expect(message.copyPayload() == (0..<64).map { UInt8($0) })
    }

    /// The `flags:` field of `/proc/PID/fdinfo/FD`, octal.
    static func descriptorFlags(pid: pid_t, fd: Int32) -> Int? {
        let file = fopen("/proc/\(pid)/fdinfo/\(fd)", "r")
        guard let file else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("flags:") { return Int(text.dropFirst(6).trimmingPrefix(while: \.isWhitespace).prefix { $0.isNumber }, radix: 8) }
        }
        return nil
    }

    @Test("A socket passed as fd 3 with LISTEN_FDS=1 is served as it is, made close-on-exec, and left in place at exit")
    func passedSocket() throws {
        let path = freshSocketPath("passed")
        let listener = try SeqPacket.listen(path: path)
        var before = stat()
        #expect(lstat(path, &before) == 0)
        let daemon = try ChildProcess.activated("bus1d", ["--config", "/dev/null", "--address", "/unused/by/activation"],
                                          socket: listener.rawValue, environment: ["LISTEN_FDNAMES": "bus1"])
        #expect(daemon.awaitLine(containing: "listening"), "\(daemon.transcript)")
        #expect(daemon.lines.contains { $0.contains("address=\(path)") }, "\(daemon.transcript)")
        let flags = Self.descriptorFlags(pid: daemon.pid, fd: 3)
        #expect(flags.map { $0 & Int(O_CLOEXEC) != 0 } == true, "fd 3 flags: \(String(describing: flags))")

        try Self.exchange(on: path, name: "activation.passed")

        daemon.signal(SIGTERM)
        #expect(daemon.finish() == .exited(0), "\(daemon.transcript)")
        var after = stat()
        #expect(lstat(path, &after) == 0, "the activated socket was removed")
        #expect(after.st_mode == before.st_mode && after.st_ino == before.st_ino, "the activated socket was replaced or chmodded")
        unlink(path)
    }

    @Test("A passed fd that is no listening SOCK_SEQPACKET socket is refused with a clear message",
          arguments: ["stream", "unlistened", "pipe"])
    func refusesWrongDescriptor(kind: String) throws {
        var fds: [Int32] = [-1, -1]
        switch kind {
        case "stream":
            fds[0] = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let path = freshSocketPath("stream")
            try UnixSocketAddress(path).withSockaddr { address, length throws(LinuxError) in
                try retryingLibcOnInterrupt("bind") { bind(fds[0], address, length) }
            }
            #expect(listen(fds[0], 4) == 0)
        case "unlistened":
            fds[0] = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        default:
            let pipe = try ChildDescriptors.pipe()
            fds = [pipe.read, pipe.write]
        }
        defer { for fd in fds where fd >= 0 { close(fd) } }
        let daemon = try ChildProcess.activated("bus1d", ["--config", "/dev/null"], socket: fds[0])
        #expect(daemon.finish() == .exited(2), "\(daemon.transcript)")
        let expected = kind == "pipe" ? "is not a socket" : "is not a listening AF_UNIX SOCK_SEQPACKET socket"
        #expect(daemon.lines.contains { $0.hasPrefix("bus1d: cannot serve on the socket handed over") && $0.contains(expected) },
                "\(daemon.transcript)")
    }

    @Test("Under systemd-socket-activate --seqpacket, a peer's connection starts bus1d on the passed socket",
          .enabled(if: access(systemdSocketActivate, X_OK) == 0, "needs \(systemdSocketActivate) (Debian package systemd)"))
    func systemdActivation() throws {
        let path = freshSocketPath("systemd")
        let activator = try ChildProcess(Self.systemdSocketActivate,
                                         ["--seqpacket", "-l", path, ChildProcess.buildDirectory + "/bus1d", "--config", "/dev/null"],
                                         mergeStandardError: true)
        #expect(activator.awaitLine(prefix: "Listening on", timeoutSeconds: 60) != nil, "\(activator.transcript)")
        try Self.exchange(on: path, name: "activation.systemd")  // the first connection execs bus1d
        activator.signal(SIGTERM)
        #expect(activator.finish(timeoutSeconds: 60) == .exited(0), "\(activator.transcript)")
        #expect(!activator.lines.contains { $0.contains("already running") }, "\(activator.transcript)")
        #expect(access(path, F_OK) == 0, "bus1d removed the socket systemd owns")
        unlink(path)
    }
}
