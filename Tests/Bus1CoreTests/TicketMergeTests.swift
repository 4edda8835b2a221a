import Bus1Core
import Bus1TestSupport
import CBus1Wire
import Glibc
import Testing

/// The ticket merge (``TicketMerge``) without processes: fixed cases, then a
/// property over generated interleavings of senders running the send protocol
/// step by step between every read the merge makes. The same property run on
/// two deliberately broken merges must fail, or it proves nothing.
@Suite("Ticket merge", .timeLimit(.minutes(10)))
struct TicketMergeTests {
    /// Seeds per property run: 300, times `BUS1_SOAK` for the long version.
    static let seeds = UInt64(300 * max(1, getenv("BUS1_SOAK").flatMap { Int(String(cString: $0)) } ?? 1))

    // MARK: Fixed cases

    @Test("Empty rings: wait; one head: deliver it")
    func emptyAndSingle() {
        let world = SimulatedBus(seed: 1, senders: 0)
        let a = world.addLink(), b = world.addLink()
        #expect(TicketMerge.next([a, b], now: { 0 }, stallTimeout: 10) == .wait)
        b.ring.append(descriptor(ticket: 4))
        #expect(TicketMerge.next([a, b], now: { 0 }, stallTimeout: 10) == .deliver(link: 1, descriptor(ticket: 4)))
    }

    @Test("The lowest head wins; a staged sender at or below it holds it back")
    func stagedSenderHolds() {
        let world = SimulatedBus(seed: 1, senders: 0)
        let a = world.addLink(), b = world.addLink()
        a.ring.append(descriptor(ticket: 9))
        b.mark = 9
        #expect(TicketMerge.next([a, b], now: { 0 }, stallTimeout: 10) == .wait)
        b.mark = 10  // a mark above the candidate cannot go below it
        #expect(TicketMerge.next([a, b], now: { 0 }, stallTimeout: 10) == .deliver(link: 0, descriptor(ticket: 9)))
    }

    @Test("A sender staged past the timeout is reported once, then delivery goes on")
    func stallExcused() {
        let world = SimulatedBus(seed: 1, senders: 0)
        let a = world.addLink(), b = world.addLink()
        a.ring.append(descriptor(ticket: 9))
        b.mark = 3
        #expect(TicketMerge.next([a, b], now: { 100 }, stallTimeout: 50) == .wait)
        #expect(TicketMerge.next([a, b], now: { 149 }, stallTimeout: 50) == .wait)
        #expect(TicketMerge.next([a, b], now: { 150 }, stallTimeout: 50) == .stalled(link: 1))
        #expect(TicketMerge.next([a, b], now: { 151 }, stallTimeout: 50) == .deliver(link: 0, descriptor(ticket: 9)))
    }

    @Test("A ring that lies is named, with its violation")
    func violation() {
        let world = SimulatedBus(seed: 1, senders: 0)
        let a = world.addLink(), b = world.addLink()
        a.ring.append(descriptor(ticket: 9))
        b.lie = .badRingIndex
        #expect(TicketMerge.next([a, b], now: { 0 }, stallTimeout: 10) == .violation(link: 1, .badRingIndex))
    }

    // MARK: The property

    /// Every message is delivered, in strictly rising ticket order, whatever the
    /// interleaving of senders and the merge's reads.
    @Test("Generated interleavings: every message, in ticket order", arguments: [2, 3, 5])
    func interleavings(senders: Int) {
        for seed in 1...Self.seeds {
            let outcome = run(seed: seed, senders: senders, merge: Self.realMerge)
            #expect(outcome.failure == nil, "seed \(seed): \(outcome.failure ?? "")")
            if outcome.failure != nil { return }
        }
    }

    @Test("The property catches a merge without pass 2, and one that reads the head before the mark")
    func brokenMergesFail() {
        for (name, merge) in [("no pass 2", Self.pass1Only), ("head before mark", Self.headBeforeMark)] {
            let failing = (1...UInt64(300)).filter { run(seed: $0, senders: 3, merge: merge).failure != nil }
            #expect(!failing.isEmpty, "the broken merge '\(name)' passed every interleaving")
        }
    }

    typealias Merge = @Sendable ([SimulatedLink]) -> TicketMerge.Step

    static let realMerge: Merge = { TicketMerge.next($0, now: { 0 }, stallTimeout: .max) }

    /// Broken: delivers the lowest visible head without asking staged senders.
    static let pass1Only: Merge = { TicketMerge.lowestHead($0) }

    /// Broken: pass 2 reads a link's head before its mark, so a sender that
    /// publishes below the candidate and unstages in between goes unseen.
    static let headBeforeMark: Merge = { links in
        guard case .deliver(let best, let head) = TicketMerge.lowestHead(links) else { return .wait }
        for (i, link) in links.enumerated() where i != best {
            if let other = link.visibleHead(), other.ticket < head.ticket { return .wait }
            let mark = link.stagingMark()
            if mark != 0, mark <= head.ticket { return .wait }
        }
        return .deliver(link: best, head)
    }

    /// Runs `senders` senders of 20 messages each against `merge`; the first
    /// broken promise, if any.
    func run(seed: UInt64, senders: Int, merge: Merge) -> (delivered: Int, failure: String?) {
        let world = SimulatedBus(seed: seed, senders: senders, messagesEach: 20)
        var last: UInt64 = 0
        var delivered = 0
        var idle = 0
        while delivered < senders * 20 {
            switch merge(world.links) {
            case .deliver(let link, let head):
                if head.ticket <= last { return (delivered, "ticket \(head.ticket) delivered after \(last)") }
                last = head.ticket
                world.links[link].take()
                delivered += 1
                idle = 0
            case .wait:
                idle += 1
                if !world.step() && idle > 2 { return (delivered, "stuck: nothing to deliver, nobody sending") }
            case .stalled, .violation:
                return (delivered, "unexpected \(merge(world.links))")
            }
        }
        return (delivered, nil)
    }

    func descriptor(ticket: UInt64) -> bus1_descriptor {
        bus1_descriptor(ticket: ticket, node: 1, offset: 0, length: 0, flags: 0)
    }
}

/// Senders, their rings and the bus clock in one sequentially consistent memory,
/// driven by a seeded generator: before each read the merge makes, a random
/// number of sender steps (possibly none) runs.
final class SimulatedBus {
    var rng: SplitMix64
    var clock: UInt64 = 1
    var links: [SimulatedLink] = []
    var senders: [SimulatedSender] = []

    init(seed: UInt64, senders count: Int, messagesEach: Int = 0) {
        rng = SplitMix64(state: seed)
        for _ in 0..<count { senders.append(SimulatedSender(link: addLink(), remaining: messagesEach)) }
    }

    func addLink() -> SimulatedLink {
        let link = SimulatedLink(world: self)
        links.append(link)
        return link
    }

    /// Between two reads: nothing half the time, else up to three sender steps.
    func interleave() {
        guard rng.next() & 1 == 0 else { return }
        for _ in 0..<(1 + rng.next() % 3) { step() }
    }

    /// One step of a random sender that has work; false if none has.
    @discardableResult
    func step() -> Bool {
        let busy = senders.indices.filter { senders[$0].remaining > 0 }
        guard !busy.isEmpty else { return false }
        senders[busy[Int(rng.next() % UInt64(busy.count))]].step(clock: &clock)
        return true
    }
}

/// One sender running the send protocol a step at a time: stage, take a ticket,
/// publish, unstage (the fence is the memory being sequentially consistent).
struct SimulatedSender {
    let link: SimulatedLink
    var remaining: Int
    var tickets = MonotonicTickets()
    var phase = 0
    var mark: UInt64 = 0
    var ticket: UInt64 = 0

    mutating func step(clock: inout UInt64) {
        switch phase {
        case 0:
            mark = tickets.mark(clock: clock)
            link.mark = mark
        case 1:
            ticket = tickets.issue(taken: clock, mark: mark).first
            clock += 1
        case 2:
            link.ring.append(bus1_descriptor(ticket: ticket, node: 1, offset: 0, length: 0, flags: 0))
        default:
            link.mark = 0
            remaining -= 1
        }
        phase = (phase + 1) % 4
    }
}

/// One inbound ring as the merge reads it; every read lets the senders run first.
final class SimulatedLink: MergeLink {
    unowned let world: SimulatedBus
    var ring: [bus1_descriptor] = []
    var head = 0
    var mark: UInt64 = 0
    var stall = OrderingStall.clear
    /// A violation every peek reports (a lying ring).
    var lie: ChannelViolation?

    init(world: SimulatedBus) { self.world = world }

    func peekHead() throws(ChannelViolation) -> bus1_descriptor? {
        world.interleave()
        if let lie { throw lie }
        return head < ring.count ? ring[head] : nil
    }

    /// ``peekHead()`` for an honest ring (the broken merge's own read).
    func visibleHead() -> bus1_descriptor? {
        world.interleave()
        return head < ring.count ? ring[head] : nil
    }

    func stagingMark() -> UInt64 {
        world.interleave()
        return mark
    }

    func take() {
        stall.took(ring[head].ticket)
        head += 1
    }
}

// Test-only: compare the merge's steps (the library does not make C structs Equatable).
extension bus1_descriptor: @retroactive Equatable {
    public static func == (a: bus1_descriptor, b: bus1_descriptor) -> Bool {
        a.ticket == b.ticket && a.node == b.node && a.offset == b.offset && a.length == b.length && a.flags == b.flags
    }
}

extension TicketMerge.Step: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case (.wait, .wait): true
        case let (.deliver(l1, d1), .deliver(l2, d2)): l1 == l2 && d1 == d2
        case let (.stalled(l1), .stalled(l2)): l1 == l2
        case let (.violation(l1, v1), .violation(l2, v2)): l1 == l2 && v1 == v2
        default: false
        }
    }
}
