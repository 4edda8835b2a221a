import Bus1IntegrationSupport
import Bus1Linux
import Testing

/// Two real processes exchanging zero-copy messages through a handle obtained by
/// name lookup, over an embedded coordinator.
@Suite("Producer and consumer processes", .timeLimit(.minutes(10)))
struct MessagingTests {
    /// Why peers cannot park through io_uring here (no io_uring, or no futex
    /// opcodes), or nil if they can.
    static let ioUringParkingUnavailable: String? = IOURing.unavailabilityReason() ?? IOURing.futexUnsupportedReason()

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

    /// The same exchange in every wait mode and park backend that needs nothing
    /// of the kernel beyond futex(2); io_uring parking has its own test below.
    @Test("Every wait mode and park backend delivers", arguments: [
        ("busy", "automatic"), ("park", "futex"), ("default", "automatic"),
    ])
    func waitModes(mode: String, park: String) throws {
        try Self.exchange(mode: mode, park: park)
    }

    @Test("Parking through io_uring delivers", .enabled(unless: ioUringParkingUnavailable))
    func ioUringParking() throws {
        try Self.exchange(mode: "park", park: "io_uring")
    }

    /// 3,000 checked messages with both peers in `mode`, parking through `park`.
    static func exchange(mode: String, park: String) throws {
        let bus = try BusFixture("modes")
        let settings = ["mode": mode, "park": park]
        try bus.exchangeCheckedMessages(name: "m", count: 3000, consumer: settings, producer: settings)
    }
}
