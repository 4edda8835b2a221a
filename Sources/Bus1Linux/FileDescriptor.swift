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
        let fd = try retryingLibcOnInterrupt("fcntl(F_DUPFD_CLOEXEC)") { fcntl(rawValue, F_DUPFD_CLOEXEC, 0) }
        return FileDescriptor(adopting: fd)
    }

    /// Size of the file (`fstat`).
    public func size() throws(LinuxError) -> Int {
        var st = stat()
        try retryingLibcOnInterrupt("fstat") { fstat(rawValue, &st) }
        return Int(st.st_size)
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
