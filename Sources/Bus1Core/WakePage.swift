import Bus1Linux
import CBus1Wire
import Synchronization

/// A view of a peer's wake page (`struct bus1_wake_page`): its doorbell futex
/// word, its `sleeping` flag, and the coordinator's `control_seq`.
///
/// Who writes what: the owner writes `sleeping`; anyone with a channel to the
/// owner, and the coordinator, increment `doorbell`; the coordinator bumps
/// `control_seq`. The view does not own the mapping.
///
/// Protocol (a waiter clears its own flag; a waker never does, or wake-ups are lost):
/// - waiter: read `doorbell` → set `sleeping` → seq_cst fence → re-check its queues
///   → `futex_wait(doorbell, value read)` → clear `sleeping`.
/// - waker: publish its data (release) → seq_cst fence → if `sleeping`, increment
///   `doorbell` and `futex_wake` it.
/// The two fences order each side's store before its load (Dekker), so either the
/// waiter's re-check sees the data or the waker sees the flag.
/// Sendable: its words are ``SharedWord32``/``SharedWord64`` (atomic only); the
/// base pointer is immutable and only read for the header at init.
public struct WakePage: @unchecked Sendable {
    public let doorbell: SharedWord32
    public let sleeping: SharedWord32
    public let controlSequence: SharedWord64
    private let base: UnsafeMutableRawPointer

    /// Makes the view of a wake page the coordinator handed over.
    ///
    /// The header (magic, version, peer) is not checked, on purpose: every peer with
    /// a channel to the owner maps this page writable (to ring the doorbell), so
    /// any of them can overwrite the header, and a check here would let one write
    /// cut the owner off from every new sender. What the page is, and whose, comes
    /// from the coordinator's message over the socket, which no peer can forge;
    /// the header is for inspectors, which report a damaged one. Only the size is
    /// checked (the mapping must hold the words).
    public init(_ mapping: borrowing Mapping) throws(WireError) {
        guard mapping.count >= MemoryLayout<bus1_wake_page>.size else { throw .tooSmall("wake page") }
        self.base = mapping.base
        doorbell = SharedWord32(mapping.base, offset: wireOffset(\bus1_wake_page.doorbell))
        sleeping = SharedWord32(mapping.base, offset: wireOffset(\bus1_wake_page.sleeping))
        controlSequence = SharedWord64(mapping.base, offset: wireOffset(\bus1_wake_page.control_seq))
    }

    /// Writes a fresh header (coordinator only, before anyone else maps the page).
    public static func initialize(_ mapping: borrowing Mapping, peer: UInt64) {
        var header = bus1_wake_page()
        header.magic = BUS1_MAGIC_WAKE
        header.version = BUS1_WIRE_VERSION
        header.peer_id = peer
        mapping.base.storeBytes(of: header, as: bus1_wake_page.self)
    }

    /// The waiter's half of the protocol up to the sleep: reads `doorbell`, sets
    /// `sleeping`, issues the seq_cst fence and re-checks with `ready`. Returns the
    /// doorbell value to sleep on (futex-wait until it moves), or nil when `ready()`
    /// held; then, and when `ready` throws, `sleeping` is cleared again. The owner
    /// clears it itself after the sleep.
    @inline(__always)
    public func prepareToSleep(_ ready: () throws -> Bool) rethrows -> UInt32? {
        let seen = doorbell.loadAcquiring()
        sleeping.storeRelaxed(1)
        atomicMemoryFence(ordering: .sequentiallyConsistent)  // publish `sleeping` before re-checking (pairs with the wakers' fence)
        do {
            if try ready() {
                sleeping.storeRelaxed(0)
                return nil
            }
        } catch {
            sleeping.storeRelaxed(0)
            throw error
        }
        return seen
    }

    /// For a waker that woke several pages at once (``Waker``): after its caller
    /// published and issued the seq_cst fence, claims the wake-up if the owner
    /// sleeps (increments `doorbell`) and returns the word to `futex_wake`; nil if
    /// the owner is awake.
    @inline(__always)
    public func claimWakeAfterFence() -> UnsafeMutablePointer<UInt32>? {
        guard sleeping.loadRelaxed() != 0 else { return nil }
        _ = doorbell.fetchAddReleasing(1)  // the futex word changes: a waiter about to sleep returns EAGAIN
        return doorbell.address
    }

    /// Wakes the owner if it advertised that it sleeps. Call after publishing.
    /// Returns whether a futex wake was issued (a bare wake with no waiter costs
    /// a syscall, so it is skipped when nobody sleeps).
    @inline(__always)
    @discardableResult
    public func ring() -> Bool {
        atomicMemoryFence(ordering: .sequentiallyConsistent)  // order our publish before reading `sleeping`
        guard sleeping.loadRelaxed() != 0 else { return false }
        _ = doorbell.fetchAddReleasing(1)  // the futex word changes: a waiter about to sleep returns EAGAIN
        _ = try? Futex.wake(doorbell.address)
        return true
    }
}
