import Bus1IntegrationSupport
import Bus1Linux
import Testing

/// Two real processes exchanging zero-copy messages through a handle obtained by
/// name lookup, over an embedded coordinator.
@Suite("Producer and consumer processes", .timeLimit(.minutes(10)))
struct MessagingTests {
    /// Mixed sizes 1 B ... 4 MiB; every byte and the order checked by the consumer;
    /// the producer waits until its pool is fully reclaimed.
    @Test("100,000 mixed-size messages arrive intact, in order, and every slice comes back")
    func hundredThousandMessages() throws {
        let count = 100_000
        let bus = try BusFixture("stream")
        let (consumer, producer) = try bus.exchangeCheckedMessages(name: "stream.consumer", count: count)
        #expect(producer.lines.contains("OK sent=\(count) reclaimed"), "\(producer.transcript)")
        #expect(consumer.lines.contains { $0.hasPrefix("OK received=\(count)") }, "\(consumer.transcript)")
    }

    /// The same exchange in every wait mode and park backend.
    @Test("Every wait mode and park backend delivers", arguments: [
        ("busy", "automatic"), ("park", "io_uring"), ("park", "futex"), ("default", "automatic"),
    ])
    func waitModes(mode: String, park: String) throws {
        if park == "io_uring", let reason = IOURing.unavailabilityReason() ?? IOURing.futexUnsupportedReason() {
            print("skipping io_uring park: \(reason)")
            return
        }
        let bus = try BusFixture("modes")
        let settings = ["mode": mode, "park": park]
        try bus.exchangeCheckedMessages(name: "m", count: 3000, consumer: settings, producer: settings)
    }
}
