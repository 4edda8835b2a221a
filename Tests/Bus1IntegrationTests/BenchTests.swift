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

    @Test("async: each sync row beside its async twin, with async ÷ sync")
    func asyncRows() throws { try BenchChecks.asyncRows(.debug) }

    @Test("patterns: the call beside the plain round trip, the topic publish beside the plain multicast, with ratios")
    func patternRows() throws { try BenchChecks.patternRows(.debug) }

    @Test("control: the connect and each of its steps, control operations/s per client count")
    func controlRows() throws { try BenchChecks.controlRows(.debug) }

    @Test("baseline, CSV and SVG outputs")
    func baselineAndFormats() throws { try BenchChecks.baselineAndFormats(.debug) }

    @Test("baseline --compare-c, and bus1-c-ring on its own")
    func compareC() throws { try BenchChecks.compareC(.debug) }
}

/// The `bus1-bench` checks run against each build: ``BenchTests`` runs the debug
/// binary, ``ReleaseToolTests`` the release one.
enum BenchChecks {
    /// Runs `bus1-bench arguments --json` and parses its rows; every row says what
    /// it measures (`description`).
    static func run(_ build: ToolBuild, _ arguments: [String]) throws -> [[String: Any]] {
        let bench = try ChildProcess("bus1-bench", arguments + ["--json"], build: build)
        #expect(bench.finish(timeoutSeconds: 300) == .exited(0), "\(bench.transcript)")
        let text = bench.lines.joined(separator: "\n")
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]
        let rows = try #require(parsed, "not a JSON array: \(text)")
        for row in rows { #expect((row["description"] as? String)?.isEmpty == false, "a row without a description: \(row)") }
        return rows
    }

    /// The rows of `mechanism` in `benchmark`.
    static func select(_ rows: [[String: Any]], _ benchmark: String, _ mechanism: String) -> [[String: Any]] {
        rows.filter { $0["benchmark"] as? String == benchmark && $0["mechanism"] as? String == mechanism }
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

    /// Bus1 and both rings (spinning, futex-parked), each unbatched and batched;
    /// every Bus1 row has the ratio to the ring of its wait mode and batch.
    static func throughput(_ build: ToolBuild) throws {
        let rows = try run(build, ["throughput", "--sizes", "64", "--modes", "spin,park-futex", "--iterations", "2000", "--batch", "16"])
        for mechanism in ["bus1", "shm-spin", "futex"] {
            let batches = select(rows, "throughput", mechanism).map { $0["batch"] as? Int ?? 0 }.sorted()
            #expect(batches == (mechanism == "bus1" ? [0, 0, 16, 16] : [0, 16]), "\(mechanism): \(batches)")
        }
        for row in select(rows, "throughput", "bus1") {
            let wanted = row["mode"] as? String == "spin" ? "shm-spin" : "futex"
            #expect(row["baseline"] as? String == wanted && (row["ratio"] as? Double ?? 0) > 0, "\(row)")
        }
        #expect(rows.allSatisfy { ($0["messagesPerSecond"] as? Double ?? 0) > 0 })
        #expect(select(rows, "throughput", "pipe").count == 1 && select(rows, "throughput", "unix-socket").count == 1)
    }

    /// Bus1 and the futex multicast per receiver count; each Bus1 row's ratio is to
    /// the multicast of the same count.
    static func fanout(_ build: ToolBuild) throws {
        let rows = try run(build, ["fanout", "--sizes", "64", "--modes", "park-futex", "--iterations", "40", "--warmup", "2", "--receivers", "1,3"])
        #expect(select(rows, "fanout", "bus1").map { $0["fanout"] as? Int } == [1, 3])
        #expect(select(rows, "fanout", "futex").map { $0["fanout"] as? Int } == [1, 3])
        #expect(rows.count == 4)
        #expect(rows.allSatisfy { $0["p50Nanoseconds"] as? Int != nil && $0["messagesPerSecond"] as? Double != nil })
        #expect(select(rows, "fanout", "bus1").allSatisfy { $0["baseline"] as? String == "futex" && $0["ratio"] as? Double != nil })
    }

    /// `async`: per mode, the sync round trip and stream each followed by its async
    /// twin (both processes awaiting in a task), with every round's figure and the
    /// twin's ratio to the sync row.
    static func asyncRows(_ build: ToolBuild) throws {
        let rows = try run(build, ["async", "--sizes", "64", "--modes", "busy,spin,park", "--iterations", "300", "--warmup", "5", "--rounds", "2"])
        let kinds = rows.map { "\($0["benchmark"] ?? "-") \($0["mechanism"] ?? "-") \($0["mode"] ?? "-")" }
        #expect(kinds == ["busy", "spin", "park"].flatMap { mode in
            ["latency bus1 \(mode)", "latency bus1-async \(mode)", "throughput bus1 \(mode)", "throughput bus1-async \(mode)"]
        })
        for row in rows {
            #expect((row["runs"] as? [Double])?.count == 2, "\(row)")
            #expect(row["p50Nanoseconds"] as? Int != nil || (row["messagesPerSecond"] as? Double ?? 0) > 0, "\(row)")
            if row["mechanism"] as? String == "bus1-async" {
                #expect(row["baseline"] as? String == "bus1" && (row["ratio"] as? Double ?? 0) > 0, "\(row)")
            }
        }
    }

    static func patternRows(_ build: ToolBuild) throws {
        let rows = try run(build, ["patterns", "--sizes", "64", "--modes", "spin,park", "--iterations", "300", "--warmup", "5", "--subscribers", "1,2"])
        let kinds = rows.map { "\($0["benchmark"] ?? "-") \($0["mechanism"] ?? "-") \($0["mode"] ?? "-") \($0["fanout"] ?? "-")" }
        #expect(kinds == ["spin", "park"].flatMap { mode in
            ["latency bus1 \(mode) -", "latency bus1-call \(mode) -", "fanout bus1 \(mode) 1", "fanout bus1-topic \(mode) 1",
             "fanout bus1 \(mode) 2", "fanout bus1-topic \(mode) 2"]
        })
        for row in rows {
            #expect((row["p50Nanoseconds"] as? Int ?? 0) > 0, "\(row)")
            if row["mechanism"] as? String != "bus1" {
                #expect(row["baseline"] as? String == "bus1" && (row["ratio"] as? Double ?? 0) > 0, "\(row)")
            }
        }
    }

    /// `control`: a connect row per step (the whole connect first), then a
    /// control-ops row per client count, with its operations/s and per-operation
    /// latency; every operation of every client counted.
    static func controlRows(_ build: ToolBuild) throws {
        let rows = try run(build, ["control", "--connects", "20", "--rounds", "50", "--clients", "1,3", "--warmup", "2"])
        let kinds = rows.map { "\($0["benchmark"] ?? "-") \($0["mechanism"] ?? "-") \($0["mode"] ?? "-")" }
        #expect(kinds == ["total", "socket", "parker", "welcome", "mapping", "sealing"].map { "connect bus1 \($0)" }
                + ["control-ops bus1 1 client", "control-ops bus1 3 clients"])
        for row in select(rows, "connect", "bus1") {
            #expect(row["samples"] as? Int == 20 && (row["p50Nanoseconds"] as? Int ?? 0) > 0, "\(row)")
            #expect((row["size"] as? Int ?? 0) > 0, "the pool's payload area: \(row)")
        }
        for (row, clients) in zip(select(rows, "control-ops", "bus1"), [1, 3]) {
            #expect(row["clients"] as? Int == clients && row["samples"] as? Int == clients * 50 * 4, "\(row)")
            #expect((row["messagesPerSecond"] as? Double ?? 0) > 0 && (row["p50Nanoseconds"] as? Int ?? 0) > 0, "\(row)")
        }
    }

    static func baselineAndFormats(_ build: ToolBuild) throws {
        let rows = try run(build, ["baseline", "--sizes", "64", "--iterations", "50", "--warmup", "5", "--batch", "8", "--receivers", "1,2"])
        #expect(Set(rows.compactMap { $0["mechanism"] as? String }) == ["shm-spin", "futex", "unix-socket", "pipe"])
        let kinds = rows.map { row in
            ["benchmark", "mechanism", "batch", "fanout"].map { "\(row[$0] ?? "-")" }.joined(separator: " ")
        }
        #expect(kinds == ["latency shm-spin - -", "latency futex - -", "latency unix-socket - -", "latency pipe - -",
                          "throughput shm-spin - -", "throughput shm-spin 8 -", "throughput futex - -", "throughput futex 8 -",
                          "throughput unix-socket - -", "throughput pipe - -", "fanout futex - 1", "fanout futex - 2"])
        #expect(rows.allSatisfy { $0["p50Nanoseconds"] as? Int != nil || ($0["messagesPerSecond"] as? Double ?? 0) > 0 })

        let svgPath = NSTemporaryDirectory() + "bus1-bench-\(getpid())-\(build.rawValue).svg"
        let csv = try ChildProcess("bus1-bench", ["baseline", "--sizes", "64", "--iterations", "20", "--warmup", "2", "--csv", "--svg", svgPath],
                                   build: build)
        #expect(csv.finish(timeoutSeconds: 300) == .exited(0), "\(csv.transcript)")
        #expect(csv.lines.first?.hasPrefix("benchmark,mechanism,mode,size") == true)
        #expect(csv.lines.first?.hasSuffix(",baseline,ratio,description") == true)
        #expect(csv.lines.filter { $0.hasPrefix("latency,") }.count == 4)
        #expect(csv.lines.filter { $0.hasPrefix("throughput,shm-spin,") }.allSatisfy { $0.hasSuffix("\"") && $0.contains(",\"SPSC ring") })
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("polyline"))
        try? FileManager.default.removeItem(atPath: svgPath)
    }

    /// `baseline --compare-c`: the Swift rings beside their C twins, each with every
    /// run's rate and the C ÷ Swift ratio (its size is checked by hand, never here:
    /// see README); and bus1-c-ring on its own prints one parseable JSON line.
    static func compareC(_ build: ToolBuild) throws {
        let rows = try run(build, ["baseline", "--compare-c", "--park", "--sizes", "64", "--iterations", "2000", "--batch", "8", "--rounds", "2"])
        let kinds = rows.map { "\($0["mechanism"] ?? "-") \($0["batch"] ?? "-")" }
        #expect(kinds == ["shm-spin -", "c-shm-spin -", "futex -", "c-futex -", "shm-spin 8", "c-shm-spin 8", "futex 8", "c-futex 8"])
        for row in rows {
            #expect((row["runs"] as? [Double])?.count == 2 && (row["messagesPerSecond"] as? Double ?? 0) > 0, "\(row)")
            if !(row["mechanism"] as? String ?? "").hasPrefix("c-") {
                #expect(row["baseline"] as? String == "c-\(row["mechanism"] as? String ?? "")" && (row["ratio"] as? Double ?? 0) > 0, "\(row)")
            }
        }

        for park in [false, true] {
            let ring = try ChildProcess(build.path("bus1-c-ring"), ["--size", "100", "--messages", "5000", "--batch", "7"] + (park ? ["--park"] : []))
            #expect(ring.finish(timeoutSeconds: 120) == .exited(0), "\(ring.transcript)")
            let object = try JSONSerialization.jsonObject(with: Data((ring.lines.first ?? "").utf8)) as? [String: Any]
            #expect(object?["mechanism"] as? String == "c-ring" && object?["mode"] as? String == (park ? "park" : "spin"), "\(ring.lines)")
            #expect(object?["messages"] as? Int == 5000 && object?["batch"] as? Int == 7 && object?["size"] as? Int == 100)
            #expect(object?["publishEvery"] as? Int == 7 && object?["slots"] as? Int == 256)
            #expect(((object?["messagesPerSecond"] as? NSNumber)?.doubleValue ?? 0) > 0, "\(ring.lines)")
        }

        // Nonsense is refused at once with the usage line (strtoull alone read "-1" as 2^64 - 1).
        for arguments in [["--size", "-1"], ["--size", "0"], ["--messages", "x"], ["--batch", "99999999"], ["--slots", "3"],
                          ["--size", "67108864", "--slots", "2"]] {
            let ring = try ChildProcess(build.path("bus1-c-ring"), arguments, mergeStandardError: true)
            #expect(ring.finish(timeoutSeconds: 60) == .exited(2), "\(arguments): \(ring.transcript)")
            #expect(ring.lines.contains { $0.hasPrefix("usage: bus1-c-ring") }, "\(arguments): \(ring.transcript)")
        }
    }
}
