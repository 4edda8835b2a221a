import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Foundation
import Glibc
import Testing

/// `bus1ctl` as a user runs it: real `bus1ctl` processes against a live `bus1d`
/// of the same build (the daemon binary, on a fresh socket per test: the bus a
/// user's bus1ctl talks to, not an embedded coordinator). Hosts and peers that a
/// test plays itself (a topic host publishing for `hz`, a host sending garbage)
/// connect to that daemon from this process. Every wait is for a line a tool
/// printed, a name to appear on the bus, or a process to exit.
@Suite("bus1ctl", .timeLimit(.minutes(10)))
struct BusCtlTests {
    @Test("Debug build", arguments: BusCtlCheck.allCases)
    func debug(_ check: BusCtlCheck) throws { try check.run(.debug) }

    /// What users run. Needs the release `bus1ctl` and `bus1d` only (`swift build
    /// -c release --product bus1ctl`, then `--product bus1d`); skipped with the reason otherwise.
    @Test("Release build", .enabled(if: BusCtlChecks.releaseBuilt, ToolBuild.releaseMissing), arguments: BusCtlCheck.allCases)
    func release(_ check: BusCtlCheck) throws { try check.run(.release) }
}

/// Each check, run against each build.
enum BusCtlCheck: CaseIterable, Sendable, CustomTestStringConvertible {
    case session, subscribeJSON, hz, escapes, garbageHost, badInput

    var testDescription: String {
        switch self {
        case .session: "subscribe + three publishes; serve --echo + call; list --json shows both names with their pids"
        case .subscribeJSON: "subscribe --json to a host in this process: sequence, ticket, sender, uid, pid, size, payload or payload_hex"
        case .hz: "hz --count 2 against a topic this process publishes to; hz hosting an idle topic"
        case .escapes: "A publisher cannot put an escape sequence on a subscriber's terminal, nor a name on list's"
        case .garbageHost: "A host sending garbage: the subscriber drops it, prints the good message, and exits 1 when the host leaves"
        case .badInput: "Bad input: exit 1 naming the missing service, topic or bus; exit 2 for usage errors"
        }
    }

    func run(_ build: ToolBuild) throws {
        switch self {
        case .session: try BusCtlChecks.session(build)
        case .subscribeJSON: try BusCtlChecks.subscribeJSON(build)
        case .hz: try BusCtlChecks.hz(build)
        case .escapes: try BusCtlChecks.escapes(build)
        case .garbageHost: try BusCtlChecks.garbageHost(build)
        case .badInput: try BusCtlChecks.badInput(build)
        }
    }
}

/// A `bus1d` of one build on a fresh socket; SIGTERMed and reaped in `deinit`.
final class LiveDaemon {
    let address: String
    let process: ChildProcess

    init(_ label: String, _ build: ToolBuild) throws {
        address = freshSocketPath(label)
        process = try ChildProcess("bus1d", ["--config", "/dev/null", "--address", address], build: build, mergeStandardError: true)
        try #require(process.awaitListening(), "\(process.transcript)")
    }

    deinit {
        process.signal(SIGTERM)
        let status = process.finish(timeoutSeconds: 30)
        #expect(status == .exited(0), "bus1d did not stop cleanly: \(process.transcript)")
    }

    /// A peer of this process on the daemon, parking when it waits.
    func connect() throws -> Peer {
        var options = PeerOptions(address: address)
        options.waitMode = .park
        return try Peer.connect(options: options)
    }

    /// Waits until `name` is published (by a bus1ctl that hosts or serves it).
    func awaitName(_ name: String, on observer: Peer) throws -> Bool {
        try waitUntil(timeoutSeconds: 30, pollMicroseconds: 5000) { try observer.publishedNames().contains { $0.name == name } }
    }
}

enum BusCtlChecks {
    static var releaseBuilt: Bool { ["bus1ctl", "bus1d"].allSatisfy { access(ToolBuild.release.path($0), X_OK) == 0 } }

    /// `bus1ctl ARGUMENTS` of `build` on `bus` (through $BUS1_ADDRESS).
    static func ctl(_ arguments: [String], _ bus: LiveDaemon, _ build: ToolBuild, mergeStandardError: Bool = false) throws -> ChildProcess {
        try ChildProcess("bus1ctl", arguments, build: build, environment: ["BUS1_ADDRESS": bus.address], mergeStandardError: mergeStandardError)
    }

    /// Runs `bus1ctl ARGUMENTS` to the end; its status and stdout lines.
    static func run(_ arguments: [String], _ bus: LiveDaemon, _ build: ToolBuild,
                    mergeStandardError: Bool = false) throws -> (status: Bus1Linux.ExitStatus, lines: [String], transcript: String) {
        let process = try ctl(arguments, bus, build, mergeStandardError: mergeStandardError)
        let status = process.finish(timeoutSeconds: 60)
        return (status, process.lines, process.transcript)
    }

    /// Parses one JSON value.
    static func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    /// The scenario of the README's example session.
    static func session(_ build: ToolBuild) throws {
        let bus = try LiveDaemon("ctl-session", build)
        let observer = try bus.connect()
        // Nobody hosts demo.topic: this subscriber hosts it.
        let subscriber = try ctl(["subscribe", "demo.topic", "--count", "3"], bus, build)
        let server = try ctl(["serve", "demo.echo", "--echo"], bus, build, mergeStandardError: true)
        #expect(server.awaitLine(containing: "serving demo.echo", timeoutSeconds: 30), "\(server.transcript)")
        #expect(try bus.awaitName("demo.topic", on: observer), "the subscriber never hosted demo.topic")

        // Both names, with the pids of the two processes.
        let list = try run(["list", "--json"], bus, build)
        #expect(list.status == .exited(0), "\(list.transcript)")
        let entries = try #require(try json(list.lines.joined(separator: "\n")) as? [[String: Any]], "\(list.transcript)")
        var pids: [String: Int32] = [:]
        for entry in entries {
            if let name = entry["name"] as? String, let pid = entry["pid"] as? NSNumber { pids[name] = pid.int32Value }
        }
        #expect(pids["demo.topic"] == subscriber.pid, "\(list.transcript)")
        #expect(pids["demo.echo"] == server.pid, "\(list.transcript)")
        #expect(entries.allSatisfy { ($0["command"] as? String) == "bus1ctl" && $0["peer"] is NSNumber && $0["uid"] is NSNumber },
                "\(list.transcript)")
        let table = try run(["list"], bus, build)
        #expect(table.status == .exited(0) && table.lines.first?.split(separator: " ") == ["NAME", "PEER", "PID", "UID", "COMMAND"],
                "\(table.transcript)")
        #expect(table.lines.contains { $0.hasPrefix("demo.echo ") && $0.contains(" \(server.pid) ") }, "\(table.transcript)")

        let call = try run(["call", "demo.echo", "ping"], bus, build)
        #expect(call.status == .exited(0) && call.lines == ["ping"], "\(call.transcript)")
        let jsonCall = try run(["call", "demo.echo", "--json", "ping", "pong"], bus, build)
        #expect(jsonCall.status == .exited(0), "\(jsonCall.transcript)")
        let reply = try #require(try json(jsonCall.lines.joined()) as? [String: Any], "\(jsonCall.transcript)")
        #expect(reply["payload"] as? String == "ping pong" && (reply["size"] as? NSNumber)?.intValue == 9, "\(jsonCall.transcript)")

        for _ in 0..<3 {
            let publish = try run(["publish", "demo.topic", "hello"], bus, build, mergeStandardError: true)
            #expect(publish.status == .exited(0) && publish.lines.isEmpty, "\(publish.transcript)")
        }
        #expect(subscriber.finish(timeoutSeconds: 60) == .exited(0), "\(subscriber.transcript)")
        #expect(subscriber.lines == ["hello", "hello", "hello"], "\(subscriber.transcript)")

        server.signal(SIGTERM)
        #expect(server.finish(timeoutSeconds: 30) == .exited(0), "\(server.transcript)")
        #expect(try waitUntil(timeoutSeconds: 30) { try observer.publishedNames().isEmpty }, "names left behind")
    }

    /// A subscriber of a host in this process: every field of its JSON lines.
    static func subscribeJSON(_ build: ToolBuild) throws {
        let bus = try LiveDaemon("ctl-json", build)
        let topic = try Topic(hosting: "demo.json", on: bus.connect())
        let subscriber = try ctl(["subscribe", "demo.json", "--json", "--count", "2"], bus, build)
        try topic.waitForSubscribers(1, timeout: .seconds(30))
        let first = try topic.publish(copying: Array("hello json".utf8))
        try topic.publish(copying: [0, 1, 2, 0xFF])
        #expect(subscriber.finish(timeoutSeconds: 60) == .exited(0), "\(subscriber.transcript)")
        let objects = try subscriber.lines.map { try #require(try json($0) as? [String: Any], "\(subscriber.transcript)") }
        try #require(objects.count == 2, "\(subscriber.transcript)")
        for (object, sequence) in zip(objects, [first.sequence, first.sequence + 1]) {
            #expect((object["sequence"] as? NSNumber)?.uint64Value == sequence, "\(subscriber.transcript)")
            #expect(((object["ticket"] as? NSNumber)?.uint64Value ?? 0) > 0, "\(subscriber.transcript)")
            #expect((object["sender"] as? NSNumber)?.uint64Value == topic.peer.id, "\(subscriber.transcript)")
            #expect((object["uid"] as? NSNumber)?.uint32Value == getuid(), "\(subscriber.transcript)")
            #expect((object["pid"] as? NSNumber)?.int32Value == getpid(), "\(subscriber.transcript)")
        }
        #expect(objects[0]["payload"] as? String == "hello json" && (objects[0]["size"] as? NSNumber)?.intValue == 10)
        #expect(objects[1]["payload_hex"] as? String == "000102ff" && objects[1]["payload"] == nil && (objects[1]["size"] as? NSNumber)?.intValue == 4)
    }

    /// `rate: 1234.5 msg/s  bandwidth: 1.2 MiB/s  messages: N  missed: M`: N, or nil if the line is not one.
    static func rateLine(_ line: String) -> UInt64? {
        let words = line.split(separator: " ", omittingEmptySubsequences: true)
        guard words.count == 10, words[0] == "rate:", Double(words[1]) != nil, words[2] == "msg/s", words[3] == "bandwidth:",
              Double(words[4]) != nil, ["B/s", "KiB/s", "MiB/s", "GiB/s"].contains(words[5]), words[6] == "messages:",
              words[8] == "missed:", UInt64(words[9]) != nil else { return nil }
        return UInt64(words[7])
    }

    /// Publishes `payload`, waiting up to 100 ms for a full subscriber; false if
    /// it timed out. (A function of its own: Swift 6.3.1's SIL verifier crashes on
    /// `catch .timedOut` inside a `while` loop.)
    static func publish(_ payload: [UInt8], on topic: Topic) throws(Bus1Error) -> Bool {
        do {
            try topic.publish(copying: payload, timeout: .milliseconds(100))
            return true
        } catch .timedOut {
            return false  // hz is behind (its ring is full): publish on once it read
        }
    }

    static func hz(_ build: ToolBuild) throws {
        let bus = try LiveDaemon("ctl-hz", build)
        let topic = try Topic(hosting: "demo.hz", on: bus.connect())
        let hz = try ctl(["hz", "demo.hz", "--count", "2", "--window", "0.2"], bus, build)
        try topic.waitForSubscribers(1, timeout: .seconds(30))
        let payload = [UInt8](repeating: 0x42, count: 256)
        var published = 0
        while hz.exitStatusIfEnded() == nil {  // publishes until hz has printed its two lines and left
            if try publish(payload, on: topic) { published += 1 }
        }
        #expect(hz.finish(timeoutSeconds: 60) == .exited(0), "\(hz.transcript)")
        let counts = hz.lines.map(rateLine)
        #expect(counts.count == 2 && counts.allSatisfy { $0 != nil }, "\(hz.transcript)")
        #expect((counts.last ?? nil).map { $0 > 0 && $0 <= UInt64(published) } == true, "published \(published): \(hz.transcript)")

        // Nobody hosts demo.idle: hz hosts it, and its clock ends the relay after one line.
        let idle = try run(["hz", "demo.idle", "--count", "1", "--window", "0.05"], bus, build)
        #expect(idle.status == .exited(0) && idle.lines == ["rate: 0.0 msg/s  bandwidth: 0.0 B/s  messages: 0  missed: 0"],
                "\(idle.transcript)")
    }

    /// No byte a terminal acts on reaches stdout: ESC, a C1 CSI, or a bidi override.
    static func shownSafely(_ lines: [String]) -> Bool {
        lines.allSatisfy { line in
            !line.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E || $0.value == 0xFFFD }
        }
    }

    static func escapes(_ build: ToolBuild) throws {
        let bus = try LiveDaemon("ctl-escape", build)
        let observer = try bus.connect()
        // Hosts it; runs until SIGTERM, so the viewer's messages (in its pool) stay readable.
        let host = try ctl(["subscribe", "demo.esc"], bus, build)
        #expect(try bus.awaitName("demo.esc", on: observer))
        let viewer = try ctl(["subscribe", "demo.esc", "--json", "--count", "3"], bus, build, mergeStandardError: true)
        #expect(viewer.awaitLine(containing: "subscribed to demo.esc", timeoutSeconds: 30), "\(viewer.transcript)")
        for text in ["\u{1b}[31mred", "\u{9b}31mred", "\u{202e}evil"] {
            let publish = try run(["publish", "demo.esc", text], bus, build, mergeStandardError: true)
            #expect(publish.status == .exited(0), "\(publish.transcript)")
        }
        #expect(viewer.finish(timeoutSeconds: 60) == .exited(0), "\(viewer.transcript)")
        host.signal(SIGTERM)
        #expect(host.finish(timeoutSeconds: 60) == .exited(0), "\(host.transcript)")
        #expect(host.lines == ["(hex) 1b5b33316d726564", "(hex) c29b33316d726564", "(hex) e280ae6576696c"], "\(host.transcript)")
        #expect(shownSafely(host.lines), "\(host.transcript)")
        let objects = try viewer.lines.filter { $0.hasPrefix("{") }.map { try #require(try json($0) as? [String: Any], "\(viewer.transcript)") }
        #expect(objects.map { $0["payload_hex"] as? String } == ["1b5b33316d726564", "c29b33316d726564", "e280ae6576696c"], "\(viewer.transcript)")
        #expect(objects.allSatisfy { ($0["pid"] as? NSNumber)?.int32Value == host.pid }, "the viewer's messages come from the hosting subscriber")
        #expect(shownSafely(viewer.lines), "\(viewer.transcript)")

        // A name is chosen by whoever publishes it.
        try observer.publish(try observer.createNode(), as: "evil\u{1b}]0;owned\u{07}name")
        let list = try run(["list"], bus, build)
        #expect(list.status == .exited(0) && shownSafely(list.lines), "\(list.transcript)")
        #expect(list.lines.contains { $0.hasPrefix("evil\\x1b]0;owned\\x07name ") }, "\(list.transcript)")
    }

    /// A pattern frame as the library writes it: `0x42315000 | kind`, detail, number, little-endian.
    static func frame(_ kind: UInt32, number: UInt64) -> [UInt8] {
        withUnsafeBytes(of: (0x4231_5000 | kind).littleEndian) { Array($0) } + [0, 0, 0, 0]
            + withUnsafeBytes(of: number.littleEndian) { Array($0) }
    }

    /// This process plays the topic's host: it welcomes the subscriber, sends it
    /// garbage, then one good message, then leaves.
    static func garbageHost(_ build: ToolBuild) throws {
        let bus = try LiveDaemon("ctl-garbage", build)
        let host = try bus.connect()
        let node = try host.createNode()
        try host.publish(node, as: "demo.garbage")
        let subscriber = try ctl(["subscribe", "demo.garbage", "--json", "--count", "5"], bus, build, mergeStandardError: true)
        var inbox: Handle?
        while inbox == nil {
            let message = try host.receive(timeout: .seconds(30))
            if message.kind == .data && message.node == node { inbox = message.handles.first }
        }
        let subscriberNode = try #require(inbox)
        let (subscribed, topicData, reply): (UInt32, UInt32, UInt32) = (3, 1, 7)
        var random = SplitMix64(state: 0xB051C71)
        for payload in [
            frame(subscribed, number: 1),                          // the welcome: the first sequence is 1
            [1, 2, 3],                                             // shorter than a frame
            (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) },  // no frame at all
            frame(0xEE, number: 1) + Array("unknown kind".utf8),
            frame(reply, number: 1) + Array("a reply, not a topic message".utf8),
            frame(topicData, number: 0) + Array("sequence going backwards".utf8),
            frame(topicData, number: 1) + Array("after garbage".utf8),
        ] {
            try host.send(copying: payload, to: subscriberNode, wait: .park)
        }
        let line = try #require(subscriber.awaitLine(prefix: "{", timeoutSeconds: 30), "\(subscriber.transcript)")
        let object = try #require(try json(line) as? [String: Any], "\(subscriber.transcript)")
        #expect(object["payload"] as? String == "after garbage" && (object["sequence"] as? NSNumber)?.intValue == 1, "\(subscriber.transcript)")
        host.disconnect()  // the host leaves: the subscription ends
        #expect(subscriber.finish(timeoutSeconds: 60) == .exited(1), "\(subscriber.transcript)")
        #expect(subscriber.lines.filter { $0.hasPrefix("{") }.count == 1, "\(subscriber.transcript)")
        #expect(subscriber.lines.last == "bus1ctl: subscription to demo.garbage ended: the topic's host left", "\(subscriber.transcript)")
    }

    static func badInput(_ build: ToolBuild) throws {
        let bus = try LiveDaemon("ctl-bad", build)
        for (arguments, status, message) in [
            (["call", "nosuch.service", "x", "--timeout", "0.2"], 1, "bus1ctl: no service nosuch.service on the bus at \(bus.address)"),
            (["publish", "nosuch.topic", "x", "--timeout", "0.2"], 1, "bus1ctl: no topic nosuch.topic on the bus at \(bus.address)"),
            (["--bus", "/nonexistent/socket", "list"], 1, "bus1ctl: no bus at /nonexistent/socket"),
            (["list", "--bus", "/nonexistent/socket"], 1, "bus1ctl: no bus at /nonexistent/socket"),
            (["publish"], 2, "Error: Missing expected argument '<topic>'"),
            (["publish", "demo.x"], 2, "Error: no message"),
            (["serve", "x"], 2, "Error: only --echo exists for now"),
            (["subscribe", "demo.x", "--count", "0"], 2, "Error: --count: at least 1 message"),
            (["hz", "demo.x", "--window", "1e300"], 2, "Error: --window: 0.01 ... 3600 seconds"),
            (["call", "demo.x", "--timeout", "nan"], 2, "Error: --timeout: 0.001 ... 86400 seconds"),
            (["--bus", "", "list"], 2, "Error: --bus: a socket path"),
            (["frobnicate"], 2, "Error: "),
        ] as [([String], Int32, String)] {
            let result = try run(arguments, bus, build, mergeStandardError: true)
            #expect(result.status == .exited(status), "\(result.transcript)")
            #expect(result.lines.contains { $0.hasPrefix(message) }, "\(result.transcript)")
        }
        let served = try ctl(["serve", "demo.taken", "--echo"], bus, build, mergeStandardError: true)
        #expect(served.awaitLine(containing: "serving demo.taken", timeoutSeconds: 30), "\(served.transcript)")
        let second = try run(["serve", "demo.taken", "--echo"], bus, build, mergeStandardError: true)
        #expect(second.status == .exited(1) && second.lines == ["bus1ctl: the name demo.taken is taken on the bus at \(bus.address)"],
                "\(second.transcript)")
    }
}
