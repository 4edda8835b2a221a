// swift-tools-version: 6.1
//
// Bus1: capability-based, zero-copy IPC for Linux. See README.md and
// ../shared/docs/ARCHITECTURE.md for the shape of the modules below.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Bus1",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Bus1", targets: ["Bus1"]),
        .library(name: "Bus1Coordinator", targets: ["Bus1Coordinator"]),
        // libbus1.so: the C API (Sources/CBus1API/include/bus1.h), for C, C++ and Python.
        .library(name: "bus1", type: .dynamic, targets: ["libbus1"]),
        // Building blocks, for Benchmarks/ and for tools that read the wire directly.
        .library(name: "Bus1Core", targets: ["Bus1Core"]),
        .executable(name: "bus1d", targets: ["bus1d"]),
        .executable(name: "bus1-demo", targets: ["bus1-demo"]),
        .executable(name: "bus1-order-check", targets: ["bus1-order-check"]),
        .executable(name: "bus1-bench", targets: ["bus1-bench"]),
        .executable(name: "shm-inspect", targets: ["shm-inspect"]),
        .executable(name: "bus1-profile", targets: ["bus1-profile"]),
        .executable(name: "bus1-poll-service", targets: ["bus1-poll-service"]),
        .executable(name: "bus1-example-pubsub", targets: ["bus1-example-pubsub"]),
        .executable(name: "bus1-example-rpc", targets: ["bus1-example-rpc"]),
        .executable(name: "bus1ctl", targets: ["bus1ctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // `swift package generate-documentation` (the DocC catalog in Sources/Bus1/Bus1.docc).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // bus1d's configuration file (TOML 1.0 through toml++); bus1d only.
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // The layout header: owns every shared byte and every control-socket message.
        .target(name: "CBus1Wire"),
        // The control protocol in Swift: the one codec of control datagrams, shared by
        // the runtime, the coordinator and shm-inspect.
        .target(name: "Bus1Wire", dependencies: ["CBus1Wire"], swiftSettings: strict),
        // C shim for what Swift cannot import from glibc/liburing (GNU names, macros, varargs).
        .target(name: "CBus1Linux", linkerSettings: [.linkedLibrary("uring")]),
        // Typed Swift platform layer: memfd, mappings, futex, io_uring, sockets, pidfd.
        .target(name: "Bus1Linux", dependencies: ["CBus1Linux"], swiftSettings: strict),
        // Shared-memory building blocks: validated views of the wire, rings, pool allocator.
        .target(name: "Bus1Core", dependencies: ["CBus1Wire", "Bus1Wire", "Bus1Linux"], swiftSettings: strict),
        // The public client library. Never links the coordinator. `Lifetimes`: a
        // payload is a `Span` that cannot outlive its message (as in swift-collections).
        .target(
            name: "Bus1",
            dependencies: ["Bus1Core", "Bus1Linux", "CBus1Wire",
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strict + [.enableExperimentalFeature("Lifetimes")]),
        // bus1.h, the C API, and libbus1, its implementation over `Bus1`: each function
        // `@c @implementation`, so the compiler checks it against the header.
        .target(name: "CBus1API"),
        .target(
            name: "libbus1", dependencies: ["Bus1", "Bus1Linux", "CBus1API"],
            swiftSettings: strict + [.enableExperimentalFeature("CImplementation")]),
        // The coordinator as a library: bus1d, and the embedded coordinator of tests and demos.
        .target(
            name: "Bus1Coordinator",
            dependencies: ["Bus1Core", "Bus1Linux", "CBus1Wire", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),

        .executableTarget(
            name: "bus1d", dependencies: ["Bus1Coordinator", "Bus1Linux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit")],
            path: "Tools/bus1d", exclude: ["systemd"], swiftSettings: strict),
        .executableTarget(
            name: "bus1-demo", dependencies: ["Bus1", "Bus1Coordinator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "Tools/bus1-demo", swiftSettings: strict),
        .executableTarget(
            name: "bus1-order-check", dependencies: ["Bus1", "Bus1Coordinator", "Bus1Linux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log")],
            path: "Tools/bus1-order-check", swiftSettings: strict),
        .executableTarget(
            name: "bus1-bench", dependencies: ["Bus1", "Bus1Core", "Bus1Coordinator", "Bus1Linux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "Tools/bus1-bench", swiftSettings: strict),
        // The workloads and the report behind Scripts/profile.sh (instructions per message
        // under callgrind).
        .executableTarget(
            name: "bus1-profile", dependencies: ["Bus1", "Bus1Coordinator", "Bus1Linux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log")],
            path: "Tools/bus1-profile", swiftSettings: strict),
        // An example service: Bus1 messages and stdin on one poll(2) event loop,
        // through the peer's readiness descriptor. Uses the public library only.
        .executableTarget(
            name: "bus1-poll-service", dependencies: ["Bus1", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/bus1-poll-service", swiftSettings: strict),
        // The examples a newcomer copies: a producer/consumer service on a topic, and
        // a request/reply service (README "Patterns"). Public API only.
        .executableTarget(
            name: "bus1-example-pubsub", dependencies: ["Bus1", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/bus1-example-pubsub", swiftSettings: strict),
        .executableTarget(
            name: "bus1-example-rpc", dependencies: ["Bus1", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/bus1-example-rpc", swiftSettings: strict),
        // The plain C twin of bus1-bench's ring baseline, to check the Swift ring against
        // (`bus1-bench baseline --compare-c`). Links nothing of the package.
        .executableTarget(name: "bus1-c-ring", path: "Tools/bus1-c-ring"),
        // Reads a live bus through the wire header, the control codec and the platform
        // layer only, never the runtime, so it can still decode a corrupt or mismatched segment.
        .executableTarget(
            name: "shm-inspect", dependencies: ["CBus1Wire", "Bus1Wire", "Bus1Linux",
                .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/shm-inspect", swiftSettings: strict),

        // Talks to the bus as a user does (like busctl or iox2): lists names, publishes
        // and subscribes to topics, calls and serves services. Uses the public library only
        // (and the platform layer for the release string).
        .executableTarget(
            name: "bus1ctl", dependencies: ["Bus1", "Bus1Linux", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/bus1ctl", swiftSettings: strict),

        // A peer process driven by the integration tests (producer, consumer, hostile peer).
        .executableTarget(
            name: "bus1-test-peer", dependencies: ["Bus1", "Bus1Core", "Bus1Linux", "CBus1Wire", "Bus1TestSupport"],
            path: "Tests/Bus1TestPeer", swiftSettings: strict),
        // Helpers shared by the test targets and the test peer (seeded randomness, fd counts,
        // polling a condition with a deadline, threads, memory). Links only the platform layer.
        .target(name: "Bus1TestSupport", dependencies: ["Bus1Linux"], path: "Tests/Bus1TestSupport", swiftSettings: strict),
        // What the integration suites share: child processes, the embedded-coordinator
        // fixture, another uid, tool builds, shm-inspect, daemon sockets, probes for skips.
        // Separate from Bus1TestSupport so the test peer never links the coordinator.
        .target(
            name: "Bus1IntegrationSupport",
            dependencies: ["Bus1", "Bus1Coordinator", "Bus1Core", "Bus1Linux", "CBus1Wire", "Bus1TestSupport"],
            path: "Tests/Bus1IntegrationSupport", swiftSettings: strict),
        // Every suite has a .timeLimit of 10 minutes or more: a hang must fail a test, slowness
        // must not. Swift Testing's clock runs from when a test is scheduled, also while it waits
        // behind the blocking multi-process tests for a thread of the pool (two on a 2-core
        // machine, where a whole run takes about 3 minutes), so a shorter limit fails at random.
        .testTarget(name: "Bus1CoreTests", dependencies: ["Bus1Core", "Bus1Linux", "CBus1Linux", "CBus1Wire", "Bus1TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "Bus1IntegrationTests",
            dependencies: ["Bus1", "Bus1Coordinator", "Bus1Core", "Bus1Linux", "CBus1Wire", "Bus1TestSupport", "Bus1IntegrationSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics")],
            swiftSettings: strict),
    ]
)
