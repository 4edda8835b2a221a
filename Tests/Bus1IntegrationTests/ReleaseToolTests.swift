import Testing

/// The tool checks of the other suites, run against the release binaries (what
/// users run): an optimiser-only crash fails here. `Scripts/test.sh`, and so CI,
/// builds them before `swift test`; without them the suite is skipped and says
/// why. Each test calls the same static check as its debug twin.
@Suite("Release binaries", .enabled(if: ToolBuild.release.isBuilt, ToolBuild.releaseMissing), .timeLimit(.minutes(5)))
struct ReleaseToolTests {
    @Test("shm-inspect: every subcommand, including watch, against a live bus")
    func shmInspectListings() throws { try ShmInspectTests.listings(.release) }

    @Test("shm-inspect: multicast receivers")
    func shmInspectMulticast() throws { try ShmInspectTests.multicast(.release) }

    @Test("shm-inspect: verify names corruption; no subcommand crashes on it")
    func shmInspectCorruption() throws { try ShmInspectTests.corruption(.release) }

    @Test("shm-inspect: every field family corrupted at 0, 2^40, 2^63, max and random; no crash, valid JSON, verify names it")
    func shmInspectCorruptFields() throws { try ShmInspectCorruptionTests.everyFieldFamily(.release) }

    @Test("shm-inspect: a sender's pool segments: listed, their slices found, verified")
    func shmInspectSegments() throws { try ShmInspectTests.segments(.release) }

    @Test("shm-inspect: bad arguments and a missing bus")
    func shmInspectBadArguments() throws { try ShmInspectTests.badArguments(.release) }

    @Test("bus1-bench latency")
    func benchLatency() throws { try BenchTests.latency(.release) }

    @Test("bus1-bench throughput")
    func benchThroughput() throws { try BenchTests.throughput(.release) }

    @Test("bus1-bench fanout")
    func benchFanout() throws { try BenchTests.fanout(.release) }

    @Test("bus1-bench baseline, CSV and SVG")
    func benchBaseline() throws { try BenchTests.baselineAndFormats(.release) }

    @Test("bus1d serves peers, refuses a second daemon, exits on SIGTERM")
    func daemonLifecycle() throws { try DaemonTests.lifecycle(.release) }

    @Test("bus1d --help")
    func daemonHelp() throws { try DaemonTests.help(.release) }

    @Test("bus1-order-check finds no violation", arguments: ["spin", "park", "busy"])
    func orderCheck(mode: String) throws { try OrderingTests.globalOrderHolds(.release, mode: mode) }

    @Test("bus1-demo, both phases", arguments: ["spin", "park", "busy"])
    func demo(mode: String) throws { try DemoTests.run(.release, mode: mode) }

    @Test("Nonsense options are refused at start", arguments: RefusedCommandLine.all)
    func refused(_ line: RefusedCommandLine) throws { try line.check(.release) }

    @Test("--version", arguments: ToolCommandLineTests.versionedTools)
    func version(tool: String) throws { try ToolCommandLineTests.version(.release, tool: tool) }

    @Test("bus1-bench --svg leaves a symlink alone")
    func svgNeverReplacesALink() throws { try ToolCommandLineTests.svgNeverReplacesALink(.release) }
}
