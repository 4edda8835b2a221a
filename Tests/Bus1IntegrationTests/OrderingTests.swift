import Bus1
import Bus1Coordinator
import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// Global causal order across real processes, proven by the checker.
@Suite("Ordering", .timeLimit(.minutes(15 * Soak.factor)))
struct OrderingTests {
    /// 4 senders, 4 receivers, random unicasts and multicasts, a pipe side channel:
    /// no FIFO, common-order or causality violation, in every wait mode.
    @Test("The checker finds no violation with global ordering", arguments: ["spin", "park", "busy"])
    func globalOrderHolds(mode: String) throws { try OrderCheckChecks.globalOrderHolds(.debug, mode: mode) }

    /// The same workload on a FIFO-only bus produces violations, and the checker
    /// reports them and fails: it can tell.
    @Test("With ordering off, the checker reports violations")
    func checkerCatchesViolations() throws {
        let check = try ChildProcess("bus1-order-check", ["--messages", "20000", "--ordering", "fifo", "--seed", "7"], mergeStandardError: true)
        #expect(check.finish(timeoutSeconds: 600) == .exited(1), "\(check.transcript)")
        let line = try #require(check.lines.first { $0.hasPrefix("  violations:") }, "\(check.transcript)")
        #expect(line != "  violations: fifo 0, common-order 0, causality 0", "\(check.transcript)")
    }

    /// A sender frozen mid-send (staging mark set, SIGSTOP) holds delivery back
    /// only until the stall timeout; then the receiver moves on and reports it.
    @Test("A sender stopped mid-send does not stall its receiver forever")
    func stalledSender() throws {
        let bus = try BusFixture("stall")
        let consumer = try bus.peer("consumer", ["name": "st", "count": "201", "stall-ms": "100"])
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil)
        let stalled = try bus.peer("stalled", ["name": "st"])
        #expect(stalled.awaitLine(prefix: "STAGED", timeoutSeconds: 30) != nil, "\(stalled.transcript)")
        let producer = try bus.peer("producer", ["name": "st", "count": "200"])
        #expect(producer.finish() == .exited(0), "\(producer.transcript)")
        #expect(consumer.finish(timeoutSeconds: 60) == .exited(0), "\(consumer.transcript)")
        #expect(consumer.lines.contains { $0.hasPrefix("ORDERING-STALL") }, "\(consumer.transcript)")
        #expect(bus.coordinator.orderingStalls >= 1)
        stalled.signal(SIGKILL)
        _ = stalled.waitForExit()
    }
}

/// The `bus1-order-check` check run against each build: ``OrderingTests`` runs
/// the debug binary, ``ReleaseToolTests`` the release one.
enum OrderCheckChecks {
    /// 4 senders, 4 receivers, random unicasts and multicasts, a pipe side channel,
    /// in `mode`: no FIFO, common-order or causality violation.
    static func globalOrderHolds(_ build: ToolBuild, mode: String) throws {
        let messages = (mode == "busy" ? 3000 : 10_000) * Soak.factor
        let check = try ChildProcess("bus1-order-check", ["--messages", "\(messages)", "--mode", mode, "--seed", "\(mode.count)"],
                                     build: build, mergeStandardError: true)
        #expect(check.finish(timeoutSeconds: 600) == .exited(0), "\(check.transcript)")
        #expect(check.lines.contains("  violations: fifo 0, common-order 0, causality 0"), "\(check.transcript)")
    }
}

/// Multicast all-or-nothing, with peers of this process (each a separate peer
/// with its own pool and channels on a real coordinator).
@Suite("Multicast", .timeLimit(.minutes(10)))
struct MulticastTests {

    @Test("A full ring at one destination fails the whole multicast; nobody receives it")
    func fullRingFailsWhole() throws {
        let bus = try BusFixture("mcast")
        let stuck = try bus.connect(ringCapacity: 4)
        let healthy = try bus.connect(ringCapacity: 64)
        let sender = try bus.connect()
        try stuck.publish(try stuck.createNode(), as: "stuck")
        try healthy.publish(try healthy.createNode(), as: "healthy")
        let destinations = [try sender.lookup("healthy"), try sender.lookup("stuck")]

        var sent = 0
        while true {
            var loan = try sender.loan(8)
            loan.count = 8
            loan.storeBytes(of: UInt64(sent), as: UInt64.self)
            do {
                try sender.send(loan, to: destinations)
                sent += 1
            } catch .wouldBlock(.ringFull(let handle)) {
                #expect(handle == destinations[1], "the error names the full destination")
                break
            }
            if sent > 100 { Issue.record("the stuck ring never filled"); return }
        }
        #expect(sent == 4)
        // The healthy receiver got exactly the multicasts that went everywhere.
        var seen: [UInt64] = []
        while let message = try healthy.tryReceive() { seen.append(message.payload.bytes.unsafeLoad(as: UInt64.self)) }
        #expect(seen == [0, 1, 2, 3])
        // The slices come back only when the last receiver releases them.
        try sender.reclaimCompleted()
        #expect(sender.currentStatistics.slicesInUse == 4)
        var stuckSeen = 0
        while let message = try stuck.tryReceive() { _ = message; stuckSeen += 1 }
        #expect(stuckSeen == 4)
        try sender.reclaimCompleted()
        #expect(sender.currentStatistics.slicesInUse == 0)
    }

    @Test("Multicast to 256 destinations, and to two nodes of one receiver")
    func wideMulticast() throws {
        let bus = try BusFixture("wide")
        let receivers = try (0..<8).map { _ in try bus.connect() }
        var destinations: [Handle] = []
        let sender = try bus.connect()
        for (i, receiver) in receivers.enumerated() {
            for n in 0..<32 {
                try receiver.publish(try receiver.createNode(), as: "wide.\(i).\(n)")
                destinations.append(try sender.lookup("wide.\(i).\(n)"))
            }
        }
        #expect(destinations.count == 256)
        var loan = try sender.loan(16)
        loan.count = 16
        try sender.send(loan, to: destinations, wait: .park)
        for receiver in receivers {
            var count = 0
            var ticket: UInt64?
            while let message = try receiver.tryReceive() {
                count += 1
                if let ticket { #expect(message.ticket == ticket, "one multicast, one ticket") }
                ticket = message.ticket
            }
            #expect(count == 32)
            _ = ticket
        }
        try sender.reclaimCompleted()
        #expect(sender.currentStatistics.slicesInUse == 0)
        do {
            try sender.send(try sender.loan(1), to: destinations + [destinations[0]])
            Issue.record("a multicast to 257 destinations was sent")
        } catch {
            #expect(error == .badDestinationCount(257, maximum: 256))
        }
    }
}

/// `sendBatch`: all-or-nothing, consecutive tickets, typed refusals.
@Suite("Batches", .timeLimit(.minutes(10)))
struct BatchTests {

    @Test("A batch arrives in order with consecutive tickets; oversize, full-ring and full-pool batches send nothing")
    func batches() throws {
        let bus = try BusFixture("batch")
        let receiver = try bus.connect(ringCapacity: 8)
        try receiver.publish(try receiver.createNode(), as: "batch.rx")
        let sender = try bus.connect(poolSize: 4096 + (64 << 10))
        let handle = try sender.lookup("batch.rx")

        try sender.sendBatch(to: handle, count: 5, sliceSize: 8) { index, slice in
            slice.storeBytes(of: UInt64(index), as: UInt64.self)
            return 8
        }
        var tickets: [UInt64] = []
        for index in 0..<5 {
            let message = try receiver.receive(mode: .park, timeout: .seconds(5))
            #expect(message.payload.bytes.unsafeLoad(as: UInt64.self) == UInt64(index))
            tickets.append(message.ticket)
        }
        #expect(tickets == Array(tickets[0]..<(tickets[0] + 5)), "one fetch_add, consecutive tickets")

        #expect(throws: Bus1Error.batchTooLarge(9, maximum: 8)) {
            try sender.sendBatch(to: handle, count: 9, sliceSize: 8) { _, _ in 8 }
        }
        try sender.sendBatch(to: handle, count: 8, sliceSize: 8) { _, _ in 8 }  // the ring is full now (receiver holds them)
        #expect(throws: Bus1Error.wouldBlock(.ringFull(handle))) {
            try sender.sendBatch(to: handle, count: 1, sliceSize: 8) { _, _ in 8 }
        }
        while let message = try receiver.tryReceive() { _ = message }
        try sender.reclaimCompleted()
        #expect(sender.currentStatistics.slicesInUse == 0)

        // 8 slices of 16 KiB do not fit a 64 KiB pool: refused whole, nothing leaked.
        #expect(throws: Bus1Error.wouldBlock(.poolExhausted(requested: 16 << 10))) {
            try sender.sendBatch(to: handle, count: 8, sliceSize: 16 << 10) { _, _ in 16 << 10 }
        }
        #expect(sender.currentStatistics.slicesInUse == 0)
        #expect(try receiver.tryReceive() == nil)
    }
}
