import CBus1Linux
import Glibc

/// An open file descriptor owned by exactly one value; closed in `deinit`.
///
/// Move it with `consuming`/`take()`; borrow ``rawValue`` for a syscall. Every
/// descriptor Bus1 opens is close-on-exec.
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
        try retryingLibcOnInterrupt("fstat") { fstat(rawValue, &st) }
        return Int(st.st_size)
    }

    /// The parts of `range` (byte offsets) that hold data, skipping holes
    /// (`SEEK_DATA`/`SEEK_HOLE`): reading a hole of a shared memfd mapping would
    /// make the kernel allocate pages on the owner's account.
    public func dataExtents(in range: Range<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var position = max(0, range.lowerBound)
        while position < range.upperBound {
            let data = lseek(rawValue, off_t(position), B1L_SEEK_DATA)
            if data < 0 || Int(data) >= range.upperBound { break }
            let hole = lseek(rawValue, data, B1L_SEEK_HOLE)
            let stop = hole < 0 ? range.upperBound : min(range.upperBound, Int(hole))
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
        // EINTR on close still closes the descriptor on Linux: never retry.
        _ = Glibc.close(rawValue)
    }
}
