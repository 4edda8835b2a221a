import Bus1IntegrationSupport
import Glibc
import Testing

/// Several producer processes into one consumer, with random pauses and wait
/// modes from a seed: each run interleaves the shared-memory protocol (credit,
/// completions, doorbells, the sleeping flag) differently. The consumer checks
/// every byte, per-sender FIFO, and that tickets rise across all senders.
///
/// `BUS1_SOAK=N` multiplies the messages (and seeds) for a long run.
@Suite("Randomized interleavings", .timeLimit(.minutes(10 * Soak.factor)))
struct StressTests {
    @Test("Producers with random pauses and wait modes into one consumer", arguments: Array(1...(3 * Soak.factor)))
    func randomInterleavings(seed: Int) throws {
        try Self.producersIntoConsumer("stress", seed: seed, producers: 3, perProducer: 3000 * Soak.factor, consumer: [:])
    }

    /// Descriptor slots are published by their ticket and cleared when taken; a
    /// sender reuses a slot only on credit, which comes back as completions in
    /// any order. On an 8-slot ring, a consumer that holds up to 7 messages and
    /// releases them in random order makes every reuse race a late clear: a slot
    /// written before it was cleared would lose a message or deliver one twice,
    /// which the consumer's sequence check catches.
    @Test("Out-of-order releases on a small ring: every slot reuse waits for its clear", arguments: Array(1...(3 * Soak.factor)))
    func outOfOrderReleases(seed: Int) throws {
        try Self.producersIntoConsumer("holds", seed: seed, producers: 2, perProducer: 2000 * Soak.factor,
                                       consumer: ["ring": "8", "hold": "\(1 + seed % 7)"])
    }

    /// `producers` producer processes send `perProducer` messages each into one
    /// consumer (its extra settings in `consumer`), wait modes and jitter drawn
    /// from `seed`; every process must finish cleanly.
    static func producersIntoConsumer(_ name: String, seed: Int, producers: Int, perProducer: Int, consumer settings: [String: String]) throws {
        let modes = ["busy", "park", "default"]
        let bus = try BusFixture(name)
        let consumer = try bus.peer("consumer", settings.merging(["name": name, "count": "\(producers * perProducer)",
                                                                  "mode": modes[seed % 3], "jitter": "\(seed)"]) { $1 })
        #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil)
        var senders: [ChildProcess] = []
        for p in 0..<producers {
            senders.append(try bus.peer("producer", ["name": name, "count": "\(perProducer)",
                                                     "mode": modes[(seed + p + 1) % 3], "jitter": "\(seed * 31 + p)"]))
        }
        for sender in senders { #expect(sender.finish() == .exited(0), "seed \(seed): \(sender.transcript)") }
        #expect(consumer.finish() == .exited(0), "seed \(seed): \(consumer.transcript)")
    }
}
