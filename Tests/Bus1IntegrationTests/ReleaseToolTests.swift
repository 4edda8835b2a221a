import Bus1IntegrationSupport
import Testing

/// The tool checks of the other suites, run against the release binaries (what
/// users run): an optimiser-only crash fails here. `Scripts/test.sh`, and so CI,
/// builds them before `swift test`; without them the suite is skipped and says
/// why. Each test calls the same check as its debug twin: the `…Checks`
/// namespace beside that twin's suite (``ShmInspectChecks``, ``BenchChecks``, …).
@Suite("Release binaries", .enabled(if: ToolBuild.release.isBuilt, ToolBuild.releaseMissing), .timeLimit(.minutes(15 * Soak.factor)))
struct ReleaseToolTests {
    @Test("shm-inspect: every subcommand, including watch, against a live bus")
    func shmInspectListings() throws { try ShmInspectChecks.listings(.release) }

    @Test("shm-inspect: multicast receivers")
    func shmInspectMulticast() throws { try ShmInspectChecks.multicast(.release) }

    @Test("shm-inspect: verify names corruption; no subcommand crashes on it")
    func shmInspectCorruption() throws { try ShmInspectChecks.corruption(.release) }

    @Test("shm-inspect: every field family corrupted at 0, 2^40, 2^63, max and random; no crash, valid JSON, verify names it")
    func shmInspectCorruptFields() throws { try ShmInspectCorruptionChecks.everyFieldFamily(.release) }

    @Test("shm-inspect: a sender's pool segments: listed, their slices found, verified")
    func shmInspectSegments() throws { try ShmInspectChecks.segments(.release) }

    @Test("shm-inspect: bad arguments and a missing bus")
    func shmInspectBadArguments() throws { try ShmInspectChecks.badArguments(.release) }

    @Test("bus1-poll-service: messages and stdin on one event loop")
    func pollService() throws { try PollServiceChecks.messagesAndInput(.release) }

    @Test("bus1-bench latency")
    func benchLatency() throws { try BenchChecks.latency(.release) }

    @Test("bus1-bench throughput")
    func benchThroughput() throws { try BenchChecks.throughput(.release) }

    @Test("bus1-bench fanout")
    func benchFanout() throws { try BenchChecks.fanout(.release) }

    @Test("bus1-bench async")
    func benchAsync() throws { try BenchChecks.asyncRows(.release) }

    @Test("bus1-bench patterns")
    func benchPatterns() throws { try BenchChecks.patternRows(.release) }

    @Test("bus1-bench control")
    func benchControl() throws { try BenchChecks.controlRows(.release) }

    @Test("bus1-example-rpc: a server and a client, every reply checked")
    func exampleRPC() throws { try ExampleChecks.requestReply(.release) }

    @Test("bus1-example-pubsub: a producer, a fast and a slow consumer, under each policy", arguments: ["block", "skip"])
    func examplePubSub(policy: String) throws { try ExampleChecks.producerConsumers(.release, policy: policy) }

    @Test("bus1-bench baseline, CSV and SVG")
    func benchBaseline() throws { try BenchChecks.baselineAndFormats(.release) }

    @Test("bus1-bench baseline --compare-c, and bus1-c-ring")
    func benchCompareC() throws { try BenchChecks.compareC(.release) }

    @Test("bus1d serves peers, refuses a second daemon, exits on SIGTERM")
    func daemonLifecycle() throws { try DaemonChecks.lifecycle(.release) }

    @Test("bus1d --help")
    func daemonHelp() throws { try DaemonChecks.help(.release) }

    @Test("bus1-order-check finds no violation", arguments: ["spin", "park", "busy"])
    func orderCheck(mode: String) throws { try OrderCheckChecks.globalOrderHolds(.release, mode: mode) }

    @Test("bus1-demo, both phases", arguments: ["spin", "park", "busy"])
    func demo(mode: String) throws { try DemoChecks.run(.release, mode: mode) }

    @Test("Nonsense options are refused at start", arguments: RefusedCommandLine.all)
    func refused(_ line: RefusedCommandLine) throws { try line.check(.release) }

    @Test("--version", arguments: ToolCommandLineChecks.versionedTools)
    func version(tool: String) throws { try ToolCommandLineChecks.version(.release, tool: tool) }

    @Test("bus1-bench --svg leaves a symlink alone")
    func svgNeverReplacesALink() throws { try ToolCommandLineChecks.svgNeverReplacesALink(.release) }
}
