/// How long one inbound channel's staging mark has held delivery back: the
/// stall rule of the ticket merge, kept per channel by the receiver.
///
/// A sender stages a channel (writes a mark, a lower bound of the ticket it is
/// about to take) before it takes a ticket, and unstages after publishing. While
/// the channel's ring is empty and its mark is non-zero and ≤ the merge's
/// candidate ticket, the candidate waits: the sender may still publish below it.
/// An honest sender does so within a few instructions; a stopped or hostile one
/// may never. The mark is a word the sender writes, so nothing about its value
/// can restart the clock on it:
///
/// - `clear` → `blocking(since: now, holding: t)` the first time the channel
///   holds candidate `t` back; while blocking, `holding` grows to the highest
///   candidate held;
/// - `blocking` → `excused(holding:)` once `now - since` reaches the timeout: the
///   stall is counted and reported once, and the channel's mark is ignored from
///   then on (liveness wins over order);
/// - `blocking` or `excused` → `clear` only when a descriptor *taken* from the
///   channel carries a ticket above `holding`.
///
/// Nothing else resets it: not the mark changing, not the mark dropping to 0 for a
/// moment, not the held candidate being delivered meanwhile, not a descriptor with
/// a lower ticket (the sender picks its tickets: "junk" below the held candidate
/// would otherwise restart the timer for ever).
///
/// Why every message waits at most one timeout per staller: message `m` (ticket
/// `t`) is held back by channel C only in an episode where `holding ≥ t`; the
/// episode ends only when C's descriptor with a ticket above `holding ≥ t` is
/// taken, and the merge takes `m` first (C's head is then above `t`, so C no
/// longer holds it back, by its head, not its mark). So `m` is held back by C in
/// one episode at most, and an episode holds back for at most the timeout.
/// An honest sender ends its episode at once: its publish carries a ticket ≥ its
/// mark, and with an honest clock its next ticket is above anything it held back.
@frozen
public enum OrderingStall: Equatable, Sendable {
    /// Not holding anything back.
    case clear
    /// Holding delivery back since `since` (monotonic ns); `holding`: the highest
    /// candidate ticket held back in this episode.
    case blocking(since: UInt64, holding: UInt64)
    /// Held back past the timeout: its mark is ignored until it publishes above `holding`.
    case excused(holding: UInt64)

    /// What the merge does about a channel whose mark holds back its candidate.
    public enum Verdict: Equatable, Sendable {
        /// Wait: the candidate may not be delivered yet.
        case hold
        /// The timeout passed just now: count and report the stall, then deliver.
        case excuseNow
        /// Excused earlier: deliver (already counted).
        case excused
    }

    /// The channel's mark holds back `candidate` at time `now`: the verdict, and
    /// the state advanced.
    public mutating func holdsBack(_ candidate: UInt64, now: UInt64, timeout: UInt64) -> Verdict {
        switch self {
        case .clear:
            self = .blocking(since: now, holding: candidate)
            return timeout == 0 ? excuse(holding: candidate) : .hold
        case .blocking(let since, let holding):
            let held = max(holding, candidate)
            if now &- since >= timeout { return excuse(holding: held) }
            self = .blocking(since: since, holding: held)
            return .hold
        case .excused:
            return .excused
        }
    }

    private mutating func excuse(holding: UInt64) -> Verdict {
        self = .excused(holding: holding)
        return .excuseNow
    }

    /// Whether nothing is held back (the state of every channel of an honest bus).
    @inlinable @inline(__always)
    public var isClear: Bool {
        if case .clear = self { return true }
        return false
    }

    /// A descriptor with `ticket` was taken from the channel (delivered or dropped).
    @inlinable
    public mutating func took(_ ticket: UInt64) {
        switch self {
        case .clear: return
        case .blocking(_, let holding), .excused(let holding):
            if ticket > holding { self = .clear }
        }
    }

    /// Whether the channel is excused (its mark is ignored).
    public var isExcused: Bool {
        if case .excused = self { return true }
        return false
    }
}
