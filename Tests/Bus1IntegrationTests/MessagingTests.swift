import Bus1Linux
import Testing

/// Two real processes exchanging zero-copy messages through a handle obtained by
/// name lookup, over an embedded coordinator.
@Suite("Producer and consumer processes")
struct MessagingTests {
    /// Mixed sizes 1 B ... 4 MiB; every byte and the order checked by the consumer;
    /// the producer waits until its pool is fully reclaimed.
    @Test("100,000 mixed-size messages arrive intact, in order, and every slice comes back")
    func hundredThousandMessages() throws {
        let count = 100_000
        let bus = try BusFixture("stream")
        let consumer = try bus.peer("consumer", ["name": "stream.consumer", "count": "\(count)"])
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(consumer.transcript)")
        let producer = try bus.peer("producer", ["name": "stream.consumer", "count": "\(count)"])
        #expect(producer.finish() == .exited(0), "\(producer.transcript)")
        #expect(consumer.finish() == .exited(0), "\(consumer.transcript)")
        #expect(producer.lines.contains("OK sent=\(count) reclaimed"), "\(producer.transcript)")
        #expect(consumer.lines.contains { $0.hasPrefix("OK received=\(count)") }, "\(consumer.transcript)")
    }

    /// The same exchange in every wait mode and parking backend.
    @Test("Every wait mode and park backend delivers", arguments: [
        ("busy", "automatic"), ("park", "io_uring"), ("park", "futex"), ("default", "automatic"),
    ])
    func waitModes(mode: String, park: String) throws {
        if park == "io_uring", let reason = IOURing.unavailabilityReason() ?? IOURing.futexUnsupportedReason() {
            print("skipping io_uring park: \(reason)")
            return
        }
        let count = 3000
        let bus = try BusFixture("modes")
        let consumer = try bus.peer("consumer", ["name": "m", "count": "\(count)", "mode": mode, "park": park])
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(consumer.transcript)")
        let producer = try bus.peer("producer", ["name": "m", "count": "\(count)", "mode": mode, "park": park])
        #expect(producer.finish() == .exited(0), "\(producer.transcript)")
        #expect(consumer.finish() == .exited(0), "\(consumer.transcript)")
    }
}
