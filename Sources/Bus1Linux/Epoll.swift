import CBus1Linux

/// An epoll instance: which of its descriptors are ready. Adding, removing and
/// waiting may happen on different threads at once (the kernel serialises them).
public struct Epoll: ~Copyable, Sendable {
    public let descriptor: FileDescriptor

    /// One ready descriptor: the data it was added with and what happened.
    public struct Event: Sendable, Equatable {
        public let data: UInt64
        public let events: UInt32
    }

    /// What to wait for (`EPOLLIN`...).
    public struct Interest: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Interest(rawValue: B1L_EPOLLIN)
        /// Reported once, then disabled until removed and added again.
        public static let oneShot = Interest(rawValue: B1L_EPOLLONESHOT)
    }

    public init() throws(LinuxError) {
        descriptor = FileDescriptor(adopting: try retryingOnInterrupt("epoll_create1") { b1l_epoll_create() })
    }

    /// Watches `fd` (borrowed: the caller keeps it open until it is removed).
    public func add(_ fd: Int32, for interest: Interest, data: UInt64) throws(LinuxError) {
        _ = try retryingOnInterrupt("epoll_ctl(ADD)") { b1l_epoll_add(descriptor.rawValue, fd, interest.rawValue, data) }
    }

    /// Changes what `fd` is watched for and its data; re-arms a one-shot
    /// registration that fired. `ENOENT` if `fd` is not in the set.
    public func modify(_ fd: Int32, for interest: Interest, data: UInt64) throws(LinuxError) {
        _ = try retryingOnInterrupt("epoll_ctl(MOD)") { b1l_epoll_modify(descriptor.rawValue, fd, interest.rawValue, data) }
    }

    public func remove(_ fd: Int32) throws(LinuxError) {
        _ = try retryingOnInterrupt("epoll_ctl(DEL)") { b1l_epoll_remove(descriptor.rawValue, fd) }
    }

    /// Waits up to `timeoutMilliseconds` (nil: no limit) for ready descriptors;
    /// empty when the time ran out. A signal restarts the whole wait (the funnel).
    public func wait(timeoutMilliseconds: Int?, into events: inout [Event]) throws(LinuxError) {
        var data = [UInt64](repeating: 0, count: 64), kinds = [UInt32](repeating: 0, count: 64)
        let n = try retryingOnInterrupt("epoll_wait") {
            b1l_epoll_wait(descriptor.rawValue, &data, &kinds, 64, Int32(clamping: timeoutMilliseconds ?? -1))
        }
        events.removeAll(keepingCapacity: true)
        for i in 0..<Int(n) { events.append(Event(data: data[i], events: kinds[i])) }
    }
}

/// An eventfd: a counter another thread bumps to make the descriptor readable
/// (how a thread blocked in ``Epoll/wait(timeoutMilliseconds:into:)`` is woken).
public struct EventFD: ~Copyable, Sendable {
    public let descriptor: FileDescriptor

    public init() throws(LinuxError) {
        descriptor = FileDescriptor(adopting: try retryingOnInterrupt("eventfd") { b1l_eventfd_create() })
    }

    /// Makes the descriptor readable (until ``drain()``).
    public func signal() throws(LinuxError) {
        _ = try retryingOnInterrupt("write(eventfd)") { b1l_eventfd_signal(descriptor.rawValue) }
    }

    /// Makes the descriptor unreadable again; returns whether it was signalled.
    @discardableResult
    public func drain() throws(LinuxError) -> Bool {
        try retryingOnInterrupt("read(eventfd)") { b1l_eventfd_drain(descriptor.rawValue) } > 0
    }
}
