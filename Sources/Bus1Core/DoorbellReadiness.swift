import Bus1Linux

/// Makes a peer's doorbell and control socket pollable: a descriptor an event
/// loop (epoll, poll, io_uring, SwiftNIO) watches for readability, turning
/// readable when the doorbell rings or the control socket has something (or hung
/// up). Two implementations: ``IOURingDoorbellReadiness`` (kernel >= 6.7, no
/// thread) and ``ThreadDoorbellReadiness`` (an eventfd a parked helper thread
/// signals; everywhere). ``ParkBackend/makeReadiness(page:socket:keepingAlive:)`` picks.
///
/// Both follow the ``WakePage`` protocol with the wait handed to something other
/// than the owner's thread:
/// - ``arm(_:)``: read `doorbell` → set `sleeping` → seq_cst fence → re-check
///   (`ready`) → start waiting for `doorbell` to move from the value read.
/// - Any sender that publishes after the re-check sees `sleeping` (its fence pairs
///   with ours), bumps `doorbell` and wakes its waiters: the descriptor turns
///   readable. A sender that bumped between the read and the wait's start makes
///   the wait end at once (the value changed).
/// - ``disarm()`` when the owner is awake: clears `sleeping`, says what fired.
///
/// While armed, every sender to this peer pays a futex wake per message, as for a
/// parked receiver; while not armed, nothing. Owned by the peer's one thread; the
/// descriptor may sit in an epoll set of any thread.
public protocol DoorbellReadiness: AnyObject {
    /// The descriptor to watch for readability (owned here; do not read or close it).
    var descriptor: Int32 { get }
    /// What waits on the doorbell, for statistics and messages.
    var mechanism: String { get }
    /// Arms the descriptor, unless `ready()` already holds: then returns true,
    /// nothing is armed, and the caller goes on without waiting.
    func arm(_ ready: () throws -> Bool) throws -> Bool
    /// The owner is awake: clears `sleeping` and returns what fired since the last
    /// disarm, including what an arm found and took on its way (empty: nothing yet,
    /// or a spurious wake-up).
    @discardableResult
    func disarm() -> ReadinessFired
}

/// What woke a readiness descriptor.
public struct ReadinessFired: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The doorbell rang: data, a notification, a control event or credit may be waiting.
    public static let doorbell = ReadinessFired(rawValue: 1)
    /// The control socket is readable or hung up.
    public static let socket = ReadinessFired(rawValue: 2)
}

extension ParkBackend {
    /// The readiness for the doorbell of `page` and the control socket `socket`
    /// (borrowed: it must outlive the readiness) that goes with this backend:
    /// io_uring for `.ioUring` (or throws), a helper thread for `.futex`, and for
    /// `.automatic` io_uring where the kernel has its futex wait, else the thread.
    /// `owner` keeps `page`'s mapping alive for as long as a helper thread may touch it.
    public func makeReadiness(page: WakePage, socket: Int32, keepingAlive owner: AnyObject) throws(ParkerUnavailable) -> any DoorbellReadiness {
        switch self {
        case .ioUring:
            return try IOURingDoorbellReadiness(page: page, socket: socket)
        case .futex:
            return try ThreadDoorbellReadiness(page: page, socket: socket, keepingAlive: owner)
        case .automatic:
            if let readiness = try? IOURingDoorbellReadiness(page: page, socket: socket) { return readiness }
            return try ThreadDoorbellReadiness(page: page, socket: socket, keepingAlive: owner)
        }
    }
}
