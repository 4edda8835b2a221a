import Bus1IntegrationSupport
import Foundation
import Glibc
import Testing

/// The instruction profile (README "Instruction profile"): `bus1-profile run`
/// passes its messages without valgrind, `bus1-profile report` turns two callgrind
/// outputs into the documented per-message lines, and, where valgrind is
/// installed, `Scripts/profile.sh` runs end to end on a tiny message count.
/// Nothing here judges the numbers: only that they are there and parse.
@Suite("Instruction profile", .timeLimit(.minutes(10)))
struct ProfileTests {
    /// `Scripts/profile.sh` of this checkout, found from this file's path.
    static let script: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/Bus1IntegrationTests/ProfileTests.swift
        return parts.joined(separator: "/") + "/Scripts/profile.sh"
    }()

    /// Where valgrind is, if it is on PATH.
    static let valgrind: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/valgrind" }.first { access($0, X_OK) == 0 }
    }()

    /// The `key=value` pairs of `bus1-profile run`'s one line.
    static func pairs(_ line: String) -> [String: String] {
        Dictionary(line.split(separator: " ").compactMap { item -> (String, String)? in
            guard let equals = item.firstIndex(of: "=") else { return nil }
            return (String(item[..<equals]), String(item[item.index(after: equals)...]))
        }, uniquingKeysWith: { $1 })
    }

    /// The number after `prefix` on the line that starts with it.
    static func number(_ prefix: String, in lines: [String]) -> Double? {
        lines.first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count).split(separator: " ").first ?? "") }
    }

    /// The rows of the first function table in `lines`: from below its header
    /// (`excl incl function`) while a row starts with a number.
    static func table(_ lines: some Collection<String>) -> [String] {
        Array(lines.drop { !$0.hasSuffix("incl  function") }.dropFirst().prefix { $0.split(separator: " ").first.flatMap { Double($0) } != nil })
    }

    @Test("run: each path passes its messages and prints one key=value line", arguments: ["round-trip", "batch"])
    func run(path: String) throws {
        let child = try ChildProcess("bus1-profile", ["run", "--path", path, "--messages", "2048"], mergeStandardError: true)
        #expect(child.finish(timeoutSeconds: 120) == .exited(0), "\(child.transcript)")
        let line = try #require(child.lines.last { $0.hasPrefix("path=") }, "\(child.transcript)")
        let fields = Self.pairs(line)
        #expect(fields["path"] == path)
        #expect(fields["messages"] == "2048")
        #expect(fields["size"] == "64")
        #expect(fields["batch"] == (path == "batch" ? "64" : "1"))
        #expect(fields["symbol"] == (path == "batch" ? "bus1_profile_batches" : "bus1_profile_round_trips"))
        #expect((fields["ns-per-message"].flatMap(Double.init) ?? 0) > 0, "\(line)")
    }

    @Test("run refuses counts the path cannot pass whole")
    func refusals() throws {
        for arguments in [["--path", "round-trip", "--messages", "3"], ["--path", "batch", "--messages", "100"], ["--size", "0"]] {
            let child = try ChildProcess("bus1-profile", ["run"] + arguments, mergeStandardError: true)
            #expect(child.finish(timeoutSeconds: 60) == .exited(64), "\(arguments): \(child.transcript)")
        }
    }

    @Test("report: per-message cost, syscalls and top functions from two callgrind outputs")
    func report() throws {
        // Two outputs in callgrind's format (compressed names, relative positions,
        // a call's inclusive cost line): 100 and 300 messages.
        let small = """
            # callgrind format
            version: 1
            creator: callgrind-3.19.0
            positions: line
            events: Ir sysCount
            summary: 1500 100

            ob=(1) /bus1-profile
            fl=(1) Peer.swift
            fn=(1) $s4Bus14PeerC7trySend
            5 600
            +2 400
            cfn=(2) memcpy
            calls=100 0
            7 300
            fn=(2)
            0 300
            fn=(3) clock_gettime@@GLIBC_2.17
            0 200 100

            """
        let large = """
            # callgrind format
            version: 1
            creator: callgrind-3.19.0
            positions: line
            events: Ir sysCount
            summary: 4600 500

            ob=(1) /bus1-profile
            fl=(1) Peer.swift
            fn=(1) $s4Bus14PeerC7trySend
            5 1800
            cfn=(2) memcpy
            calls=300 0
            7 900
            fn=(2)
            0 900
            fn=(3) clock_gettime@@GLIBC_2.17
            0 600 300
            fn=(4) write
            0 100 200
            fn=(1)
            +2 1200

            """
        let directory = NSTemporaryDirectory() + "bus1-profile-report-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try small.write(toFile: directory + "/small.out", atomically: false, encoding: .utf8)
        try large.write(toFile: directory + "/large.out", atomically: false, encoding: .utf8)

        let child = try ChildProcess("bus1-profile", ["report", "--path", "round-trip", "--top", "3",
                                                      "--small", directory + "/small.out", "--small-messages", "100",
                                                      "--large", directory + "/large.out", "--large-messages", "300"],
                                     mergeStandardError: true)
        #expect(child.finish(timeoutSeconds: 60) == .exited(0), "\(child.transcript)")
        let lines = child.lines
        #expect(Self.number("instructions/message: ", in: lines) == 15.5, "\(child.transcript)")  // (4600 - 1500) / 200
        #expect(Self.number("instructions/round-trip: ", in: lines) == 31.0)
        #expect(Self.number("syscalls/message: ", in: lines) == 1.0)  // write's, not clock_gettime's
        #expect(Self.number("vdso-calls/message: ", in: lines) == 1.0)
        #expect(Self.number("once per run: ", in: lines) == -50)  // 1500 - 100 × 15.5
        let table = Self.table(lines).map { $0.split(separator: " ").map(String.init) }
        #expect(table.map { $0.last ?? "" } == ["$s4Bus14PeerC7trySend", "memcpy", "clock_gettime@@GLIBC_2.17"], "\(child.transcript)")
        #expect(table.first?.prefix(2) == ["10.0", "13.0"])  // exclusive 2000 / 200, inclusive (2000 + 600) / 200

        let broken = try ChildProcess("bus1-profile", ["report", "--small", directory + "/small.out", "--small-messages", "100",
                                                       "--large", "/dev/null", "--large-messages", "300"], mergeStandardError: true)
        #expect(broken.finish(timeoutSeconds: 60) != .exited(0), "not a callgrind file: \(broken.transcript)")
    }

    @Test("Scripts/profile.sh: instructions per message for both paths under callgrind",
          .enabled(if: valgrind != nil, "needs valgrind (Scripts/setup.sh installs it)"))
    func script() throws {
        // The debug binary `swift test` just built (a release one beside it may be stale):
        // the numbers mean nothing here, only the format. The script strips its debug
        // info (valgrind 3.19 cannot read DWARF 5) and builds nothing.
        let child = try ChildProcess("/bin/bash", [Self.script, "--binary", ToolBuild.debug.path("bus1-profile"),
                                                   "--messages", "512", "--top", "5"],
                                     mergeStandardError: true)
        #expect(child.finish(timeoutSeconds: 300) == .exited(0), "\(child.transcript)")
        let lines = child.lines
        #expect(lines.first?.hasPrefix("Bus1 instruction profile at ") == true, "\(child.transcript)")
        for path in ["round-trip", "batch"] {
            let section = Array(lines.drop { !$0.hasPrefix("== \(path):") })
            #expect(section.count > 1, "no \(path) section: \(child.transcript)")
            #expect(section.dropFirst().first == "callgrind runs of 512 and 1024 messages; per message = difference ÷ 512")
            let perMessage = try #require(Self.number("instructions/message: ", in: section), "\(child.transcript)")
            #expect(perMessage > 0 && perMessage < 1_000_000)
            #expect(Self.number(path == "batch" ? "instructions/batch: " : "instructions/round-trip: ", in: section) != nil)
            #expect(Self.number("syscalls/message: ", in: section) != nil)
            let table = Self.table(section)
            #expect(table.count == 5, "\(child.transcript)")
        }
    }
}
