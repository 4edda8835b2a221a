import CBus1Linux
import Glibc

/// An open file descriptor owned by exactly one value; closed in `deinit`.
///
/// Move it with `consuming`/`take()`; borrow ``rawValue`` for a syscall. Every
/// descriptor Bus1 opens is close-on-exec.
/// Sendable: an immutable number owned by one value (~Copyable); moving it moves
/// the ownership, and the kernel serialises what threads do with the descriptor.
public struct FileDescriptor: ~Copyable, @unchecked Sendable {
    /// The descriptor number; valid while `self` lives.
    public let rawValue: Int32

    /// Takes ownership of `rawValue`.
    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "adopting an invalid descriptor")
        self.rawValue = rawValue
    }

    /// Gives up ownership without closing; the caller must close the number.
    public consuming func release() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    /// A second descriptor for the same open file description (`F_DUPFD_CLOEXEC`).
    public func duplicate() throws(LinuxError) -> FileDescriptor {
        try Self.duplicating(rawValue)
    }

    /// A new close-on-exec descriptor for the open file description behind the
    /// (borrowed) number `fd`.
    public static func duplicating(_ fd: Int32) throws(LinuxError) -> FileDescriptor {
        FileDescriptor(adopting: try retryingLibcOnInterrupt("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd, F_DUPFD_CLOEXEC, 0) })
    }

    /// Size of the file (`fstat`).
    public func size() throws(LinuxError) -> Int {
        var st = stat()
        _ = try retryingLibcOnInterrupt("fstat") { fstat(rawValue, &st) }
        return Int(st.st_size)
    }

    /// The parts of `range` (byte offsets) that hold data, skipping holes
    /// (`SEEK_DATA`/`SEEK_HOLE`): reading a hole of a shared memfd mapping would
    /// make the kernel allocate pages on the owner's account.
    public func dataExtents(in range: Range<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var position = max(0, range.lowerBound)
        while position < range.upperBound {
            // ENXIO: no data from here on; any other failure ends the scan too.
            guard let data = try? retryingLibcOnInterrupt("lseek(SEEK_DATA)", { lseek(rawValue, off_t(position), B1L_SEEK_DATA) }),
                  Int(data) < range.upperBound else { break }
            let hole = try? retryingLibcOnInterrupt("lseek(SEEK_HOLE)") { lseek(rawValue, data, B1L_SEEK_HOLE) }
            let stop = hole.map { min(range.upperBound, Int($0)) } ?? range.upperBound
            result.append(Int(data)..<stop)
            position = stop
        }
        return result
    }

    /// Clears or sets `O_NONBLOCK`.
    public func setNonBlocking(_ on: Bool) throws(LinuxError) {
        let flags = try retryingLibcOnInterrupt("fcntl(F_GETFL)") { fcntl(rawValue, F_GETFL) }
        let new = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        try retryingLibcOnInterrupt("fcntl(F_SETFL)") { fcntl(rawValue, F_SETFL, new) }
    }

    deinit {
        // EINTR on close still closes the descriptor on Linux: never retried, so
        // outside the funnel (LinuxError.swift).
        _ = Glibc.close(rawValue)
    }
}

/// What an fd someone else handed over refers to, as far as passing it on matters.
public enum DescriptorKind: Equatable, Sendable {
    /// An `AF_UNIX` socket (passing those on can build reference cycles of sockets
    /// in flight that nothing collects).
    case unixSocket
    /// A memfd, with the name it was created with (`memfd:` stripped).
    case memfd(name: String)
    case other

    /// Classifies `fd` by `fstat`, `SO_DOMAIN` and its `/proc/self/fd` link.
    public static func of(_ fd: Int32) throws(LinuxError) -> DescriptorKind {
        var status = stat()
        _ = try retryingLibcOnInterrupt("fstat") { fstat(fd, &status) }
        if status.st_mode & S_IFMT == S_IFSOCK {
            var domain: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = try retryingLibcOnInterrupt("getsockopt SO_DOMAIN") { getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) }
            return domain == AF_UNIX ? .unixSocket : .other
        }
        var buffer = [CChar](repeating: 0, count: 512)
        let link = "/proc/self/fd/\(fd)"
        guard let n = try? retryingLibcOnInterrupt("readlink", { readlink(link, &buffer, buffer.count - 1) }), n > 0 else {
            return .other
        }
        let target = String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard target.hasPrefix("/memfd:") else { return .other }
        var name = String(target.dropFirst("/memfd:".count))
        if name.hasSuffix(" (deleted)") { name = String(name.dropLast(" (deleted)".count)) }
        return .memfd(name: name)
    }
}
