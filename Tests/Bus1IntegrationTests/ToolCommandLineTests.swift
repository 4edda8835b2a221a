import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// A command line a tool must refuse at start (in `validate()`, before it attaches,
/// spawns or pins anything), and what it must say.
struct RefusedCommandLine: Sendable, CustomTestStringConvertible {
    let tool: String
    let arguments: [String]
    /// A part of the error message.
    let message: String

    init(_ tool: String, _ arguments: [String], _ message: String) {
        self.tool = tool
        self.arguments = arguments
        self.message = message
    }

    /// `shm-inspect` documents exit status 2 for "called wrongly"; the other tools
    /// keep ArgumentParser's `EX_USAGE` (64).
    var status: Int32 { tool == "shm-inspect" ? 2 : 64 }

    var testDescription: String { ([tool] + arguments).joined(separator: " ") }

    static let all: [RefusedCommandLine] = [
        .init("shm-inspect", ["watch", "--interval", "1e300"], "--interval: 0.01 ... 3600 seconds"),
        .init("shm-inspect", ["watch", "--interval", "nan"], "--interval: 0.01 ... 3600 seconds"),
        .init("shm-inspect", ["watch", "--interval", "0"], "--interval: 0.01 ... 3600 seconds"),
        .init("shm-inspect", ["watch", "--count", "0"], "--count: at least 1 frame"),
        .init("shm-inspect", ["peers", "--bus", ""], "--bus: a socket path"),
        .init("shm-inspect", ["slice", "1", "zz"], "offset zz is not a number"),
        .init("shm-inspect", ["slice", "1", "16", "--length", "0"], "--length: 1 ... 1048576 bytes"),
        .init("shm-inspect", ["slice", "1", "16", "--length", "2000000"], "--length: 1 ... 1048576 bytes"),

        .init("bus1-bench", ["latency", "--cpus", "0"], "--cpus: at least two distinct CPU numbers"),
        .init("bus1-bench", ["latency", "--cpus", "0,0"], "--cpus: at least two distinct CPU numbers"),
        .init("bus1-bench", ["latency", "--cpus", "0,4096"], "--cpus: CPU 4096 is offline, absent or not allowed"),
        .init("bus1-bench", ["latency", "--cpus", "0,x"], "--cpus: at least two distinct CPU numbers"),
        .init("bus1-bench", ["latency", "--sizes", "64,abc"], "--sizes: 1 ... 268435456 bytes"),
        .init("bus1-bench", ["latency", "--sizes", "0"], "--sizes: 1 ... 268435456 bytes"),
        .init("bus1-bench", ["latency", "--sizes", "1073741824"], "--sizes: 1 ... 268435456 bytes"),
        .init("bus1-bench", ["latency", "--modes", "turbo"], "--modes: busy, spin"),
        .init("bus1-bench", ["latency", "--iterations", "0"], "--iterations: 1 ... 1000000000"),
        .init("bus1-bench", ["latency", "--warmup=-1"], "--warmup: 0 ... 1000000000"),
        .init("bus1-bench", ["control", "--connects", "0"], "--connects: 1 ... 1000000"),
        .init("bus1-bench", ["control", "--rounds", "0"], "--rounds: 1 ... 10000000"),
        .init("bus1-bench", ["control", "--clients", "1,65"], "--clients: 1 ... 64, comma-separated"),
        .init("bus1-bench", ["control", "--clients", "x"], "--clients: 1 ... 64, comma-separated"),
        .init("bus1-bench", ["latency", "--address", ""], "--address: a socket path"),
        .init("bus1-bench", ["latency", "--json", "--csv"], "--json and --csv exclude each other"),
        .init("bus1-bench", ["baseline", "--svg", "/tmp"], "--svg: /tmp exists and is not a regular file"),
        .init("bus1-bench", ["throughput", "--batch=-1"], "--batch: 0 ... 4096"),
        .init("bus1-bench", ["async", "--rounds", "0"], "--rounds: 1 ... 1000"),
        .init("bus1-bench", ["fanout", "--receivers", "0"], "--receivers: 1 ... 256"),
        .init("bus1-bench", ["fanout", "--receivers", "1,300"], "--receivers: 1 ... 256"),

        .init("bus1-order-check", ["--multicast-percent", "250"], "--multicast-percent: 0 ... 100"),
        .init("bus1-order-check", ["--senders", "0"], "--senders and --receivers: 1 ... 64"),
        .init("bus1-order-check", ["--receivers", "65"], "--senders and --receivers: 1 ... 64"),
        .init("bus1-order-check", ["--messages", "0"], "--messages: 1 ..."),
        .init("bus1-order-check", ["--stall-timeout-ms", "0"], "--stall-timeout-ms: 1 ... 3600000"),
        .init("bus1-order-check", ["--mode", "fast"], "The value 'fast' is invalid for '--mode"),
        .init("bus1-order-check", ["--ordering", "none"], "The value 'none' is invalid for '--ordering"),
        .init("bus1-order-check", ["--role", "sender"], "a sender needs --index, --address and --log-directory"),

        .init("bus1-demo", ["--size", "1"], "--size: 2 ... 268435456 bytes"),
        .init("bus1-demo", ["--size", "300000000"], "--size: 2 ... 268435456 bytes"),
        .init("bus1-demo", ["--messages", "0"], "--messages and --round-trips: 1 ..."),
        .init("bus1-demo", ["--round-trips", "0"], "--messages and --round-trips: 1 ..."),
        .init("bus1-demo", ["--mode", "fast"], "The value 'fast' is invalid for '--mode"),
        .init("bus1-demo", ["--address", ""], "--address: a socket path"),
        .init("bus1-demo", ["--address", "/tmp/nowhere/bus", "--ordering", "fifo"], "--ordering sets the embedded coordinator's"),
        .init("bus1-demo", ["--role", "consumer"], "--role: producer, or consumer with --address"),
    ]

    /// Runs the line with `build`'s binary: it must exit at once with ``status``
    /// and say ``message``.
    func check(_ build: ToolBuild) throws {
        let process = try ChildProcess(tool, arguments, build: build, mergeStandardError: true)
        #expect(process.finish(timeoutSeconds: 60) == .exited(status), "\(process.transcript)")
        #expect(process.lines.contains { $0.hasPrefix("Error: ") && $0.contains(message) }, "\(process.transcript)")
    }
}

/// What every tool's command line promises, checked on the built binaries:
/// nonsense is refused at start with a clear message, `--version` says the
/// release, and no tool removes a file it did not create.
@Suite("Tool command lines", .timeLimit(.minutes(10)))
struct ToolCommandLineTests {
    @Test("Nonsense options are refused at start with a clear message", arguments: RefusedCommandLine.all)
    func refused(_ line: RefusedCommandLine) throws { try line.check(.debug) }

    @Test("--version prints the Bus1 release", arguments: ToolCommandLineChecks.versionedTools)
    func version(tool: String) throws { try ToolCommandLineChecks.version(.debug, tool: tool) }

    @Test("bus1-bench --svg refuses a symlink and leaves it and its target alone")
    func svgNeverReplacesALink() throws { try ToolCommandLineChecks.svgNeverReplacesALink(.debug) }
}

/// The command-line checks run against each build: ``ToolCommandLineTests`` runs
/// the debug binaries, ``ReleaseToolTests`` the release ones.
enum ToolCommandLineChecks {
    /// The tools whose `--version` these checks own (bus1d's is tested with the daemon).
    static let versionedTools = ["shm-inspect", "bus1-bench", "bus1-order-check", "bus1-demo", "bus1ctl"]

    static func version(_ build: ToolBuild, tool: String) throws {
        let process = try ChildProcess(tool, ["--version"], build: build, mergeStandardError: true)
        #expect(process.finish(timeoutSeconds: 60) == .exited(0), "\(process.transcript)")
        #expect(process.lines == [Bus1Version.string], "\(process.transcript)")
    }

    static func svgNeverReplacesALink(_ build: ToolBuild) throws {
        var template = Array("/tmp/bus1-svg-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        let target = directory + "/kept", link = directory + "/plot.svg"
        defer { unlink(link); unlink(target); rmdir(directory) }
        let file = try #require(fopen(target, "w"))
        fputs("kept\n", file)
        fclose(file)
        #expect(symlink(target, link) == 0)
        try RefusedCommandLine("bus1-bench", ["baseline", "--svg", link], "--svg: \(link) exists and is not a regular file").check(build)
        var status = stat()
        #expect(lstat(link, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK, "the link is still there")
        #expect(stat(target, &status) == 0 && status.st_size == 5, "the target is untouched")
    }
}
