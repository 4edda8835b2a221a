import CBus1Wire

/// What the ticket merge reads of one inbound link, in the order the protocol
/// needs: its head (validated by the ring: indices, ticket, flags) and the
/// sender's staging mark; and the link's stall state, which the merge keeps.
public protocol MergeLink: AnyObject {
    /// The next descriptor, without taking it; nil if the ring is empty.
    func peekHead() throws(ChannelViolation) -> bus1_descriptor?
    /// The sender's staging mark (0: not sending).
    func stagingMark() -> UInt64
    /// How long this link's mark has held the merge back (`OrderingStall`).
    var stall: OrderingStall { get set }
}

/// The ticket merge of a globally ordered bus, as a pure rule over what it reads
/// of the links (`MergeLink`): which descriptor a receiver delivers next, or why
/// it must wait. No peer, no syscalls: unit-tested over generated interleavings.
///
/// **Pass 1** peeks every link and picks the lowest ticket `t`. **Pass 2** then
/// reads, for every other link, its staging mark and only then its head again
/// (``judge(_:candidate:now:stallTimeout:)``). A sender that took a ticket below
/// `t` stored its mark before `t` existed (its ticket's `fetch_add` releases it:
/// the argument is `Publisher`'s), so after we
/// saw `t` we see that mark, or the publish it guarded. A link with nothing
/// waiting holds `t` back while its mark is non-zero and at most `t`, until the
/// stall rule excuses it (`OrderingStall`).
public enum TicketMerge {
    /// What the merge says.
    public enum Step {
        /// Deliver this head of link `link`.
        case deliver(link: Int, bus1_descriptor)
        /// Nothing to deliver now: every ring is empty, or a staged sender may
        /// still publish below the lowest head.
        case wait
        /// Link `link` held delivery back past the stall timeout just now: count and
        /// report the stall, then merge again (its mark is ignored from now on).
        case stalled(link: Int)
        /// Link `link` broke the protocol: close it, then merge again.
        case violation(link: Int, ChannelViolation)
    }

    /// Pass 2 for one other link against candidate ticket `candidate`.
    public enum Judgement: Equatable {
        /// It cannot produce a ticket below the candidate.
        case clear
        /// It published a lower ticket meanwhile: merge again.
        case lower
        /// Its mark holds the candidate back.
        case hold
        /// It held the candidate back past the timeout, just now.
        case stalled
        case violation(ChannelViolation)
    }

    /// The next step over `links` (at least one). `now` is read only when a mark
    /// holds the candidate back.
    @inlinable
    public static func next<Links: RandomAccessCollection>(
        _ links: Links, now: () -> UInt64, stallTimeout: UInt64
    ) -> Step where Links.Element: MergeLink, Links.Index == Int {
        restart: while true {
            let best: Int
            let head: bus1_descriptor
            switch lowestHead(links) {
            case .deliver(let link, let descriptor): (best, head) = (link, descriptor)
            case let other: return other
            }
            for i in links.indices where i != best {
                switch judge(links[i], candidate: head.ticket, now: now, stallTimeout: stallTimeout) {
                case .clear: continue
                case .lower: continue restart
                case .hold: return .wait
                case .stalled: return .stalled(link: i)
                case .violation(let violation): return .violation(link: i, violation)
                }
            }
            return .deliver(link: best, head)
        }
    }

    /// Pass 1: the link whose head has the lowest ticket (the first of equals),
    /// `.wait` if every ring is empty.
    @inlinable
    public static func lowestHead<Links: RandomAccessCollection>(_ links: Links) -> Step
    where Links.Element: MergeLink, Links.Index == Int {
        var best = -1
        var bestHead = bus1_descriptor()
        for i in links.indices {
            do {
                if let head = try links[i].peekHead(), best < 0 || head.ticket < bestHead.ticket {
                    best = i
                    bestHead = head
                }
            } catch {
                return .violation(link: i, error)
            }
        }
        return best < 0 ? .wait : .deliver(link: best, bestHead)
    }

    /// Pass 2 for `link`: its mark first, then its head (the order is the
    /// protocol: see the type's comment).
    @inlinable
    public static func judge<Link: MergeLink>(_ link: Link, candidate: UInt64, now: () -> UInt64, stallTimeout: UInt64) -> Judgement {
        let mark = link.stagingMark()  // after the candidate's tail, before this tail
        let head: bus1_descriptor?
        do { head = try link.peekHead() } catch { return .violation(error) }
        if let head { return head.ticket < candidate ? .lower : .clear }
        guard mark != 0, mark <= candidate else { return .clear }
        switch link.stall.holdsBack(candidate, now: now(), timeout: stallTimeout) {
        case .hold: return .hold
        case .excused: return .clear
        case .excuseNow: return .stalled
        }
    }
}
