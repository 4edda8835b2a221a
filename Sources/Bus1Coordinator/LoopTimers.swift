/// When the coordinator's loop must wake up by itself: the earliest handshake or
/// held-reply deadline, and the end of an accept pause.
///
/// Deadlines live with what they belong to (``PeerRecord/handshakeDeadline``,
/// ``HeldReply/deadline``); this keeps only the earliest one, so an idle bus
/// sleeps without a timeout and a busy one does not scan its tables every turn.
/// A sweep (``Coordinator/expireDeadlines(now:)``) handles everything due and
/// schedules what is left. One instance, shared by the loop, the admission of
/// connections and the outbox (held replies); only the loop's thread uses it.
final class LoopTimers {
    typealias Instant = ContinuousClock.Instant

    /// Whether a poll of the listening socket is queued.
    var listenerArmed = false
    /// Accepting is paused until then (after `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`).
    var acceptResumesAt: Instant?
    /// The earliest deadline scheduled and not yet swept.
    private(set) var earliestDeadline: Instant?

    /// Makes sure the loop wakes by `deadline`.
    func schedule(_ deadline: Instant) {
        if let earliest = earliestDeadline, earliest <= deadline { return }
        earliestDeadline = deadline
    }

    /// Whether a sweep is due at `now`; if so, forgets the deadline (the sweep
    /// schedules what remains).
    func takeDueSweep(at now: Instant) -> Bool {
        guard let earliest = earliestDeadline, earliest <= now else { return false }
        earliestDeadline = nil
        return true
    }

    /// How long the loop may block: until the earliest deadline or accept resume,
    /// nil (no timeout) when there is none.
    func nanosecondsUntilNextDeadline(now: Instant = .now) -> Int64? {
        let next = [earliestDeadline, acceptResumesAt].compactMap { $0 }.min()
        guard let next else { return nil }
        let (seconds, attoseconds) = max(.zero, now.duration(to: next)).components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000 + 1  // round up: never wake just before it
    }
}
