import Glibc
import Testing

/// Which build of the package's executables a tool test runs.
///
/// Release builds are what users run, and the optimiser can break what a debug
/// build gets away with (`shm-inspect` once trapped on every command in release
/// only), so the tool tests run against both. `debug` is the build `swift test`
/// just made next to the test binary. `release` is `swift build -c release`'s
/// output beside it, which `Scripts/test.sh` (and so CI) always builds first; when
/// it is missing, the release suite is skipped with ``releaseMissing``.
package enum ToolBuild: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case debug
    case release

    /// Every executable product of the package, as the tests name them.
    package static let tools = ["bus1d", "bus1-demo", "bus1-order-check", "bus1-bench", "shm-inspect", "bus1-poll-service",
                                         "bus1-example-pubsub", "bus1-example-rpc", "bus1ctl"]

    /// The directory holding this build's executables.
    package var directory: String {
        switch self {
        case .debug:
            ChildProcess.buildDirectory
        case .release:
            String(ChildProcess.buildDirectory[..<ChildProcess.buildDirectory.lastIndex(of: "/")!]) + "/release"
        }
    }

    /// The absolute path of `tool` in this build.
    package func path(_ tool: String) -> String { directory + "/" + tool }

    /// Whether every tool of this build is there to run.
    package var isBuilt: Bool { Self.tools.allSatisfy { access(path($0), X_OK) == 0 } }

    /// Why the release suite did not run.
    package static let releaseMissing: Comment =
        "release binaries missing: run Scripts/test.sh, or swift build -c release before swift test"

    package var testDescription: String { "\(rawValue) build" }
}
