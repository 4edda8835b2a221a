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

    @Option(help: "Wait modes, comma-separated: busy, spin (spin-then-park), park-io_uring, park-futex.")
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

    func validate() throws {
        guard !parsedSizes.isEmpty, parsedSizes.allSatisfy({ $0 >= 1 && $0 <= 256 << 20 }) else {
            throw ValidationError("--sizes: 1 B ... 256 MiB, comma-separated")
        }
        guard !parsedModes.isEmpty, parsedModes.allSatisfy({ Bus1Mode.all.contains($0.name) }) else {
            throw ValidationError("--modes: \(Bus1Mode.all.joined(separator: ", "))")
        }
        guard iterations > 0, warmup >= 0 else { throw ValidationError("--iterations must be positive") }
        guard !(json && csv) else { throw ValidationError("--json and --csv exclude each other") }
        if cpus != nil && parsedCPUs.isEmpty { throw ValidationError("--cpus: e.g. 0,1") }
    }

    var parsedSizes: [Int] { sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    var parsedCPUs: [Int] { (cpus ?? "").split(separator: ",").compactMap { Int($0) } }
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

    /// Runs `body` with a bus address (an embedded coordinator unless --address),
    /// pinned if asked; prints the rows; writes the plot.
    func measure(title: String, _ body: (String, [Int]) throws -> [Row]) throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        signal(SIGPIPE, SIG_IGN)
        let cpuList = parsedCPUs
        try pin(cpuList.first)
        var embedded: EmbeddedCoordinator?
        if address == nil { embedded = try EmbeddedCoordinator.onPrivateSocket(named: "bench") }
        defer { embedded?.stop() }
        var rows = try body(address ?? embedded!.address, cpuList)
        progressDone()
        attachRatios(&rows)
        print(render(rows, as: format))
        if let svg {
            try percentileSVG(rows, title: title).write(toFile: svg, atomically: true, encoding: .utf8)
        }
    }
}

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1-bench",
        abstract: "Bus1 latency, throughput and fan-out, with raw baselines measured in the same run.",
        discussion: "Build with -c release. Every Bus1 row carries its ratio to the baseline of the same size measured in the same invocation.",
        subcommands: [Latency.self, Throughput.self, Fanout.self, BaselineCommand.self])

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
                case "baseline-shm-spin": try Baseline.echoShared(futex: false, settings: settings)
                case "baseline-futex": try Baseline.echoShared(futex: true, settings: settings)
                case "baseline-stream": try Baseline.echoStream(settings: settings)
                case "baseline-ring": try Baseline.drainRing(settings: settings)
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
    for size in common.parsedSizes {
        for baseline in mechanisms {
            progress("latency \(baseline.rawValue) \(sizeText(size))")
            let n = scaled(common.iterations, size: size)
            let histogram = try baseline.latency(size: size, iterations: n, warmup: min(common.warmup, n), cpus: cpus)
            rows.append(.latency("latency", baseline.rawValue, "-", size: size, histogram: histogram))
        }
    }
    return rows
}

/// The baselines' one-way rates for every size (futex has no one-way form).
func baselineThroughputRows(_ common: CommonOptions, cpus: [Int]) throws -> [Row] {
    var rows: [Row] = []
    for size in common.parsedSizes {
        let n = scaled(common.iterations, size: size)
        for baseline in Baseline.allCases {
            progress("throughput \(baseline.rawValue) \(sizeText(size))")
            guard let rate = try baseline.throughput(size: size, messages: n, cpus: cpus) else { continue }
            rows.append(.throughput(baseline.rawValue, "-", size: size, batch: nil, messages: n, seconds: Double(n) / rate))
        }
    }
    return rows
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
                    for size in common.parsedSizes {
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

        func run() throws {
            try common.measure(title: "Throughput") { address, cpus in
                var rows: [Row] = []
                for mode in common.runnableModes {
                    for size in common.parsedSizes {
                        let n = scaled(common.iterations, size: size)
                        for batchSize in batch > 0 ? [nil, batch] : [nil] {
                            progress("throughput bus1 \(mode.name) \(sizeText(size)) batch \(batchSize ?? 1)")
                            let rate = try Bus1Runs.throughput(address: address, mode: mode, size: size, messages: n,
                                                               batch: batchSize, cpus: cpus)
                            rows.append(.throughput("bus1", mode.name, size: size, batch: batchSize, messages: n, seconds: Double(n) / rate))
                        }
                    }
                }
                if !noBaseline { rows += try baselineThroughputRows(common, cpus: cpus) }
                return rows
            }
        }
    }

    struct Fanout: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One sender multicasting to N receiver processes: latency to the last receiver, multicasts/s.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Receiver counts, comma-separated.") var receivers: String = "1,2,4,8,16"

        func run() throws {
            let counts = receivers.split(separator: ",").compactMap { Int($0) }
            guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 && $0 <= 256 }) else { throw ValidationError("--receivers: 1...256") }
            try common.measure(title: "Fan-out latency (send → last receiver)") { address, cpus in
                var rows: [Row] = []
                for mode in common.runnableModes {
                    for size in common.parsedSizes {
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
                return rows
            }
        }
    }

    struct BaselineCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "baseline", abstract: "Only the raw mechanisms: shared-memory spin, futex, Unix socket, pipe (round trip and one way).")
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.measure(title: "Baselines: round trip") { _, cpus in
                try baselineLatencyRows(common, cpus: cpus) + baselineThroughputRows(common, cpus: cpus)
            }
        }
    }
}
