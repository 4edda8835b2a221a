import Bus1IntegrationSupport
import Foundation
import Testing

/// Runs each bus1-bench subcommand briefly (tiny iteration counts; the numbers
/// mean nothing here) and checks the output parses and has the documented
/// fields. Speed itself is measured by release runs by hand, never here. The
/// checks are ``BenchChecks``, functions of the build they run
/// (``ReleaseToolTests`` runs them against the release binary).
@Suite("bus1-bench", .timeLimit(.minutes(10)))
struct BenchTests {
    @Test("latency: a row per mode and size, baselines, ratios")
    func latency() throws { try BenchChecks.latency(.debug) }

    @Test("throughput: with and without batching, and baselines")
    func throughput() throws { try BenchChecks.throughput(.debug) }

    @Test("fanout: latency to the last receiver and multicasts/s")
    func fanout() throws { try BenchChecks.fanout(.debug) }

    @Test("baseline, CSV and SVG outputs")
    func baselineAndFormats() throws { try BenchChecks.baselineAndFormats(.debug) }
}

/// The `bus1-bench` checks run against each build: ``BenchTests`` runs the debug
/// binary, ``ReleaseToolTests`` the release one.
enum BenchChecks {
    /// Runs `bus1-bench arguments --json` and parses its rows.
    static func run(_ build: ToolBuild, _ arguments: [String]) throws -> [[String: Any]] {
        let bench = try ChildProcess("bus1-bench", arguments + ["--json"], build: build)
        #expect(bench.finish(timeoutSeconds: 300) == .exited(0), "\(bench.transcript)")
        let text = bench.lines.joined(separator: "\n")
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]
        return try #require(parsed, "not a JSON array: \(text)")
    }

    static func latency(_ build: ToolBuild) throws {
        let rows = try run(build, ["latency", "--sizes", "64,4096", "--modes", "busy,park-futex", "--iterations", "50", "--warmup", "5"])
        let bus1 = rows.filter { $0["mechanism"] as? String == "bus1" }
        #expect(bus1.count == 4)
        for row in bus1 {
            #expect(row["p50Nanoseconds"] as? Int != nil && row["p999Nanoseconds"] as? Int != nil)
            #expect(row["ratio"] as? Double != nil, "every Bus1 row has a ratio: \(row)")
        }
        let mechanisms = Set(rows.compactMap { $0["mechanism"] as? String })
        #expect(mechanisms == ["bus1", "shm-spin", "futex", "unix-socket", "pipe"])
    }

    static func throughput(_ build: ToolBuild) throws {
        let rows = try run(build, ["throughput", "--sizes", "64", "--modes", "spin", "--iterations", "2000", "--batch", "16"])
        #expect(rows.contains { $0["mechanism"] as? String == "bus1" && $0["batch"] as? Int == 16 })
        #expect(rows.contains { $0["mechanism"] as? String == "bus1" && $0["batch"] == nil })
        #expect(rows.allSatisfy { ($0["messagesPerSecond"] as? Double ?? 0) > 0 })
    }

    static func fanout(_ build: ToolBuild) throws {
        let rows = try run(build, ["fanout", "--sizes", "64", "--modes", "park-futex", "--iterations", "40", "--warmup", "2", "--receivers", "1,3"])
        #expect(rows.map { $0["fanout"] as? Int } == [1, 3])
        #expect(rows.allSatisfy { $0["p50Nanoseconds"] as? Int != nil && $0["messagesPerSecond"] as? Double != nil })
    }

    static func baselineAndFormats(_ build: ToolBuild) throws {
        let rows = try run(build, ["baseline", "--sizes", "64", "--iterations", "50", "--warmup", "5"])
        #expect(Set(rows.compactMap { $0["mechanism"] as? String }) == ["shm-spin", "futex", "unix-socket", "pipe"])

        let svgPath = NSTemporaryDirectory() + "bus1-bench-\(getpid())-\(build.rawValue).svg"
        let csv = try ChildProcess("bus1-bench", ["baseline", "--sizes", "64", "--iterations", "20", "--warmup", "2", "--csv", "--svg", svgPath],
                                   build: build)
        #expect(csv.finish(timeoutSeconds: 300) == .exited(0), "\(csv.transcript)")
        #expect(csv.lines.first?.hasPrefix("benchmark,mechanism,mode,size") == true)
        #expect(csv.lines.filter { $0.hasPrefix("latency,") }.count == 4)
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("polyline"))
        try? FileManager.default.removeItem(atPath: svgPath)
    }
}
