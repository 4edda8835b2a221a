import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Glibc
import Testing

/// Topics and request/reply, each with real processes on a real bus: the host
/// or the client in this process, the subscribers and services as test peers
/// (`topicsub`, `echoservice`, `deafservice`).
@Suite("Topics and request/reply", .timeLimit(.minutes(10)))
struct PatternTests {
    /// A topic payload: the sequence number it should arrive with.
    static func numbered(_ sequence: UInt64) -> [UInt8] { withUnsafeBytes(of: sequence) { Array($0) } }
    static let end = Array("end".utf8)

    /// Starts subscriber processes (one per entry of `settings`) and serves
    /// `topic` until all of them are in.
    func subscribers(_ bus: BusFixture, _ topic: Topic, _ settings: [[String]]) throws -> [ChildProcess] {
        let children = try settings.map { extra in
            try ChildProcess("bus1-test-peer", ["topicsub", "address=\(bus.address)", "topic=\(topic.name)"] + extra)
        }
        try topic.waitForSubscribers(settings.count, timeout: .seconds(30))
        for child in children { #expect(child.awaitLine(prefix: "SUBSCRIBED") != nil, "\(child.transcript)") }
        return children
    }

    /// Serves the topic until every slice it sent came back (its subscribers
    /// released everything) but the `kept` ones of its history, or 20 s passed;
    /// returns the slices in use then.
    func awaitSlicesBack(_ topic: Topic, kept: Int = 0) throws -> Int {
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while true {
            try topic.serve()
            let inUse = topic.peer.currentStatistics.slicesInUse
            if inUse <= kept || monotonicNanoseconds() > deadline { return inUse }
            usleep(1000)
        }
    }

    @Test("Three subscriber processes, one SIGKILLed mid-stream: the other two get every message in order, the publisher sees no error, and its slices come back")
    func subscriberKilledMidStream() throws {
        let bus = try BusFixture("topic-kill")
        let topic = try Topic(hosting: "demo.kill", on: bus.connect(ringCapacity: 64))
        let subscribers = try subscribers(bus, topic, Array(repeating: ["ring=64"], count: 3))
        let count: UInt64 = 4000
        for sequence in 1...count {
            if sequence == count / 2 {
                #expect(subscribers[2].awaitLine(prefix: "PROGRESS") != nil, "the victim got nothing before the kill")
                kill(subscribers[2].pid, SIGKILL)
            }
            let receipt = try topic.publish(copying: Self.numbered(sequence))  // never throws for the dead one
            #expect(receipt.sequence == sequence)
        }
        try topic.publish(copying: Self.end)
        for survivor in subscribers[..<2] {
            let line = survivor.awaitLine(prefix: "OK")
            #expect(survivor.finish() == .exited(0), "\(survivor.transcript)")
            #expect(numberField(line, "received") == count && numberField(line, "missed") == 0
                    && numberField(line, "first") == 1 && numberField(line, "last") == count, "\(survivor.transcript)")
        }
        #expect(subscribers[2].finish() == .signaled(SIGKILL))
        #expect(try awaitSlicesBack(topic) == 0, "the dead subscriber's slices never came back")
        // The survivors exited too: once the host has served their departures, the set is empty.
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while topic.subscriberCount > 0 && monotonicNanoseconds() < deadline {
            try topic.serve()
            usleep(1000)
        }
        #expect(topic.subscriberCount == 0 && topic.statistics.left == 3)
    }

    @Test("A slow subscriber under the skip policy: the fast one is not held back, and the slow one reports exactly how many it missed")
    func skipPolicy() throws {
        let bus = try BusFixture("topic-skip")
        let topic = try Topic(hosting: "demo.skip", on: bus.connect(), options: .init(whenFull: .skip))
        let children = try subscribers(bus, topic, [["ring=4096"], ["ring=16", "delay-us=500"]])
        let fast = children[0], slow = children[1]
        let count: UInt64 = 2000
        let parksBefore = topic.peer.currentStatistics.parks
        for sequence in 1...count { try topic.publish(copying: Self.numbered(sequence)) }
        // Not held back: the publisher never waited, and the fast subscriber had room for everything.
        #expect(topic.peer.currentStatistics.parks == parksBefore && topic.peer.currentStatistics.creditWaits == 0)
        #expect(topic.statistics.skipped > 0, "the slow subscriber was never skipped: the test did not test anything")
        // Once the slow one caught up, a last message reaches both: every gap before it is counted.
        #expect(try awaitSlicesBack(topic) == 0)
        try topic.publish(copying: Self.end)
        let fastLine = fast.awaitLine(prefix: "OK"), slowLine = slow.awaitLine(prefix: "OK")
        #expect(fast.finish() == .exited(0) && slow.finish() == .exited(0), "\(fast.transcript)\n\(slow.transcript)")
        #expect(numberField(fastLine, "received") == count && numberField(fastLine, "missed") == 0, "\(fast.transcript)")
        let received = numberField(slowLine, "received") ?? 0, missed = numberField(slowLine, "missed") ?? 0
        #expect(received + missed == count, "\(slow.transcript)")
        #expect(missed == topic.statistics.skipped, "the slow subscriber counted \(missed), the host skipped \(topic.statistics.skipped)")
    }

    @Test("A late subscriber with history 8 gets the last 8 messages, then live ones, in order")
    func history() throws {
        let bus = try BusFixture("topic-history")
        let topic = try Topic(hosting: "demo.history", on: bus.connect(), options: .init(history: 8))
        for sequence in 1...UInt64(20) { try topic.publish(copying: Self.numbered(sequence)) }
        let late = try ChildProcess("bus1-test-peer", ["topicsub", "address=\(bus.address)", "topic=demo.history", "trace=1"])
        try topic.waitForSubscribers(1, timeout: .seconds(20))
        #expect(late.awaitLine(prefix: "SUBSCRIBED") != nil, "\(late.transcript)")
        for sequence in 21...UInt64(25) { try topic.publish(copying: Self.numbered(sequence)) }
        try topic.publish(copying: Self.end)
        let line = late.awaitLine(prefix: "OK")
        #expect(late.finish() == .exited(0), "\(late.transcript)")
        let sequences = late.lines.filter { $0.hasPrefix("SEQ ") }.compactMap { UInt64($0.dropFirst(4)) }
        #expect(sequences == Array(13...25), "\(late.transcript)")
        #expect(numberField(line, "missed") == 0)
        // The history's slices are still the host's: nothing else is in use.
        #expect(try awaitSlicesBack(topic, kept: 8) == 8 && topic.statistics.delivered == 8 + 5 + 1)
    }

    @Test("Under the disconnect policy a subscriber whose ring is full is dropped, and learns it was")
    func disconnectPolicy() throws {
        let bus = try BusFixture("topic-drop")
        let topic = try Topic(hosting: "demo.drop", on: bus.connect(), options: .init(whenFull: .disconnect))
        let children = try subscribers(bus, topic, [["ring=4", "delay-us=200000"], ["ring=4096"]])
        for sequence in 1...UInt64(100) { try topic.publish(copying: Self.numbered(sequence)) }
        #expect(topic.statistics.dropped == 1 && topic.subscriberCount == 1)  // a ring of 4 at 5 messages/s cannot hold 100
        // Dropping closed the channel: the slices the dropped one held came back unread, at once.
        #expect(topic.peer.currentStatistics.messagesAbandoned > 0)
        try topic.publish(copying: Self.end)
        let dropped = children[0], kept = children[1]
        #expect(dropped.finish() == .exited(1) && dropped.transcript.contains("the host dropped this subscriber"), "\(dropped.transcript)")
        let line = kept.awaitLine(prefix: "OK")
        #expect(kept.finish() == .exited(0) && numberField(line, "received") == 100, "\(kept.transcript)")
    }

    @Test("A subscriber that unsubscribes leaves the set; the others and the host go on")
    func unsubscribe() throws {
        let bus = try BusFixture("topic-leave")
        let topic = try Topic(hosting: "demo.leave", on: bus.connect())
        let children = try subscribers(bus, topic, [["leave-after=10"], []])
        for sequence in 1...UInt64(10) { try topic.publish(copying: Self.numbered(sequence)) }
        #expect(children[0].awaitLine(prefix: "LEFT") != nil && children[0].finish() == .exited(0), "\(children[0].transcript)")
        for sequence in 11...UInt64(50) { try topic.publish(copying: Self.numbered(sequence)) }
        #expect(topic.subscriberCount == 1 && topic.statistics.left == 1)  // served by the publishes
        try topic.publish(copying: Self.end)
        let line = children[1].awaitLine(prefix: "OK")
        #expect(children[1].finish() == .exited(0) && numberField(line, "received") == 50, "\(children[1].transcript)")
    }

    @Test("A host that leaves ends every subscription with topicGone")
    func hostLeaves() throws {
        let bus = try BusFixture("topic-host-leaves")
        let topic = try Topic(hosting: "demo.gone", on: bus.connect())
        let child = try subscribers(bus, topic, [[]])[0]
        for sequence in 1...UInt64(5) { try topic.publish(copying: Self.numbered(sequence)) }
        try topic.flush(timeout: .seconds(20))
        topic.peer.disconnect()
        #expect(child.finish() == .exited(1) && child.transcript.contains("the topic's host left"), "\(child.transcript)")
    }

    @Test("Multicast trySend hands the loan back when a ring is full, and sends nothing")
    func multicastTrySend() throws {
        let bus = try BusFixture("multicast-try")
        let sender = try bus.connect(), receivers = try (0..<2).map { _ in try bus.connect(ringCapacity: 2) }
        let nodes = try receivers.enumerated().map { i, receiver in
            let node = try receiver.createNode()
            try receiver.publish(node, as: "try.\(i)")
            return try sender.lookup("try.\(i)")
        }
        var sent = 0
        for _ in 0..<2 where try sender.trySend(sender.loan(8), to: nodes) == nil { sent += 1 }
        #expect(sent == 2)
        // The third finds both rings full: the loan comes back, whole.
        guard let back = try sender.trySend(sender.loan(8), to: nodes) else {
            Issue.record("a full ring took the multicast")
            return
        }
        #expect(back.capacity >= 8)
        _ = consume back
        #expect(try receivers[0].tryReceive() != nil)  // the first two arrived, the third did not
        #expect(sender.currentStatistics.messagesSent == 2)
    }

    @Test("1,000 concurrent calls from one client: every reply matches its request")
    func concurrentCalls() async throws {
        let bus = try BusFixture("rpc-echo")
        let service = try ChildProcess("bus1-test-peer", ["echoservice", "address=\(bus.address)", "name=demo.echo"])
        #expect(service.awaitLine(prefix: "READY") != nil, "\(service.transcript)")
        let client = try await ServiceClient(service: "demo.echo", connecting: PeerOptions(address: bus.address))
        let matched = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<1000 {
                group.addTask {
                    let request = Array("request \(i) ".utf8) + Array(repeating: UInt8(i & 0xFF), count: i % 300)
                    return try await client.call(request, timeout: .seconds(60)) == request
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(matched == 1000)
        // A handler that throws fails its call with its reason; the client goes on.
        await #expect(throws: Bus1Error.callFailed("asked to fail")) { try await client.call(Array("fail".utf8), timeout: .seconds(60)) }
        #expect(try await client.call(Array("after".utf8), timeout: .seconds(60)) == Array("after".utf8))
        let statistics = await client.statistics
        #expect(statistics.replies == 1002 && statistics.malformed == 0 && statistics.lateReplies == 0)
    }

    @Test("Calls time out, and are cancelled, while another call pumps; whoever pumps leaves, the next one takes over")
    func callTimeoutsAndHandOver() async throws {
        let bus = try BusFixture("rpc-handover")
        let service = try ChildProcess("bus1-test-peer", ["deafservice", "address=\(bus.address)", "name=demo.handover"])
        #expect(service.awaitLine(prefix: "READY") != nil, "\(service.transcript)")
        let client = try await ServiceClient(service: "demo.handover", connecting: PeerOptions(address: bus.address))
        func outcome(_ timeout: Duration) async -> String {
            do {
                _ = try await client.call(Array("x".utf8), timeout: timeout)
                return "reply"
            } catch let error as Bus1Error {
                return "\(error)"
            } catch {
                return "\(type(of: error))"
            }
        }
        func awaitCalls(_ count: Int) async throws {
            while !service.lines.contains("CALLS \(count)") {
                _ = service.readLine(timeoutSeconds: 0.05)
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        let first = Task { await outcome(.seconds(120)) }  // pumps: the service never answers
        try await awaitCalls(1)
        // A shorter call suspended behind it times out on time.
        let started = monotonicNanoseconds()
        #expect(await outcome(.milliseconds(300)) == "timed out")
        #expect(monotonicNanoseconds() - started < 5_000_000_000)
        let second = Task { await outcome(.seconds(120)) }
        try await awaitCalls(3)
        first.cancel()  // the pumping call leaves: the second must take over
        #expect(await first.value == "CancellationError")
        kill(service.pid, SIGKILL)  // only a pump would notice
        #expect(await second.value == "the service demo.handover is gone")
        #expect(service.finish() == .signaled(SIGKILL))
    }

    @Test("A service killed mid-call fails every pending call at once with serviceGone, not by timeout")
    func serviceKilledMidCall() async throws {
        let bus = try BusFixture("rpc-kill")
        let service = try ChildProcess("bus1-test-peer", ["deafservice", "address=\(bus.address)", "name=demo.deaf"])
        #expect(service.awaitLine(prefix: "READY") != nil, "\(service.transcript)")
        let client = try await ServiceClient(service: "demo.deaf", connecting: PeerOptions(address: bus.address))
        let pending = 20
        try await withThrowingTaskGroup(of: Bus1Error?.self) { group in
            for i in 0..<pending {
                group.addTask {
                    do {
                        _ = try await client.call(Array("call \(i)".utf8), timeout: .seconds(120))
                        return nil
                    } catch let error as Bus1Error {
                        return error
                    }
                }
            }
            // Every call is at the service before it dies.
            while !service.lines.contains("CALLS \(pending)") {
                _ = service.readLine(timeoutSeconds: 0.05)
                try await Task.sleep(for: .milliseconds(1))
            }
            let killed = monotonicNanoseconds()
            kill(service.pid, SIGKILL)
            var errors: [Bus1Error?] = []
            for try await error in group { errors.append(error) }
            let seconds = Double(monotonicNanoseconds() - killed) / 1e9
            #expect(errors.count == pending && errors.allSatisfy { $0 == .serviceGone("demo.deaf") }, "\(errors)")
            #expect(seconds < 10, "the calls failed \(seconds) s after the kill: by timeout, not by the death notification")
        }
        // And a call after that fails at once too.
        await #expect(throws: Bus1Error.serviceGone("demo.deaf")) { try await client.call(Array("late".utf8)) }
        #expect(service.finish() == .signaled(SIGKILL))
    }

    /// A pattern frame as the wire format in `Frame` lays it out, written by hand
    /// here (what a hostile peer would do).
    static func frame(kind: UInt8, detail: UInt32 = 0, number: UInt64 = 0) -> [UInt8] {
        withUnsafeBytes(of: (0x4231_5000 | UInt32(kind)).littleEndian) { Array($0) }
            + withUnsafeBytes(of: detail.littleEndian) { Array($0) } + withUnsafeBytes(of: number.littleEndian) { Array($0) }
    }

    @Test("A topic host and a service drop garbage, and refuse a handle to someone else's node as a subscriber or a reply address")
    func hostileFrames() throws {
        let bus = try BusFixture("pattern-hostile")
        let topic = try Topic(hosting: "demo.hostile", on: bus.connect())
        let service = try Service(name: "demo.hostile.rpc", on: bus.connect())
        let hostile = try bus.connect(), victim = try bus.connect()
        let victimNode = try victim.createNode()
        try victim.publish(victimNode, as: "victim")
        let stolen = try hostile.lookup("victim"), topicNode = try hostile.lookup("demo.hostile")
        let serviceNode = try hostile.lookup("demo.hostile.rpc")

        try hostile.send(copying: [1, 2, 3], to: topicNode)                          // no frame at all
        try hostile.send(copying: Self.frame(kind: 2), to: topicNode)                // subscribe, nothing attached
        var loan = try hostile.loan(16)
        loan.write(Self.frame(kind: 2))
        try hostile.send(loan, to: topicNode, attaching: [stolen])                  // subscribe the victim's node
        try hostile.send(copying: Self.frame(kind: 99), to: topicNode)               // no such kind
        try hostile.send(copying: Self.frame(kind: 7, number: 5), to: topicNode)     // a reply, to a topic
        try topic.serve()
        #expect(topic.statistics.malformed == 5 && topic.subscriberCount == 0)
        try topic.publish(copying: [1])
        #expect(topic.statistics.delivered == 0)

        var call = try hostile.loan(16)
        call.write(Self.frame(kind: 6, detail: 1, number: 1))
        try hostile.send(call, to: serviceNode, attaching: [stolen])                // replies to the victim, please
        try hostile.send(copying: Self.frame(kind: 3), to: serviceNode)              // a topic frame, to a service
        let request = try service.nextRequest(timeout: .seconds(5))
        #expect(request.id == 1)
        try service.reply(to: request, copying: Array(repeating: 0xEE, count: 4096))
        #expect(service.statistics.repliesDropped == 1 && service.statistics.replies == 0 && service.statistics.clients == 0)
        #expect(throws: Bus1Error.timedOut) { _ = try service.nextRequest(timeout: .milliseconds(20)) }
        #expect(service.statistics.malformed == 1)
        #expect(try victim.tryReceive() == nil, "the victim's node was sent something")
    }

    @Test("A contribution too large for the host's pool is dropped and counted; the host goes on")
    func oversizedContribution() throws {
        let bus = try BusFixture("topic-big-contribution")
        let topic = try Topic(hosting: "demo.big", on: bus.connect(poolSize: 4096 + (1 << 20)))
        let contributor = try TopicContributor(topic: "demo.big", on: bus.connect())
        try contributor.publish(copying: Array(repeating: 7, count: 2 << 20))
        try contributor.publish(copying: [1, 2, 3])
        try topic.serve()
        #expect(topic.statistics.contributionsDropped == 1 && topic.statistics.contributions == 1 && topic.statistics.published == 1)
        try contributor.flush(timeout: .seconds(5))  // both were taken (one dropped, one published)
    }

    @Test("A client that never reads its replies costs the service one reply timeout, not one per call")
    func stalledClient() throws {
        let bus = try BusFixture("rpc-stall")
        let service = try Service(name: "demo.stall", on: bus.connect(), options: .init(replyTimeout: .milliseconds(200)))
        let client = try bus.connect(ringCapacity: 4)  // room for four replies
        let replyNode = try client.createNode(), serviceNode = try client.lookup("demo.stall")
        var bind = try client.loan(16)
        bind.write(Self.frame(kind: 6, detail: 1, number: 0))
        try client.send(bind, to: serviceNode, attaching: [replyNode])
        for id in 1..<40 { try client.send(copying: Self.frame(kind: 6, number: UInt64(id)), to: serviceNode) }
        for _ in 0..<40 {
            let request = try service.nextRequest(timeout: .seconds(5))
            try service.reply(to: request, copying: [1])
        }
        // Four fit its ring; the fifth waited the one timeout; the other 35 were dropped at once.
        #expect(service.statistics.replies == 4 && service.statistics.repliesDropped == 36)
        #expect(service.statistics.replyTimeouts == 1, "a reply waited the whole timeout \(service.statistics.replyTimeouts) times")
        // Once the client reads again, its replies flow again.
        var received = 0
        while let reply = try client.tryReceive() { if reply.kind == .data { received += 1 } }
        #expect(received == 4)
        try client.send(copying: Self.frame(kind: 6, number: 40), to: serviceNode)
        try service.reply(to: service.nextRequest(timeout: .seconds(5)), copying: [2])
        #expect(service.statistics.replies == 5)
    }
}
