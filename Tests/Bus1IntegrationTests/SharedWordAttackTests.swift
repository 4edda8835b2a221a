import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Glibc
import Testing

/// A hostile peer connects honestly, then writes the shared words it may write:
/// the bus clock, its own channel's staging mark, its completion ring. Honest
/// peers beside it, in their own processes, check every byte and the order of
/// what they receive. The hostile peer harms only itself: no honest channel
/// closes, no honest message is lost or held past the stall timeout, no slice
/// leaks, and each incident is counted and reported.
///
/// `BUS1_SOAK=N` runs the random versions N times longer.
@Suite("Shared-word attacks", .timeLimit(.minutes(10 * Soak.factor)))
struct SharedWordAttackTests {

    // MARK: The clock

    /// Two honest producers into one honest consumer (a merge over two channels),
    /// while a hostile peer writes the clock every `interval` µs for the whole run.
    private func clockAttack(warp: String, interval: Int, messages: Int) throws {
        let bus = try BusFixture("clock-\(warp)")
        let consumer = try bus.peer("consumer", ["name": "victim", "count": "\(2 * messages)"])
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(consumer.transcript)")
        let warper = try bus.peer("clockwarp", ["warp": warp, "interval-us": "\(interval)"])
        defer { warper.signal(SIGKILL); _ = warper.waitForExit() }
        #expect(warper.awaitLine(prefix: "WARPING", timeoutSeconds: 30) != nil, "\(warper.transcript)")
        let producers = try (0..<2).map { _ in
            try bus.peer("producer", ["name": "victim", "count": "\(messages)", "pace-us": "500"])
        }
        for producer in producers {
            #expect(producer.finish(timeoutSeconds: 120) == .exited(0), "\(producer.transcript)")
            #expect(!producer.lines.contains { $0.contains("reason=protocol violation") }, "\(producer.transcript)")
        }
        #expect(consumer.finish(timeoutSeconds: 120) == .exited(0), "\(consumer.transcript)")
        #expect(consumer.lines.contains { $0.hasPrefix("OK received=\(2 * messages)") }, "\(consumer.transcript)")
        // Only the ends of the run close channels (a producer leaves): never a violation.
        #expect(!consumer.lines.contains { $0.hasPrefix("VIOLATION") || $0.contains("reason=protocol violation") }, "\(consumer.transcript)")
        #expect(bus.coordinator.violationsReported == 0)
        // Reported by each producer: both sent while the clock was being warped.
        for producer in producers {
            #expect(producer.lines.contains { $0.hasPrefix("CLOCK-ANOMALY") }, "\(producer.transcript)")
        }
    }

    @Test("A rewound clock: no honest channel closed, no message lost, the rewind reported")
    func clockRewind() throws {
        try clockAttack(warp: "rewind", interval: 20_000, messages: 1500)
    }

    @Test("A clock jumped to 2^63 or near UInt64.max: nothing wraps, traps, closes or is lost", arguments: ["jump", "near-max"])
    func clockJump(warp: String) throws {
        try clockAttack(warp: warp, interval: 50_000, messages: 1500)
    }

    @Test("Random clock warps under load (BUS1_SOAK for a long run)", arguments: Array(1...Soak.factor))
    func randomClockWarps(round: Int) throws {
        var random = SplitMix64(state: UInt64(round) &* 7919)
        let warps = ["rewind", "jump", "near-max"]
        try clockAttack(warp: warps[Int(random.next() % 3)], interval: 200 + Int(random.next() % 20_000),
                        messages: 1000 * Soak.factor)
    }

    // MARK: The staging mark

    @Test("A staging mark cycled for 5 s holds honest delivery back at most the stall timeout (+ scheduling)")
    func cycledStagingMark() throws {
        let stallMilliseconds = 250
        let bus = try BusFixture("staller")
        let messages = 2500
        // The staller's one honest message, then the honest producer's.
        let consumer = try bus.peer("consumer", ["name": "victim", "count": "\(messages + 1)", "stall-ms": "\(stallMilliseconds)"])
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(consumer.transcript)")
        let staller = try bus.peer("staller", ["name": "victim", "seconds": "5"])
        #expect(staller.awaitLine(prefix: "STAGING", timeoutSeconds: 30) != nil, "\(staller.transcript)")
        // The stall starts once honest traffic flows, so the consumer sees it as a gap.
        let producer = try bus.peer("producer", ["name": "victim", "count": "\(messages)", "pace-us": "2000", "progress": "100"])
        #expect(producer.awaitLine(prefix: "PROGRESS", timeoutSeconds: 60) != nil, "\(producer.transcript)")
        staller.signal(SIGUSR1)
        #expect(staller.awaitLine(prefix: "CYCLING", timeoutSeconds: 30) != nil, "\(staller.transcript)")
        #expect(producer.finish(timeoutSeconds: 120) == .exited(0), "\(producer.transcript)")
        #expect(consumer.finish(timeoutSeconds: 120) == .exited(0), "\(consumer.transcript)")
        #expect(staller.finish(timeoutSeconds: 60) == .exited(0), "\(staller.transcript)")
        let gapLine = try #require(consumer.lines.first { $0.hasPrefix("MAXGAP") }, "\(consumer.transcript)")
        // Generous: the timeout, plus a park slice and a loaded 2-vCPU machine's scheduling.
        #expect(numberField(gapLine, "ms").map { Int($0) } ?? .max < stallMilliseconds + 2000, "\(consumer.transcript)")
        #expect(numberField(gapLine, "stalls") ?? 0 >= 1, "\(consumer.transcript)")
        #expect(consumer.lines.contains { $0.hasPrefix("ORDERING-STALL") }, "\(consumer.transcript)")
        #expect(bus.coordinator.orderingStalls >= 1)
        #expect(bus.coordinator.violationsReported == 0)
    }

    // MARK: The completion ring

    /// A hostile receiver (rings of `ring` entries) corrupts its completion ring
    /// towards an honest sender holding `count` slices on it; the sender goes on
    /// sending until it runs out of credit and finds the violation: it closes the
    /// channel and has every slice back (allocator and ledger: shm-inspect verify
    /// is clean while it lives), the one it was sending included.
    private func corruptedCompletions(attack: String, ring: Int, count: Int, release: Int, violation: Int) throws {
        let bus = try BusFixture("completions-\(attack)")
        let sink = try bus.peer("corruptsink", ["name": "sink", "release": "\(release)", "attack": attack, "ring": "\(ring)"])
        defer { sink.signal(SIGKILL); _ = sink.waitForExit() }
        #expect(sink.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(sink.transcript)")
        let sender = try bus.peer("victimsender", ["name": "sink", "count": "\(count)"])
        defer { sender.signal(SIGKILL); _ = sender.waitForExit() }
        #expect(sender.awaitLine(prefix: "SENT", timeoutSeconds: 30) != nil, "\(sender.transcript)")
        sink.signal(SIGUSR1)
        #expect(sink.awaitLine(prefix: "CORRUPTED", timeoutSeconds: 30) != nil, "\(sink.transcript)")
        sender.signal(SIGUSR1)
        let reclaimed = sender.awaitLine(prefix: "RECLAIMED", timeoutSeconds: 60)
        #expect(reclaimed?.hasPrefix("RECLAIMED slices=0 bytes=0 violations=1") == true, "\(sender.transcript)")
        #expect(sender.lines.contains("VIOLATION kind=\(violation)"), "\(sender.transcript)")
        let inspector = Inspector(build: .debug, address: bus.address)
        let (status, output) = try inspector.run(["verify"])
        #expect(status == .exited(0) && output.contains("no violations"), "\(output)")
    }

    @Test("A corrupted completion ring: the honest sender gets every slice back, verify is clean", arguments: [
        ("foreign", 7), ("double", 7), ("tail-ahead", 3), ("tail-back", 3),
    ])
    func corruptedCompletionRing(attack: String, violation: Int) throws {
        try corruptedCompletions(attack: attack, ring: 16, count: 16, release: 5, violation: violation)
    }

    @Test("Random completion-ring corruption (BUS1_SOAK for a long run)", arguments: Array(1...(4 * Soak.factor)))
    func randomCorruptedCompletions(seed: Int) throws {
        var random = SplitMix64(state: UInt64(seed))
        let attacks = [("foreign", 7), ("double", 7), ("tail-ahead", 3), ("tail-back", 3)]
        let (attack, violation) = attacks[Int(random.next() % 4)]
        let ring = 4 << Int(random.next() % 7)  // 4 ... 256
        let count = 1 + Int(random.next() % UInt64(ring))
        try corruptedCompletions(attack: attack, ring: ring, count: count, release: 1 + Int(random.next() % UInt64(count)),
                                 violation: violation)
    }
}
