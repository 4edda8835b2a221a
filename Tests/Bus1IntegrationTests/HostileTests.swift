import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Glibc
import Testing

/// Peers that break the rules, as real processes against real receivers and a
/// real coordinator: each gets a typed error, and nobody else is affected.
@Suite("Hostile peers", .timeLimit(.minutes(10)))
struct HostileTests {
    /// The sender (producer) checks, after the receiver's attempts, that its byte
    /// is unchanged; the receiver prints DENIED for each refused attempt.
    @Test("A receiver cannot write the sender's pool: mprotect, writable re-open, shared writable map, pwrite")
    func receiverCannotWritePool() throws {
        let bus = try BusFixture("intruder")
        let intruder = try bus.peer("intruder", ["name": "victim"])
        #expect(intruder.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(intruder.transcript)")
        let producer = try bus.peer("producer", ["name": "victim", "count": "1"])
        #expect(intruder.finish() == .exited(0), "\(intruder.transcript)")
        #expect(intruder.lines.contains { $0.hasPrefix("DENIED mprotect") }, "\(intruder.transcript)")
        #expect(intruder.lines.contains { $0.hasPrefix("DENIED reopen-for-write") || $0.hasPrefix("DENIED writable-shared-map") },
                "\(intruder.transcript)")
        #expect(intruder.lines.last == "OK", "\(intruder.transcript)")
        #expect(producer.finish() == .exited(0), "\(producer.transcript)")
    }

    /// Each forged descriptor closes only the attacker's channel: the receiver
    /// reports the violation and goes on receiving from an honest producer; the
    /// attacker learns of the close with the reason.
    @Test("Forged descriptors are caught and close only the attacker's channel", arguments: [
        ("bad-offset", 4), ("huge-length", 4), ("unknown-node", 5), ("ticket-backwards", 6), ("lying-attachment", 8), ("unknown-flag", 8),
        ("unknown-segment", 4), ("segment-beyond", 4),
    ])
    func forgedDescriptors(attack: String, violation: Int) throws {
        let honest = 200
        let bus = try BusFixture("hostile")
        let consumer = try bus.peer("consumer", ["name": "target", "count": "\(honest + 2)"])  // the hostile's two honest ones too
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(consumer.transcript)")
        let hostile = try bus.peer("hostile", ["name": "target", "attack": attack])
        #expect(hostile.finish(timeoutSeconds: 60) == .exited(0), "\(hostile.transcript)")
        #expect(hostile.lines.contains { $0.hasPrefix("CLOSED reason=protocol violation") && $0.hasSuffix("slices=0") }, "\(hostile.transcript)")

        let producer = try bus.peer("producer", ["name": "target", "count": "\(honest)"])
        #expect(producer.finish() == .exited(0), "\(producer.transcript)")
        #expect(consumer.finish() == .exited(0), "\(consumer.transcript)")
        #expect(consumer.lines.contains { $0.hasPrefix("VIOLATION") && $0.hasSuffix("kind=\(violation)") }, "\(consumer.transcript)")
        #expect(bus.coordinator.violationsReported == 1)
    }

    @Test("Malformed control messages get BUS1_ERR_PROTOCOL and the coordinator keeps serving")
    func malformedControlMessages() throws {
        let bus = try BusFixture("garbage")
        let garbage = try bus.peer("garbage", [:])
        #expect(garbage.finish(timeoutSeconds: 60) == .exited(0), "\(garbage.transcript)")
        #expect(garbage.lines.filter { $0.hasPrefix("REFUSED") }.count == 9, "\(garbage.transcript)")
        #expect(bus.coordinator.protocolErrors >= 9)
        // And a normal exchange still works on the same bus.
        try bus.exchangeCheckedMessages(name: "after", count: 100)
    }

    /// SIGKILL the consumer mid-stream: the producer gets a typed channel-closed
    /// error (peer gone) with every in-flight slice already back in its pool, and
    /// the coordinator keeps serving others.
    @Test("A consumer killed mid-stream: the producer gets a typed error and its slices back")
    func killedConsumer() throws {
        let bus = try BusFixture("kill")
        let consumer = try bus.peer("consumer", ["name": "doomed", "count": "100000000"])
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil)
        let streamer = try bus.peer("streamer", ["name": "doomed"])
        #expect(streamer.awaitLine(prefix: "STREAMING", timeoutSeconds: 60) != nil, "\(streamer.transcript)")
        consumer.signal(SIGKILL)
        #expect(consumer.waitForExit() == .signaled(SIGKILL))
        #expect(streamer.finish(timeoutSeconds: 60) == .exited(0), "\(streamer.transcript)")
        #expect(streamer.lines.contains { $0.hasPrefix("CLOSED reason=the other peer is gone") && $0.hasSuffix("slices=0") },
                "\(streamer.transcript)")

        try bus.exchangeCheckedMessages(name: "survivor", count: 500)
        // The hang-ups are served asynchronously.
        #expect(waitUntil(timeoutSeconds: 10) { bus.coordinator.peerCount == 0 }, "\(bus.coordinator.peerCount) peers left")
    }
}
