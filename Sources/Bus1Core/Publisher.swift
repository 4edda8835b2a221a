import CBus1Wire
import Synchronization

/// One ring a send publishes on, as the send protocol sees it: the ring's staging
/// word and its reader's wake page. Plain words (no ownership): whoever owns the
/// ring's mapping keeps it alive while the lane is used.
/// Sendable: immutable pointers to words accessed only atomically.
public struct PublishLane: @unchecked Sendable {
    @usableFromInline let staging: SharedWord64
    /// The reader's wake page: its doorbell, and (for the coordinator ring) the
    /// control sequence a publish announces itself in.
    public let readerWake: WakePage

    public init(staging: SharedWord64, readerWake: WakePage) {
        self.staging = staging
        self.readerWake = readerWake
    }

    /// Marks a send in progress on this ring: `mark` is at most the ticket about
    /// to be taken. Ordered before the ticket by the ticket's `fetch_add` (see `Publisher`).
    @inlinable @inline(__always)
    public func stage(_ mark: UInt64) {
        staging.storeRelaxed(mark)
    }

    /// Ends a send: the caller published the ring's tail first, so a reader that
    /// sees 0 also sees that publish.
    @inlinable @inline(__always)
    public func unstage() {
        staging.storeReleasing(0)
    }
}

extension SubmissionProducer {
    /// This ring as a lane of the send protocol, waking `reader`.
    public func lane(waking reader: WakePage) -> PublishLane {
        PublishLane(staging: memory.staging, readerWake: reader)
    }
}

/// A clock value no honest clock could hand out (see `MonotonicTickets`): what
/// the clock returned, and the ticket issued instead.
public struct ClockAnomaly: Sendable, Equatable {
    public let taken: UInt64
    public let issued: UInt64

    @inlinable
    public init(taken: UInt64, issued: UInt64) {
        self.taken = taken
        self.issued = issued
    }
}

/// The send protocol of `bus1_wire.h` ("Global order"), written once: every
/// message a peer sends (unicast, multicast, a batch, a hostile test's forgery)
/// and every notification the coordinator publishes goes through
/// ``send(_:on:announcing:write:)``.
///
/// On a globally ordered bus, one send is:
/// 1. **stage**: store the mark (a lower bound of the ticket about to be taken)
///    in the staging word of every ring it publishes on, and, when announcing
///    (the coordinator ring), bump each reader's `control_seq`;
/// 2. (no fence: the ticket's `fetch_add` orders the marks, see below);
/// 3. **ticket**: `count` consecutive tickets from the bus clock's `fetch_add`
///    (acquire-release), never below the mark nor this sender's last ticket
///    (`MonotonicTickets`);
/// 4. **write and publish**: the caller's `write` fills its descriptors (and its
///    ledger) and publishes each ring's tail (release);
/// 5. **unstage** (release): a reader that sees the mark gone sees the tail;
/// 6. **wake**: ring each reader's doorbell, a futex wake only for a reader that
///    sleeps; a multicast's sleepers are checked after one fence and woken
///    together (`Waker`: one io_uring submission for all of them).
///
/// Why the marks need no fence of their own (pass 2 of the merge, `TicketMerge`,
/// relies on it): a receiver that saw ticket `t` from sender B, then reads the
/// mark of sender A whose ticket is below `t`, must see A's mark (or what
/// replaced it: A's unstage, which comes after A's publish, or a later mark).
/// A's mark store is sequenced before A's `fetch_add` (a release). B's
/// `fetch_add` (an acquire) came later on the clock, so it read A's or a later
/// read-modify-write of the same release sequence and synchronizes with A's.
/// B wrote `t` after it, and published it (the slot's ticket store, a release)
/// to the receiver's acquire of that slot. So A's mark happens before the
/// receiver's read of it, and coherence does the rest. On x86 the `lock xadd`
/// is a full barrier anyway, so the fence only ever cost time. (A hostile
/// clock can break tickets, not this argument: marks are judged against what
/// was read, and the stall rule bounds a lie.)
///
/// On a FIFO-only bus there are no marks (steps 1, 2, 5 are skipped) and the
/// tickets are this sender's own counter: never 0, rising per channel.
@frozen
public struct Publisher {
    public let ordering: BusOrdering
    @usableFromInline let clock: ClockPage
    @usableFromInline var tickets = MonotonicTickets()
    @usableFromInline var localTicket: UInt64 = 0
    /// Wakes the sleepers of a send on several lanes.
    @usableFromInline let waker: Waker

    public init(ordering: BusOrdering, clock: ClockPage, waker: Waker = Waker()) {
        self.ordering = ordering
        self.clock = clock
        self.waker = waker
    }

    /// The last ticket this publisher issued on a global bus (0: none yet).
    public var lastTicket: UInt64 { tickets.last }

    /// Clock anomalies seen so far (see `MonotonicTickets`).
    public var clockAnomalies: Int { tickets.anomalies }

    /// Sends `count` (≥ 1) messages under consecutive tickets on `lanes`, by the
    /// protocol above. `write(first)` runs between the ticket and the unstage: it
    /// writes every descriptor (the first ticket is `first`, the rest follow it by
    /// `MonotonicTickets.ticket(after:)`) and publishes every lane's tail.
    /// Returns the first ticket and, if the clock misbehaved, the anomaly.
    /// `announcing` (the coordinator ring's `control_seq`) needs a global bus.
    @inlinable @inline(__always)
    public mutating func send<Lanes: Collection<PublishLane>>(
        _ count: UInt64 = 1, on lanes: Lanes, announcing: Bool = false, write: (_ first: UInt64) -> Void
    ) -> (first: UInt64, anomaly: ClockAnomaly?) {
        guard ordering == .global else {
            precondition(!announcing, "announcing publishes are staged: a global-order publisher only")
            let first = localTicket &+ 1
            localTicket &+= count
            write(first)
            wake(lanes)
            return (first, nil)
        }
        let mark = tickets.mark(clock: clock.current())
        for lane in lanes {
            lane.stage(mark)
            // After the mark, before the ticket: a reader that sees a ticket above
            // ours sees this bump, then the mark, and so looks at its ring.
            if announcing { _ = lane.readerWake.controlSequence.fetchAddReleasing(1) }
        }
        let taken = clock.next(count)  // releases the marks and bumps to every later ticket taker (see above)
        let (first, anomalous) = tickets.issue(taken: taken, count: count, mark: mark)
        write(first)
        for lane in lanes { lane.unstage() }
        wake(lanes)
        return (first, anomalous ? ClockAnomaly(taken: taken, issued: first) : nil)
    }

    /// Step 6: one lane rings its reader (fence, then a futex wake only if it
    /// sleeps); several go through the waker (one fence, the sleepers together).
    @inlinable @inline(__always)
    func wake<Lanes: Collection<PublishLane>>(_ lanes: Lanes) {
        if lanes.count == 1 {
            lanes.first!.readerWake.ring()
        } else {
            waker.wake(lanes)
        }
    }

    /// Stages `lane` and returns without a ticket: a sender frozen mid-send
    /// (hostile tests only; the lane stays staged).
    public func stageOnly(_ lane: PublishLane) {
        lane.stage(tickets.mark(clock: clock.current()))
    }
}
