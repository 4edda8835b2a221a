// bus1-bench: Bus1 latency, throughput and fan-out, each with raw baselines
// measured in the same invocation so every figure is also a ratio.
import ArgumentParser
import Bus1
import Bus1Coordinator
import Bus1Linux
import Foundation
import Glibc
import Logging

/// Options every measuring subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "Payload sizes in bytes, comma-separated.")
    var sizes: String = "64,4096,65536,1048576,16777216"

    @Option(help: "Wait modes, comma-separated: busy, spin (spin-then-park), park-io_uring, park-futex, park (io_uring if the kernel has futex waits, else futex).")
    var modes: String = Bus1Mode.all.joined(separator: ",")

    @Option(help: "Measured iterations (round trips, or messages for throughput).")
    var iterations: Int = 20_000

    @Option(help: "Warm-up iterations, not recorded.")
    var warmup: Int = 1000

    @Option(help: "Pin to these CPUs, comma-separated: the first for this process, the next for its peer(s).")
    var cpus: String?

    @Option(help: "Use the bus at this socket instead of an embedded coordinator.")
    var address: String?

    @Flag(help: "JSON output (see README for the fields).") var json = false
    @Flag(help: "CSV output.") var csv = false

    @Option(help: "Write a latency-percentile plot (SVG) to this file.")
    var svg: String?

    /// The largest payload a run may ask for.
    static let maximumSize = 256 << 20
    /// The most iterations (and warm-up iterations) a run may ask for: their sum
    /// must fit the baselines' 32-bit round-trip counter.
    static let maximumIterations = 1_000_000_000

    /// Refuses nonsense at start, before anything is spawned or pinned.
    func validate() throws {
        guard let sizes = Self.parseList(sizes), !sizes.isEmpty, sizes.allSatisfy({ (1...Self.maximumSize).contains($0) }) else {
            throw ValidationError("--sizes: 1 ... \(Self.maximumSize) bytes, comma-separated")
        }
        guard !parsedModes.isEmpty, parsedModes.allSatisfy({ Bus1Mode.names.contains($0.name) }) else {
            throw ValidationError("--modes: \(Bus1Mode.names.joined(separator: ", "))")
        }
        guard (1...Self.maximumIterations).contains(iterations) else { throw ValidationError("--iterations: 1 ... \(Self.maximumIterations)") }
        guard (0...Self.maximumIterations).contains(warmup) else { throw ValidationError("--warmup: 0 ... \(Self.maximumIterations)") }
        guard !(json && csv) else { throw ValidationError("--json and --csv exclude each other") }
        if let cpus { try Self.validateCPUs(cpus) }
        if address?.isEmpty == true { throw ValidationError("--address: a socket path, not an empty string") }
        if let svg { try Self.validateOutput(svg) }
    }

    /// `--cpus` must name at least two distinct CPUs this process may run on: one
    /// for the measuring process and one for each peer. With one CPU (or a CPU
    /// twice) both sides share it and every round trip is a context switch
    /// (`--cpus 0` once reported 8 ms round trips as if they were real).
    static func validateCPUs(_ text: String) throws {
        guard let list = parseList(text), list.count >= 2, Set(list).count == list.count else {
            throw ValidationError("--cpus: at least two distinct CPU numbers, comma-separated (e.g. 0,1)")
        }
        let allowed = (try? allowedCPUs()) ?? []
        for cpu in list where !allowed.contains(cpu) {
            throw ValidationError("--cpus: CPU \(cpu) is offline, absent or not allowed for this process (allowed: "
                                  + allowed.map(String.init).joined(separator: ",") + ")")
        }
    }

    /// The plot is written only to a new file or over a regular one, never in
    /// place of a directory, a symlink or a device.
    static func validateOutput(_ path: String) throws {
        guard !path.isEmpty else { throw ValidationError("--svg: a file path, not an empty string") }
        var status = stat()
        if lstat(path, &status) == 0 && status.st_mode & S_IFMT != S_IFREG {
            throw ValidationError("--svg: \(path) exists and is not a regular file")
        }
    }

    /// Comma-separated integers; nil if any item is not one.
    static func parseList(_ text: String) -> [Int]? {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return items.contains(nil) ? nil : items.compactMap { $0 }
    }

    var parsedCPUs: [Int] { cpus.flatMap(Self.parseList) ?? [] }
    /// The sizes (checked by `validate()`).
    var sizeList: [Int] { Self.parseList(sizes) ?? [] }
    var parsedModes: [Bus1Mode] { modes.split(separator: ",").map { Bus1Mode(name: String($0)) } }
    var format: OutputFormat { json ? .json : csv ? .csv : .table }

    /// The requested modes this kernel supports; says on stderr why any is skipped.
    var runnableModes: [Bus1Mode] {
        parsedModes.filter { mode in
            guard let reason = mode.unavailableReason else { return true }
            FileHandle.standardError.write("skipping \(mode.name): \(reason)\n".data(using: .utf8)!)
            return false
        }
    }

    /// Runs `body` with a bus address (an embedded coordinator unless --address, or
    /// none and "" when `needsBus` is false: the baselines alone run with no
    /// coordinator thread beside them), pinned if asked; prints the rows (and, on
    /// a table with rows that hold `runs`, `summary` of them); writes the plot.
    func measure(title: String, needsBus: Bool = true, summary: ([Row]) -> String = CompareC.summary,
                 _ body: (String, [Int]) throws -> [Row]) throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        signal(SIGPIPE, SIG_IGN)
        let cpuList = parsedCPUs
        try pin(cpuList.first)
        var embedded: EmbeddedCoordinator?
        if address == nil && needsBus { embedded = try EmbeddedCoordinator.onPrivateSocket(named: "bench") }
        defer { embedded?.stop() }
        var rows = try body(address ?? embedded?.address ?? "", cpuList)
        progressDone()
        attachRatios(&rows)
        describe(&rows)
        print(render(rows, as: format))
        if format == .table && rows.contains(where: { $0.runs != nil }) { print("\n" + summary(rows)) }
        if let svg {
            // In place (not atomically): an atomic write would rename a temporary file
            // over the path, replacing whatever was there.
            try percentileSVG(rows, title: title).write(toFile: svg, atomically: false, encoding: .utf8)
        }
    }
}

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1-bench",
        abstract: "Bus1 latency, throughput and fan-out, with raw baselines measured in the same run.",
        discussion: "Build with -c release. Every Bus1 row carries its ratio to the baseline of the same size measured in the same invocation.",
        version: Bus1Version.string,
        subcommands: [Latency.self, Throughput.self, Fanout.self, AsyncCommand.self, PatternsCommand.self, ControlCommand.self,
                      BaselineCommand.self])

    static func main() {
        // Child processes of a measurement: `bus1-bench __child ROLE key=value...`.
        let arguments = CommandLine.arguments
        if arguments.count >= 3 && arguments[1] == "__child" {
            do {
                let settings = Child.settings(arguments.dropFirst(3))
                try pin(settings["cpu"].flatMap { Int($0) })
                switch arguments[2] {
                case "bus1-echo": try Bus1Runs.echo(settings)
                case "bus1-sink": try Bus1Runs.sink(settings)
                case "bus1-fan": try Bus1Runs.fan(settings)
                case "bus1-async-echo": try AsyncRuns.echo(settings)
                case "bus1-async-sink": try AsyncRuns.sink(settings)
                case "bus1-service": try PatternRuns.service(settings)
                case "bus1-subscriber": try PatternRuns.subscriber(settings)
                case "control-client": try ControlRuns.client(settings)
                case "baseline-shm-spin": try Baseline.echoShared(futex: false, settings: settings)
                case "baseline-futex": try Baseline.echoShared(futex: true, settings: settings)
                case "baseline-stream": try Baseline.echoStream(settings: settings)
                case "baseline-ring": try RingBaseline.consume(settings: settings)
                case "baseline-multicast": try MulticastBaseline.receive(settings: settings)
                case "baseline-drain": try Baseline.drainStream(settings: settings)
                default: throw BenchError("unknown child role \(arguments[2])")
                }
                Glibc.exit(0)
            } catch {
                FileHandle.standardError.write("bus1-bench child: \(error)\n".data(using: .utf8)!)
                Glibc.exit(1)
            }
        }
        Self.main(nil)
    }
}

/// Iterations scaled down for big payloads (a 16 MiB round trip is not a 64 B one).
func scaled(_ iterations: Int, size: Int) -> Int {
    size <= 65536 ? iterations : max(10, iterations * 65536 / size)
}

/// The baselines' round trips for every size.
func baselineLatencyRows(_ common: CommonOptions, cpus: [Int], mechanisms: [Baseline] = Baseline.allCases) throws -> [Row] {
    var rows: [Row] = []
    for size in common.sizeList {
        for baseline in mechanisms {
            progress("latency \(baseline.rawValue) \(sizeText(size))")
            let n = scaled(common.iterations, size: size)
            let histogram = try baseline.latency(size: size, iterations: n, warmup: min(common.warmup, n), cpus: cpus)
            rows.append(.latency("latency", baseline.rawValue, "-", size: size, histogram: histogram))
        }
    }
    return rows
}

/// The baselines' one-way rates for every size, unbatched and batched as the Bus1
/// rows are (`batch`; sockets and pipes only unbatched).
func baselineThroughputRows(_ common: CommonOptions, batch: Int, cpus: [Int]) throws -> [Row] {
    var rows: [Row] = []
    for size in common.sizeList {
        let n = scaled(common.iterations, size: size)
        for baseline in Baseline.allCases {
            for batchSize in batchSizes(batch, size: size, say: false) {
                progress("throughput \(baseline.rawValue) \(sizeText(size)) batch \(batchSize ?? 1)")
                guard let rate = try baseline.throughput(size: size, messages: n, batch: batchSize, cpus: cpus) else { continue }
                rows.append(.throughput(baseline.rawValue, "-", size: size, batch: batchSize, messages: n, seconds: Double(n) / rate))
            }
        }
    }
    return rows
}

/// The futex multicast's fan-out latency for every size and receiver count
/// (iterations as the Bus1 fan-out rows have them).
func baselineFanoutRows(_ common: CommonOptions, receivers counts: [Int], cpus: [Int]) throws -> [Row] {
    var rows: [Row] = []
    for size in common.sizeList {
        for count in counts {
            progress("fanout futex \(sizeText(size)) ×\(count)")
            let n = max(10, scaled(common.iterations, size: size) / count)
            let (histogram, rate) = try MulticastBaseline.latency(size: size, receivers: count, iterations: n,
                                                                  warmup: min(common.warmup, n), cpus: cpus)
            var row = Row.latency("fanout", "futex", "-", size: size, fanout: count, histogram: histogram)
            row.messagesPerSecond = rate
            row.bytesPerSecond = rate * Double(size)
            rows.append(row)
        }
    }
    return rows
}

/// The batch sizes measured for `size` with `--batch batch`: unbatched always;
/// batched when a whole batch fits `CommonOptions.maximumSize` (a Bus1 pool is four
/// times that, the coordinator's default limit), with a note on stderr (if `say`)
/// when it does not.
func batchSizes(_ batch: Int, size: Int, say: Bool = true) -> [Int?] {
    guard batch > 0 else { return [nil] }
    guard batch * size <= CommonOptions.maximumSize else {
        if say {
            FileHandle.standardError.write(Data("no batched row for \(sizeText(size)): \(batch) × \(sizeText(size)) exceeds \(sizeText(CommonOptions.maximumSize))\n".utf8))
        }
        return [nil]
    }
    return [nil, batch]
}

extension Bench {
    struct Latency: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ping-pong round trips between two processes, per wait mode and size.")
        @OptionGroup var common: CommonOptions
        @Flag(help: "Skip the baselines (no ratio column).") var noBaseline = false

        func run() throws {
            try common.measure(title: "Round trip latency") { address, cpus in
                var rows: [Row] = []
                for mode in common.runnableModes {
                    for size in common.sizeList {
                        progress("latency bus1 \(mode.name) \(sizeText(size))")
                        let n = scaled(common.iterations, size: size)
                        let histogram = try Bus1Runs.latency(address: address, mode: mode, size: size, iterations: n,
                                                             warmup: min(common.warmup, n), cpus: cpus)
                        rows.append(.latency("latency", "bus1", mode.name, size: size, histogram: histogram))
                    }
                }
                if !noBaseline { rows += try baselineLatencyRows(common, cpus: cpus) }
                return rows
            }
        }
    }

    struct Throughput: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One-way producer → consumer messages/s and payload GB/s, with and without batching.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Messages per batch in the batched rows (0: no batched rows).") var batch: Int = 64
        @Flag(help: "Skip the baselines (no ratio column).") var noBaseline = false

        func validate() throws {
            guard (0...4096).contains(batch) else { throw ValidationError("--batch: 0 ... 4096") }
        }

        func run() throws {
            try common.measure(title: "Throughput") { address, cpus in
                var rows: [Row] = []
                for mode in common.runnableModes {
                    for size in common.sizeList {
                        let n = scaled(common.iterations, size: size)
                        for batchSize in batchSizes(batch, size: size) {
                            progress("throughput bus1 \(mode.name) \(sizeText(size)) batch \(batchSize ?? 1)")
                            let rate = try Bus1Runs.throughput(address: address, mode: mode, size: size, messages: n,
                                                               batch: batchSize, cpus: cpus)
                            rows.append(.throughput("bus1", mode.name, size: size, batch: batchSize, messages: n, seconds: Double(n) / rate))
                        }
                    }
                }
                if !noBaseline { rows += try baselineThroughputRows(common, batch: batch, cpus: cpus) }
                return rows
            }
        }
    }

    struct Fanout: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One sender multicasting to N receiver processes: latency to the last receiver, multicasts/s.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Receiver counts, comma-separated, each 1 ... 256 (a multicast's limit).") var receivers: String = "1,2,4,8,16"
        @Flag(help: "Skip the baseline (no ratio column).") var noBaseline = false

        func validate() throws { try validateReceivers(receivers) }

        func run() throws {
            let counts = CommonOptions.parseList(receivers) ?? []
            try common.measure(title: "Fan-out latency (send → last receiver)") { address, cpus in
                var rows: [Row] = []
                for mode in common.runnableModes {
                    for size in common.sizeList {
                        for count in counts {
                            progress("fanout bus1 \(mode.name) \(sizeText(size)) ×\(count)")
                            let n = max(10, scaled(common.iterations, size: size) / count)
                            let (histogram, rate) = try Bus1Runs.fanout(address: address, mode: mode, size: size, receivers: count,
                                                                        iterations: n, warmup: min(common.warmup, n), cpus: cpus)
                            var row = Row.latency("fanout", "bus1", mode.name, size: size, fanout: count, histogram: histogram)
                            row.messagesPerSecond = rate
                            row.bytesPerSecond = rate * Double(size)
                            rows.append(row)
                        }
                    }
                }
                if !noBaseline { rows += try baselineFanoutRows(common, receivers: counts, cpus: cpus) }
                return rows
            }
        }
    }

    struct AsyncCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "async",
            abstract: "Round trips and one-way messages/s through the sync API and through the async API (both processes in a task), alternated round by round, with async ÷ sync.",
            discussion: "Per mode and size: the latency row and the unbatched throughput row, each as a bus1 (sync) row beside its bus1-async twin. --iterations is round trips for latency and messages for throughput. No baselines.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Alternated rounds of each sync/async pair.") var rounds: Int = 3

        func validate() throws {
            guard (1...1000).contains(rounds) else { throw ValidationError("--rounds: 1 ... 1000") }
        }

        func run() throws {
            try common.measure(title: "Round trip latency, sync and async", summary: SyncVsAsync.summary) { address, cpus in
                try SyncVsAsync.rows(common, address: address, cpus: cpus, rounds: rounds)
            }
        }
    }

    struct PatternsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "patterns",
            abstract: "Request/reply calls and topic publishes, each beside the plain Bus1 message it is built on, measured in the same run.",
            discussion: "Per mode and size: the plain round trip (latency bus1) and the call (latency bus1-call: ServiceClient → Service → reply); per subscriber count the plain multicast (fanout bus1) and the topic publish (fanout bus1-topic: Topic → TopicSubscriber processes). Each pattern row's ratio is its p50 over its plain twin's. No baselines.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Subscriber counts of the topic rows, comma-separated, each 1 ... 256.") var subscribers: String = "1,4"

        func validate() throws { try validateReceivers(subscribers) }

        func run() throws {
            let counts = CommonOptions.parseList(subscribers) ?? []
            try common.measure(title: "Patterns against plain messages") { address, cpus in
                try PatternRuns.rows(common, address: address, cpus: cpus, subscribers: counts)
            }
        }
    }

    struct ControlCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "control",
            abstract: "The control path: connects (each step timed) and the coordinator's control operations/s from client processes.",
            discussion: "connect rows: --connects connects and disconnects from this process, the whole connect and each step of it. control-ops rows: per --clients count, that many processes released together, each running --rounds rounds of create node, publish, look up, destroy (4 requests). --warmup: unrecorded connects and rounds, at most a tenth of the measured ones. --sizes and --modes do not apply; --iterations is not used.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Measured connects.") var connects: Int = 1000
        @Option(help: "Rounds per client (4 control operations each).") var rounds: Int = 5000
        @Option(help: "Client process counts, comma-separated, each 1 ... 64.") var clients: String = "1,4"

        func validate() throws {
            guard (1...1_000_000).contains(connects) else { throw ValidationError("--connects: 1 ... 1000000") }
            guard (1...10_000_000).contains(rounds) else { throw ValidationError("--rounds: 1 ... 10000000") }
            guard let counts = CommonOptions.parseList(clients), !counts.isEmpty, counts.allSatisfy({ (1...64).contains($0) }) else {
                throw ValidationError("--clients: 1 ... 64, comma-separated")
            }
        }

        func run() throws {
            let counts = CommonOptions.parseList(clients) ?? []
            try common.measure(title: "Connect latency") { address, cpus in
                try ControlRuns.rows(address: address, connects: connects, rounds: rounds, clients: counts,
                                     warmup: common.warmup, cpus: cpus)
            }
        }
    }

    struct BaselineCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "baseline",
            abstract: "Only the raw mechanisms, each row saying what it does: shared-memory spin, futex, Unix socket and pipe round trips; the SPSC ring (spinning and futex-parked), socket and pipe one way; the futex multicast.",
            discussion: "--compare-c runs only the rings, alternated with their plain C twin (bus1-c-ring, built beside bus1-bench) --rounds times each, and reports the medians and C ÷ Swift.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Messages per batch in the batched ring rows (0: no batched rows), as throughput's --batch.") var batch: Int = 64
        @Option(help: "Receiver counts of the multicast rows, comma-separated, each 1 ... 256.") var receivers: String = "1,4,16"
        @Flag(help: "Compare the Swift ring with the plain C ring (bus1-c-ring) instead.") var compareC = false
        @Option(help: "--compare-c: alternated runs of each ring.") var rounds: Int = 5
        @Flag(help: "--compare-c: also compare the futex-parked rings.") var park = false

        func validate() throws {
            guard (0...4096).contains(batch) else { throw ValidationError("--batch: 0 ... 4096") }
            try validateReceivers(receivers)
            guard (1...1000).contains(rounds) else { throw ValidationError("--rounds: 1 ... 1000") }
        }

        func run() throws {
            let counts = CommonOptions.parseList(receivers) ?? []
            try common.measure(title: "Baselines: round trip", needsBus: false) { _, cpus in
                if compareC {
                    return try CompareC.rows(sizes: common.sizeList, messages: { scaled(common.iterations, size: $0) },
                                             batches: { batchSizes(batch, size: $0, say: false) }, rounds: rounds, park: park, cpus: cpus)
                }
                return try baselineLatencyRows(common, cpus: cpus) + baselineThroughputRows(common, batch: batch, cpus: cpus)
                    + baselineFanoutRows(common, receivers: counts, cpus: cpus)
            }
        }
    }
}

func validateReceivers(_ text: String) throws {
    guard let counts = CommonOptions.parseList(text), !counts.isEmpty, counts.allSatisfy({ (1...256).contains($0) }) else {
        throw ValidationError("--receivers: 1 ... 256, comma-separated")
    }
}
