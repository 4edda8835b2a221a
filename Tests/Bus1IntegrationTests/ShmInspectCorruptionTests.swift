import Bus1IntegrationSupport
import Bus1TestSupport
import Foundation
import Glibc
import Testing

/// `shm-inspect` against memory a hostile peer corrupted: every field family of
/// every object it can write (clock page, its wake page, its pool header and
/// ledger, its channels' headers, indices and slots), each with 0, 2^40, 2^63,
/// `UInt64.max` and random bytes. Every subcommand must exit 0 (listings,
/// `watch`) or 1 (`verify`), never die of a signal or refuse a live bus; JSON must
/// parse; `verify` must name the corruption. Before the tool bounded what it
/// reads, `watch` asked for 42,949,673,008 bytes at `sub_tail` = 2^40 and `verify`
/// overflowed summing two channels at `sub_tail` = 2^63.
///
/// The corruption is real: a peer in this process writes through its own
/// writable mappings, then puts every word back, so its peers leave over
/// intact memory. The checks are ``ShmInspectCorruptionChecks``;
/// ``ReleaseToolTests`` runs them on the release build.
@Suite("shm-inspect on corrupt memory", .timeLimit(.minutes(10 * Soak.factor)))
struct ShmInspectCorruptionTests {
    /// `BUS1_SOAK=N`: the random test runs 25 × N rounds on every build.
    static let soak = Soak.requested ?? 0

    @Test("Every field family of every writable object, at 0, 2^40, 2^63, max and random: no crash, valid JSON, verify names it")
    func everyFieldFamily() throws { try ShmInspectCorruptionChecks.everyFieldFamily(.debug) }

    @Test("Random words anywhere in the attacker's objects (BUS1_SOAK=N: 25 × N rounds on both builds)")
    func randomCorruption() throws {
        let builds = Self.soak > 0 && ToolBuild.release.isBuilt ? ToolBuild.allCases : [.debug]
        try ShmInspectCorruptionChecks.randomCorruption(builds, rounds: Self.soak > 0 ? 25 * Self.soak : 3, seed: UInt64(Self.soak) &* 0x9E37 &+ 12)
    }
}

/// The corruption checks run against each build of `shm-inspect`:
/// ``ShmInspectCorruptionTests`` runs the debug binary, ``ReleaseToolTests`` the release one.
enum ShmInspectCorruptionChecks {
    static func everyFieldFamily(_ build: ToolBuild) throws {
        let target = try CorruptibleBus("corrupt-fields")
        defer { target.close() }
        let inspector = Inspector(build: build, address: target.bus.address)
        var random = SplitMix64(state: 0x5eed)
        let scribbler = MemoryScribbler()
        try check(inspector, target, scribbler, json: false, "healthy bus")
        for (i, value) in CorruptValue.allCases.enumerated() {
            target.corruptLiveFields(value, scribbler, &random)
            try check(inspector, target, scribbler, json: i % 2 == 0, "live fields = \(value)")
            scribbler.restore()
            target.corruptHeaders(value, scribbler, &random)
            try check(inspector, target, scribbler, json: i % 2 == 1, "headers = \(value)")
            scribbler.restore()
        }
        try check(inspector, target, scribbler, json: true, "restored bus")
    }

    static func randomCorruption(_ builds: [ToolBuild], rounds: Int, seed: UInt64) throws {
        let target = try CorruptibleBus("corrupt-random")
        defer { target.close() }
        var random = SplitMix64(state: seed)
        let scribbler = MemoryScribbler()
        for round in 0..<rounds {
            target.corruptRandomly(1 + Int(random.next() % 24), scribbler, &random)
            for build in builds {
                try check(Inspector(build: build, address: target.bus.address), target, scribbler, json: round % 2 == 0,
                          "seed \(seed) round \(round)")
            }
            scribbler.restore()
        }
    }

    /// Runs every subcommand against the bus as `scribbler` left it. A bus with
    /// nothing written must verify clean.
    static func check(_ inspector: Inspector, _ target: CorruptibleBus, _ scribbler: MemoryScribbler, json: Bool, _ state: String) throws {
        let context = "\(inspector.build), \(state): \(scribbler.log.prefix(12).joined(separator: ", "))"
        let format = json ? ["--json"] : []
        let attacker = "\(target.attacker.id)"
        for listing in [["peers"], ["nodes"], ["handles"], ["channels"], ["pool", attacker], ["slice", attacker, "\(target.sliceOffset)"]] {
            let (status, output) = try inspector.run(listing + format)
            #expect(status == .exited(0), "\(listing) \(context):\n\(output)")
            if json { #expect(isJSONObject(output), "\(listing) \(context): not JSON:\n\(output)") }
        }
        let (watchStatus, watch) = try inspector.run(["watch", "--count", "2", "--interval", "0.01"])
        #expect(watchStatus == .exited(0) && watch.contains("CHANNEL"), "watch \(context):\n\(watch)")

        let (status, output) = try inspector.run(["verify"] + format)
        let clean = scribbler.expected.isEmpty && scribbler.log.isEmpty
        #expect(clean ? status == .exited(0) : status == .exited(1) || (status == .exited(0) && scribbler.expected.isEmpty),
                "verify \(context):\n\(output)")
        let reported = json ? jsonViolations(output) : textViolations(output)
        #expect(reported != nil, "verify \(context): unreadable output:\n\(output)")
        for expected in scribbler.expected where !(reported ?? []).contains(where: { expected.matches(place: $0.place, check: $0.check) }) {
            Issue.record("verify \(context): no violation \(expected):\n\(output)")
        }
    }

    static func isJSONObject(_ text: String) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any]
    }

    /// `VIOLATION <place>: <problem> [<check>]` lines, then a count line (or the `ok:` line).
    static func textViolations(_ output: String) -> [(place: String, check: String)]? {
        let lines = output.split(separator: "\n")
        guard let last = lines.last, last.hasPrefix("ok: ") || last.hasSuffix("violation") || last.hasSuffix("violations") else { return nil }
        return lines.filter { $0.hasPrefix("VIOLATION ") }.compactMap { line in
            guard let colon = line.range(of: ": "), line.hasSuffix("]"), let open = line.lastIndex(of: "[") else { return nil }
            return (String(line[line.index(line.startIndex, offsetBy: 10)..<colon.lowerBound]), String(line[line.index(after: open)..<line.index(before: line.endIndex)]))
        }
    }

    static func jsonViolations(_ output: String) -> [(place: String, check: String)]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
              let violations = object["violations"] as? [[String: Any]] else { return nil }
        return violations.map { ($0["place"] as? String ?? "", $0["check"] as? String ?? "") }
    }
}
