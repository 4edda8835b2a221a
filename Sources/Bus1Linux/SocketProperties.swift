import Glibc

/// What kind of socket an fd is, read back from the kernel: enough to check a
/// socket someone else created (systemd socket activation) before serving on it.
public struct SocketProperties: Equatable, Sendable {
    /// `AF_UNIX`, `AF_INET`, ... (`SO_DOMAIN`).
    public let domain: Int32
    /// `SOCK_SEQPACKET`, `SOCK_STREAM`, ... (`SO_TYPE`).
    public let type: Int32
    /// Whether `listen(2)` was called on it (`SO_ACCEPTCONN`).
    public let isListening: Bool

    /// Reads the properties of `fd`; `ENOTSOCK` if it is no socket.
    /// The corresponding C function is `getsockopt(2)`.
    public init(of fd: Int32) throws(LinuxError) {
        func option(_ name: Int32, _ label: String) throws(LinuxError) -> Int32 {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            try retryingLibcOnInterrupt("getsockopt(\(label))") { getsockopt(fd, SOL_SOCKET, name, &value, &length) }
            return value
        }
        domain = try option(SO_DOMAIN, "SO_DOMAIN")
        type = try option(SO_TYPE, "SO_TYPE")
        isListening = try option(SO_ACCEPTCONN, "SO_ACCEPTCONN") != 0
    }

    /// A listening `AF_UNIX` `SOCK_SEQPACKET` socket: what a bus serves on.
    public var isSeqPacketListener: Bool {
        domain == AF_UNIX && type == Int32(SOCK_SEQPACKET.rawValue) && isListening
    }
}
