import Bus1IntegrationSupport
import Glibc
import Testing

/// Closed channels are unmapped: a child opens and closes 10,000 channels (a
/// lookup maps one, the service's reset closes it) and its mapping count stays
/// flat. Before closed channels were unmapped, each one kept its ring and the
/// receiver's wake page mapped for the life of the peer: +20,000 mappings here.
/// Release binaries (the daemon and the test peer): what users run, and ~10 s
/// instead of a minute of a test thread.
@Suite("Channel churn", .timeLimit(.minutes(10)))
struct ChannelChurnTests {
    static var releaseBuilt: Bool { ToolBuild.release.isBuilt && access(ToolBuild.release.path("bus1-test-peer"), X_OK) == 0 }

    @Test("10,000 channels opened and closed: the mapping count stays flat",
          .enabled(if: releaseBuilt, ToolBuild.releaseMissing))
    func mappingsStayFlat() throws {
        let path = freshSocketPath("churn")
        let daemon = try ChildProcess("bus1d", ["--config", "/dev/null", "--address", path], build: .release, mergeStandardError: true)
        try #require(waitForSocket(path), "\(daemon.transcript)")
        let child = try ChildProcess("bus1-test-peer", ["churn", "address=\(path)", "count=10000"], build: .release)
        let line = try #require(child.awaitLine(prefix: "CHURN", timeoutSeconds: 240), "\(child.transcript)")
        let fields = Dictionary(uniqueKeysWithValues: line.split(separator: " ").dropFirst().map { field in
            let pair = field.split(separator: "=")
            return (String(pair[0]), Int(pair[1]) ?? -1)
        })
        #expect(fields["channels"] == 10_000)
        let before = try #require(fields["mapsBefore"]), after = try #require(fields["mapsAfter"])
        #expect(before > 0 && after <= before + 8, "mappings grew from \(before) to \(after) over 10,000 channels")
        #expect(child.finish() == .exited(0), "\(child.transcript)")
        kill(daemon.pid, SIGTERM)
        #expect(daemon.finish(timeoutSeconds: 30) == .exited(0), "\(daemon.transcript)")
    }
}
