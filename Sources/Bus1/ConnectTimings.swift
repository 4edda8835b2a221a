/// How long each step of a ``Peer/connect(options:)`` took, in nanoseconds
/// (CLOCK_MONOTONIC, a handful of reads per connect, none afterwards): what
/// `bus1-bench control` reports, so a slow connect shows which step is slow.
public struct ConnectTimings: Sendable, Equatable {
    /// Socket creation and `connect` to the bus socket.
    public var socket: UInt64 = 0
    /// Creating the parker (the io_uring or futex the peer's waits use).
    public var parker: UInt64 = 0
    /// HELLO → WELCOME: the coordinator makes the pool, wake page and
    /// coordinator ring (memfds) and sends them.
    public var welcome: UInt64 = 0
    /// Mapping the pool, wake page, clock and coordinator ring, and setting up
    /// the pool allocator.
    public var mapping: UInt64 = 0
    /// POOL_MAPPED → OK: the coordinator seals the pool; the peer checks the seals.
    public var sealing: UInt64 = 0
    /// The whole connect, the steps above and what lies between them.
    public var total: UInt64 = 0

    public init() {}
}
