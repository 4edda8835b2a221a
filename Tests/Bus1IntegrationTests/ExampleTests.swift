import Bus1IntegrationSupport
import Glibc
import Testing

/// The examples a newcomer copies (`bus1-example-rpc`, `bus1-example-pubsub`) do
/// what the README says they do, run as real processes on a real bus. The
/// release binaries run the same checks (``ReleaseToolTests``).
@Suite("Examples", .timeLimit(.minutes(5)))
struct ExampleTests {
    @Test("bus1-example-rpc: a server and a client, every reply checked")
    func requestReply() throws { try ExampleChecks.requestReply(.debug) }

    @Test("bus1-example-pubsub: a producer, a fast and a slow consumer, under each policy", arguments: ["block", "skip"])
    func producerConsumers(policy: String) throws { try ExampleChecks.producerConsumers(.debug, policy: policy) }
}

enum ExampleChecks {
    static func requestReply(_ build: ToolBuild) throws {
        let bus = try BusFixture("example-rpc")
        let server = try ChildProcess("bus1-example-rpc", ["server", "--name", "upper", "--address", bus.address], build: build)
        #expect(server.awaitLine(prefix: "serving") != nil, "\(server.transcript)")
        let client = try ChildProcess("bus1-example-rpc", ["client", "--name", "upper", "--address", bus.address,
                                                           "--calls", "2000", "--concurrency", "16"], build: build, mergeStandardError: true)
        #expect(client.finish() == .exited(0), "\(client.transcript)")
        #expect(client.lines.last?.hasPrefix("2000 calls, 16 in flight") == true
                && client.lines.last?.hasSuffix("every reply checked") == true, "\(client.transcript)")
    }

    /// 5,000 frames to a fast consumer (a ring that holds them all) and a slow
    /// one: under `block` both get every frame and the producer waited; under
    /// `skip` the producer never waited, the fast one gets every frame, and the
    /// slow one's received + missed is all of them.
    static func producerConsumers(_ build: ToolBuild, policy: String) throws {
        let bus = try BusFixture("example-pubsub")
        let count = 5000
        let producer = try ChildProcess("bus1-example-pubsub", ["producer", "--address", bus.address, "--count", "\(count)", "--size", "256",
                                                                "--wait-for", "2", "--when-full", policy], build: build, mergeStandardError: true)
        #expect(producer.awaitLine(prefix: "hosting") != nil, "\(producer.transcript)")
        let fast = try ChildProcess("bus1-example-pubsub", ["consumer", "--address", bus.address, "--ring", "8192"],
                                    build: build, mergeStandardError: true)
        let slow = try ChildProcess("bus1-example-pubsub", ["consumer", "--address", bus.address, "--delay-us", "100"],
                                    build: build, mergeStandardError: true)
        for process in [producer, fast, slow] { #expect(process.finish() == .exited(0), "\(process.transcript)") }
        func counts(_ process: ChildProcess) -> (received: Int, missed: Int)? {
            guard let line = process.lines.last(where: { $0.hasPrefix("done:") }) else { return nil }
            let words = line.split(separator: " ")
            guard let r = words.firstIndex(of: "received"), let m = words.firstIndex(of: "missed"),
                  let received = Int(words[r + 1]), let missed = Int(words[m + 1]) else { return nil }
            return (received, missed)
        }
        let fastCounts = counts(fast), slowCounts = counts(slow)
        #expect(fastCounts?.received == count && fastCounts?.missed == 0, "\(fast.transcript)")
        #expect(slowCounts.map { $0.received + $0.missed } == count, "\(slow.transcript)")
        let report = producer.lines.last { $0.hasPrefix("published \(count)") } ?? ""
        let waits = report.split(separator: " ").split(separator: "waits").last?.first.flatMap { Int($0) }
        if policy == "block" {
            #expect(slowCounts?.missed == 0 && (waits ?? 0) > 0, "the slow consumer never held the producer back: \(producer.transcript)")
        } else {
            #expect((slowCounts?.missed ?? 0) > 0 && waits == 0, "\(producer.transcript)\n\(slow.transcript)")
        }
    }
}
