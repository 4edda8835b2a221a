import CBus1Linux
import Glibc

/// Unix `SOCK_SEQPACKET` sockets with fd passing and peer credentials: the
/// coordinator's control channel.
public enum SeqPacket {
    /// Binds and listens at `path` (non-blocking, close-on-exec). The backlog is
    /// the kernel's maximum: a connection burst waits there, not in refusals.
    public static func listen(path: String, backlog: Int32 = SOMAXCONN) throws(LinuxError) -> FileDescriptor {
        FileDescriptor(adopting: try retryingOnInterrupt("bind/listen \(path)") { b1l_listen_seqpacket(path, backlog) })
    }

    /// Connects to `path` (blocking, close-on-exec). With `timeoutNanoseconds`,
    /// the connect, and every blocking send and receive until
    /// ``setTimeouts(_:nanoseconds:)`` lifts it, fail with `EAGAIN` after that long
    /// (a coordinator that stopped accepting leaves a connect in its backlog).
    public static func connect(path: String, timeoutNanoseconds: Int64? = nil) throws(LinuxError) -> FileDescriptor {
        FileDescriptor(adopting: try retryingOnInterrupt("connect \(path)") { b1l_connect_seqpacket(path, timeoutNanoseconds ?? -1) })
    }

    /// Sets (or, nil, lifts) the send and receive timeouts of a blocking socket.
    public static func setTimeouts(_ socket: Int32, nanoseconds: Int64?) throws(LinuxError) {
        try retryingOnInterrupt("setsockopt SO_RCVTIMEO") { b1l_socket_set_timeouts(socket, nanoseconds ?? -1) }
    }

    /// Accepts one connection (non-blocking, close-on-exec); nil if none is pending.
    /// A connection aborted before it was taken is skipped (the next one is
    /// taken); resource exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) throws.
    public static func accept(_ listener: borrowing FileDescriptor) throws(LinuxError) -> FileDescriptor? {
        while true {
            let fd = try retryingOnInterrupt("accept4", tolerating: [EAGAIN, ECONNABORTED]) { b1l_accept(listener.rawValue) }
            if fd >= 0 { return FileDescriptor(adopting: fd) }
            if fd == -EAGAIN { return nil }
            // ECONNABORTED: that connection is gone; take the next.
        }
    }

    /// Sends one datagram with `fds` attached (`SCM_RIGHTS`). `dontWait`: fail with
    /// `EAGAIN` instead of blocking when the peer's receive queue is full.
    public static func send(_ socket: Int32, _ bytes: [UInt8], fds: [Int32] = [], dontWait: Bool = false) throws(LinuxError) {
        let flags = dontWait ? Int32(MSG_DONTWAIT) : 0
        let sent = try bytes.withUnsafeBytes { raw in
            fds.withUnsafeBufferPointer { fdBuffer in
                Result { () throws(LinuxError) in
                    try retryingOnInterrupt("sendmsg") {
                        b1l_send_with_fds(socket, raw.baseAddress, raw.count, fdBuffer.baseAddress, Int32(fdBuffer.count), flags)
                    }
                }
            }
        }.get()
        if sent != bytes.count { throw LinuxError("sendmsg (short)", code: EMSGSIZE) }
    }

    /// One received datagram: its bytes (possibly empty on hang-up), its fds (owned),
    /// and whether anything was cut.
    public struct Datagram: ~Copyable {
        public var count: Int
        public var fds: [Int32]
        public var truncated: Bool
        public var isHangUp: Bool { count == 0 && fds.isEmpty }

        /// Takes ownership of the received descriptors.
        public mutating func takeDescriptors() -> [Int32] {
            defer { fds = [] }
            return fds
        }

        deinit {
            for fd in fds { _ = Glibc.close(fd) }  // close: never retried (LinuxError.swift)
        }
    }

    /// Reads and drops every datagram queued on `socket` (closing any fds they
    /// carry) without blocking. Done before closing a socket that was shut down
    /// unread: a Unix socket closed with unread data resets its peer, which would
    /// then see `ECONNRESET` before the last datagram it was sent.
    public static func discardPending(_ socket: Int32) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { scratch.deallocate() }
        while let datagram = try? receive(socket, into: scratch, dontWait: true), !datagram.isHangUp {}
    }

    /// Receives one datagram into `buffer`; nil when `dontWait` and nothing is queued.
    public static func receive(
        _ socket: Int32, into buffer: UnsafeMutableRawBufferPointer, maxDescriptors: Int = 8, dontWait: Bool = false
    ) throws(LinuxError) -> Datagram? {
        var fds = [Int32](repeating: -1, count: maxDescriptors)
        var count: Int32 = 0
        var truncated: Int32 = 0
        let flags = dontWait ? Int32(MSG_DONTWAIT) : 0
        let n = try retryingOnInterrupt("recvmsg", tolerating: dontWait ? [EAGAIN] : []) {
            b1l_recv_with_fds(socket, buffer.baseAddress, buffer.count, &fds, Int32(maxDescriptors), &count, &truncated, flags)
        }
        if n < 0 { return nil }  // EAGAIN with dontWait: nothing queued
        return Datagram(count: n, fds: Array(fds.prefix(Int(count))), truncated: truncated != 0)
    }

    /// Credentials of the connected peer (`SO_PEERCRED`).
    public static func peerCredentials(_ socket: borrowing FileDescriptor) throws(LinuxError) -> (pid: Int32, uid: UInt32, gid: UInt32) {
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        try retryingOnInterrupt("getsockopt(SO_PEERCRED)") { b1l_peer_credentials(socket.rawValue, &pid, &uid, &gid) }
        return (pid, uid, gid)
    }

    /// A pidfd for the connected peer: `SO_PEERPIDFD` (race-free), else
    /// `pidfd_open(pid)`.
    public static func peerProcess(_ socket: borrowing FileDescriptor, pid: Int32) throws(LinuxError) -> FileDescriptor {
        if let fd = try? retryingOnInterrupt("getsockopt(SO_PEERPIDFD)", { b1l_peer_pidfd(socket.rawValue) }) {
            return FileDescriptor(adopting: fd)
        }
        return FileDescriptor(adopting: try retryingOnInterrupt("pidfd_open") { b1l_pidfd_open(pid) })
    }
}

/// Whether `fd` has input or a hang-up pending, without blocking (`poll(2)`, 0 timeout).
public func pollNow(_ fd: Int32) -> (readable: Bool, hangUp: Bool) {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard let ready = try? retryingLibcOnInterrupt("poll", { poll(&p, 1, 0) }), ready > 0 else { return (false, false) }
    return (p.revents & Int16(POLLIN) != 0, p.revents & Int16(POLLHUP | POLLERR) != 0)
}
