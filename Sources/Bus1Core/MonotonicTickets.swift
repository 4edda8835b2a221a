/// A ticket taker's own promise that its tickets never fall, whatever the shared
/// clock does.
///
/// The clock word (`bus1_clock_page.ticket`) is writable by every peer, because
/// every sender `fetch_add`s it: a hostile peer can rewind it, jump it, or jump it
/// close to `UInt64.max` so that it wraps. Receivers close a channel whose tickets
/// fall (``ChannelViolation/badTicket``), so an honest taker (a peer, or the
/// coordinator for its rings) must never emit one below its last, or the clock's
/// owner-less word would let a stranger close honest channels and blame their
/// senders. A rewound clock degrades order, never delivery.
///
/// The rule, for one send (or batch of `count`):
/// 1. stage with `mark = max(clock.current(), last + 1)` (``mark(clock:)``);
/// 2. take `taken` from the clock; issue `first = max(taken, mark)` (``issue(taken:count:mark:)``);
/// 3. the batch's tickets are `first, first + 1, …`, saturating at `UInt64.max`;
///    `last` becomes the final one.
///
/// Invariants, for every sequence of clock values (honest or not):
/// - every ticket issued is ≥ 1 (0 means "no ticket") and ≥ every ticket issued
///   before it: strictly above until `UInt64.max` is reached, then equal to it
///   (receivers accept equal tickets on a channel: a multicast to several nodes);
/// - every ticket issued is ≥ the mark staged for it, so a staging mark stays a
///   true lower bound for receivers (and is never 0, which would read "not sending");
/// - nothing wraps or traps, whatever `taken` is;
/// - with an honest clock (it only rises) the rule changes nothing: then
///   `taken ≥ clock.current() ≥ …` and `taken > last`, so `first == taken`.
///
/// What the taker can tell is wrong with the clock (an *anomaly*, counted and
/// reported by the caller):
/// - a `taken` below the mark: the clock fell (rewound, or wrapped after a
///   jump). One anomaly per incident: nothing more is counted until the clock
///   catches up with the taker again;
/// - a `taken` at least ``jumpThreshold`` above the floor: the clock jumped
///   further than honest `fetch_add`s could move it (2^56 tickets: decades at
///   10^8 tickets a second). It cannot be undone, only noticed.
@frozen
public struct MonotonicTickets: Sendable, Equatable {
    /// The last ticket issued (0: none yet).
    public var last: UInt64 { lastIssued }
    /// Anomalies seen (see the type's comment).
    public var anomalies: Int { anomalyCount }
    // Stored as `@usableFromInline` so the send path inlines the rule across modules.
    @usableFromInline var lastIssued: UInt64 = 0
    @usableFromInline var anomalyCount = 0
    /// Whether the clock is still below this taker's floor (one incident, not one per send).
    @usableFromInline var behind = false
    /// How far above the floor a clock value counts as a jump.
    public static let jumpThreshold: UInt64 = 1 << 56

    public init() {}

    /// The lowest ticket this taker may issue next: `last + 1`, saturating.
    @inlinable @inline(__always)
    public var floor: UInt64 { lastIssued == .max ? .max : lastIssued + 1 }

    /// The staging mark for the next send, given the clock's current value: a
    /// lower bound of the ticket ``issue(taken:count:mark:)`` will return.
    @inlinable @inline(__always)
    public func mark(clock current: UInt64) -> UInt64 { max(current, floor) }

    /// Issues `count` (≥ 1) tickets after `taken` came from the clock's `fetch_add`
    /// and `mark` (from ``mark(clock:)``) was staged. Returns the first; the rest
    /// follow it, saturating at `UInt64.max` (see ``ticket(after:)``). `anomaly`
    /// is true when `taken` is a new anomaly (a fallen or jumped clock).
    @inlinable @inline(__always)
    public mutating func issue(taken: UInt64, count: UInt64 = 1, mark: UInt64) -> (first: UInt64, anomaly: Bool) {
        let floor = self.floor
        let first = max(taken, mark, floor)
        let span = count &- 1
        lastIssued = first > UInt64.max - span ? .max : first + span
        if taken >= mark {
            behind = false
            guard taken &- floor >= Self.jumpThreshold else { return (first, false) }
        } else {
            if behind { return (first, false) }
            behind = true
        }
        anomalyCount += 1
        return (first, true)
    }

    /// The ticket after `ticket` in a batch: one more, saturating at `UInt64.max`.
    @inlinable @inline(__always)
    public static func ticket(after ticket: UInt64) -> UInt64 { ticket == .max ? .max : ticket + 1 }
}
