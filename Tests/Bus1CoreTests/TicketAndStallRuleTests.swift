import Bus1Core
import Bus1TestSupport
import Testing

/// The ticket rule (``MonotonicTickets``) and the stall rule (``OrderingStall``)
/// as pure functions: every clock a hostile peer can produce, every mark it can cycle.
/// The time limit catches a hang, not slowness: in the full run these wait behind
/// the blocking multi-process suites for a thread of the (2-thread) pool.
@Suite("Ticket and stall rules", .timeLimit(.minutes(10)))
struct TicketAndStallRuleTests {
    /// Takes `count` tickets the way a sender does, with the clock showing
    /// `current` when staging and handing out `taken`.
    private func send(_ tickets: inout MonotonicTickets, current: UInt64, taken: UInt64, count: UInt64 = 1)
        -> (mark: UInt64, first: UInt64, anomaly: Bool) {
        let mark = tickets.mark(clock: current)
        let (first, anomaly) = tickets.issue(taken: taken, count: count, mark: mark)
        return (mark, first, anomaly)
    }

    @Test("An honest clock passes through unchanged")
    func honestClock() {
        var tickets = MonotonicTickets()
        var clock: UInt64 = 1
        for count: UInt64 in [1, 1, 5, 1, 3] {
            let sent = send(&tickets, current: clock, taken: clock, count: count)
            #expect(sent.first == clock && !sent.anomaly && sent.mark <= sent.first)
            clock += count
            #expect(tickets.last == clock - 1)
        }
        #expect(tickets.anomalies == 0)
    }

    @Test("A rewound clock: tickets keep rising, one incident until the clock catches up")
    func rewoundClock() {
        var tickets = MonotonicTickets()
        _ = send(&tickets, current: 1000, taken: 1000)
        let first = send(&tickets, current: 5, taken: 5)
        #expect(first.first == 1001 && first.mark == 1001 && first.anomaly)
        let second = send(&tickets, current: 6, taken: 6)
        #expect(second.first == 1002 && !second.anomaly, "the same incident")
        let caughtUp = send(&tickets, current: 2000, taken: 2000)
        #expect(caughtUp.first == 2000 && !caughtUp.anomaly)
        let again = send(&tickets, current: 3, taken: 3)
        #expect(again.first == 2001 && again.anomaly, "a new incident")
        #expect(tickets.anomalies == 2)
    }

    @Test("A clock rewound between staging and taking: the ticket still honours the mark")
    func rewoundAfterStaging() {
        var tickets = MonotonicTickets()
        let sent = send(&tickets, current: 500, taken: 7)
        #expect(sent.first == 500 && sent.mark == 500 && sent.anomaly)
    }

    @Test("A forward jump past honest reach is one anomaly; ordinary progress is none")
    func forwardJump() {
        var tickets = MonotonicTickets()
        #expect(!send(&tickets, current: 5, taken: 5).anomaly)
        #expect(!send(&tickets, current: 1 << 40, taken: 1 << 40).anomaly)
        #expect(send(&tickets, current: 1 << 63, taken: 1 << 63).anomaly)
        #expect(!send(&tickets, current: (1 << 63) + 1, taken: (1 << 63) + 1).anomaly)
        #expect(tickets.anomalies == 1)
    }

    @Test("A clock jumped near UInt64.max wraps nothing and traps nowhere", arguments: [UInt64(1) << 63, .max - 3, .max, 0])
    func jumpedClock(jump: UInt64) {
        var tickets = MonotonicTickets()
        _ = send(&tickets, current: 100, taken: 100)
        var clock = jump
        var previous: UInt64 = 0
        for count: UInt64 in [1, 4, 1, 1, 7, 1, 2, 1] {
            let sent = send(&tickets, current: clock, taken: clock, count: count)
            #expect(sent.first >= 1 && sent.first >= previous && sent.first >= sent.mark && sent.mark != 0)
            var ticket = sent.first
            for _ in 1..<count { ticket = MonotonicTickets.ticket(after: ticket) }
            #expect(ticket == tickets.last && ticket >= sent.first)
            previous = tickets.last
            clock = clock &+ count  // the shared word wraps; the tickets must not
        }
    }

    @Test("Random clocks: tickets never fall, never 0, never below their mark")
    func randomClocks() {
        var random = SplitMix64(state: 12)
        for _ in 0..<200 {
            var tickets = MonotonicTickets()
            var previous: UInt64 = 0
            for _ in 0..<200 {
                let pick = random.next()
                let clock: UInt64 = switch pick % 4 {
                case 0: pick >> 2
                case 1: .max - pick % 64
                case 2: pick % 64
                default: previous &+ pick % 8
                }
                let count = 1 + random.next() % 8
                let sent = send(&tickets, current: clock, taken: clock &+ random.next() % 3, count: count)
                #expect(sent.first >= max(1, previous) && sent.first >= sent.mark && sent.mark >= 1)
                if previous < .max { #expect(sent.first > previous) }
                previous = tickets.last
            }
        }
    }

    // MARK: Stall rule

    private let timeout: UInt64 = 250

    @Test("The timer starts at the first block and a changing mark cannot restart it")
    func timerSurvivesMarkCycling() {
        var stall = OrderingStall.clear
        #expect(stall.holdsBack(100, now: 0, timeout: timeout) == .hold)
        // The staller cycles its mark (the merge sees it block, not block, block...):
        // nothing but a take touches the state, so only time matters.
        for now in stride(from: UInt64(10), to: 250, by: 10) {
            #expect(stall.holdsBack(100, now: now, timeout: timeout) == .hold)
        }
        #expect(stall.holdsBack(100, now: 250, timeout: timeout) == .excuseNow)
        #expect(stall.holdsBack(200, now: 260, timeout: timeout) == .excused)
        #expect(stall.holdsBack(300, now: 100_000, timeout: timeout) == .excused, "counted once")
    }

    @Test("Junk at or below what was held back restarts nothing; a ticket above it does")
    func onlyProgressClears() {
        var stall = OrderingStall.clear
        _ = stall.holdsBack(100, now: 0, timeout: timeout)
        _ = stall.holdsBack(150, now: 5, timeout: timeout)
        stall.took(40)
        stall.took(150)
        #expect(stall == .blocking(since: 0, holding: 150))
        #expect(stall.holdsBack(120, now: 250, timeout: timeout) == .excuseNow)
        stall.took(150)
        #expect(stall.isExcused, "excused until it publishes above what it held back")
        stall.took(151)
        #expect(stall == .clear)
        #expect(stall.holdsBack(300, now: 300, timeout: timeout) == .hold, "a new episode, a new timer")
    }

    @Test("An honest sender: blocks for an instant, publishes above, is clear again")
    func honestSender() {
        var stall = OrderingStall.clear
        #expect(stall.holdsBack(100, now: 0, timeout: timeout) == .hold)
        stall.took(101)
        #expect(stall == .clear)
    }

    @Test("A zero timeout excuses at once")
    func zeroTimeout() {
        var stall = OrderingStall.clear
        #expect(stall.holdsBack(9, now: 0, timeout: 0) == .excuseNow)
        #expect(stall.isExcused)
    }
}
