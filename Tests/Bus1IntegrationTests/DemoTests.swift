import Bus1IntegrationSupport
import Testing

/// The `bus1-demo` binary, as the README runs it, briefly: both phases, every
/// wait mode, and the pool fully reclaimed afterwards. ``ReleaseToolTests`` runs
/// ``DemoChecks`` on the release binary (the one `Scripts/demo.sh` builds).
@Suite("bus1-demo", .timeLimit(.minutes(10)))
struct DemoTests {
    @Test("Throughput and round trips between two processes; nothing left in the pool", arguments: ["spin", "park", "busy"])
    func run(mode: String) throws { try DemoChecks.run(.debug, mode: mode) }
}

/// The `bus1-demo` check run against each build: ``DemoTests`` runs the debug
/// binary, ``ReleaseToolTests`` the release one.
enum DemoChecks {
    static func run(_ build: ToolBuild, mode: String) throws {
        let demo = try ChildProcess("bus1-demo", ["--messages", "20000", "--round-trips", "2000", "--mode", mode], build: build,
                                    mergeStandardError: true)
        #expect(demo.finish(timeoutSeconds: 240) == .exited(0), "\(demo.transcript)")
        #expect(demo.lines.contains { $0.hasPrefix("  throughput: 20000 messages in ") }, "\(demo.transcript)")
        #expect(demo.lines.contains { $0.hasPrefix("  round trip (2000 samples, µs): ") }, "\(demo.transcript)")
        #expect(demo.lines.contains { $0.hasPrefix("  consumer exited with 0; producer pool in use after the run: 0 bytes") }, "\(demo.transcript)")
    }
}
