import Bus1Core
import Bus1Linux
import Synchronization

/// Ends a peer's wait from another thread: the one thing any thread may do to a
/// ``Peer`` it does not own (for shutdown, or to hand a parked receiver new work).
///
/// ``interrupt()`` makes the peer's current wait, or its next one, throw
/// ``Bus1Error/interrupted`` once: a blocking ``Peer/receive(mode:timeout:)-8yrg1``
/// (spinning or parked), a waiting loan or send, and the async ones. It rings the
/// peer's own doorbell, so a park or an armed readiness descriptor wakes at once.
/// Nothing is lost: a message that arrived meanwhile is delivered by the next
/// receive.
///
/// Sendable: its state is one atomic flag and the peer's wake page, which stays
/// mapped for as long as any interrupter lives.
public final class PeerInterrupter: Sendable {
    private let wake: WakeMapping
    private let pending = Atomic<Bool>(false)

    init(wake: WakeMapping) { self.wake = wake }

    /// Interrupts the peer's current or next wait.
    public func interrupt() {
        pending.store(true, ordering: .releasing)
        _ = wake.page.doorbell.fetchAddReleasing(1)  // a waiter about to park sees the word change
        _ = try? Futex.wake(wake.page.doorbell.address)  // fails only for a bad address; the mapping is ours
    }

    /// Whether an interrupt is pending, clearing it (the waiting thread only).
    @inline(__always)
    func take() -> Bool {
        pending.load(ordering: .relaxed) && pending.exchange(false, ordering: .acquiring)
    }
}

/// A peer's own wake page, mapped: shared by the peer and its interrupters so the
/// page stays mapped while either lives. Immutable after init.
final class WakeMapping: Sendable {
    let mapping: Mapping
    let page: WakePage

    init(_ mapping: consuming Mapping) throws(WireError) {
        page = try WakePage(mapping)
        self.mapping = mapping
    }
}
