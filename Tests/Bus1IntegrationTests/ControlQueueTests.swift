import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Dispatch
import Glibc
import Synchronization
import Testing

/// A peer's control socket holds only what fits the coordinator's socket send
/// buffer (a few hundred small datagrams). The coordinator holds the rest for a
/// peer that is busy, in order, and answers a lookup only once the node's owner
/// has the grant in its socket; it gives up only on a peer that lets a whole
/// outbox pile up.
@Suite("Control queue", .timeLimit(.minutes(10)))
struct ControlQueueTests {
    @Test("A peer busy while 1,000 grants pile up misses none: lookups wait for it, then a message to the last node is accepted")
    func busyPeerKeepsEvents() throws {
        let bus = try BusFixture("queue")
        // The sink's 300 ms away from its socket is the "busy" under test, not a wait.
        let sink = try bus.peer("slowsink", ["nodes": "1000", "sleep": "300", "count": "2"])
        #expect(sink.awaitLine(prefix: "READY", timeoutSeconds: 60) != nil, "\(sink.transcript)")
        let sender = try bus.connect()
        var handles: [Handle] = []
        for i in 0..<1000 { handles.append(try sender.lookup("flood.\(i)")) }
        for handle in [handles[0], handles[999]] { try sender.send(copying: UnsafeRawBufferPointer(start: nil, count: 0), to: handle) }
        #expect(sink.finish(timeoutSeconds: 60) == .exited(0), "\(sink.transcript)")
        #expect(sink.lines.last == "OK received=2 violations=0", "\(sink.transcript)")
    }

    /// The owner never reads; twelve requesters (threads, each its own peer, all
    /// of one uid) look its nodes up. Before, the grants overflowed its queue and
    /// got it disconnected; now their uid's fair share of that queue runs out
    /// first: past it, lookups are refused with a typed quota error, and the peer
    /// stays connected and gets every grant once it reads.
    @Test("Others' lookups cannot overflow a peer that does not read: past their uid's fair share they are refused, typed")
    func fairShareProtectsAPeerThatDoesNotRead() throws {
        let bus = try BusFixture("queue-share") {
            $0.maximumQueuedControlMessages = 8
            $0.heldReplyTimeout = .seconds(120)  // this test is about the share: lookups wait for the deaf peer to read
        }
        let deaf = try bus.connect()
        for i in 0..<2000 { try deaf.publish(try deaf.createNode(), as: "flood.\(i)") }
        let group = DispatchGroup()
        let address = bus.address
        let counts = Counts()
        for thread in 0..<12 {
            DispatchQueue.global().async(group: group) {
                var options = PeerOptions(address: address)
                options.waitMode = .park
                guard let requester = try? Peer.connect(options: options) else { counts.unexpected.add(1, ordering: .relaxed); return }
                for i in stride(from: thread, to: 2000, by: 12) {
                    do { _ = try requester.lookup("flood.\(i)") } catch {
                        if (error as? Bus1Error) == .refused(.quotaExceeded(.messages)) {
                            counts.refused.add(1, ordering: .relaxed)
                        } else {
                            counts.unexpected.add(1, ordering: .relaxed)
                        }
                        return
                    }
                }
            }
        }
        #expect(waitUntil(timeoutSeconds: 30) { counts.refused.load(ordering: .relaxed) > 0 }, "no lookup was refused by the fair share")
        // The deaf peer reads now: every grant it was sent arrives, and the lookups
        // that waited for it are answered.
        var finished = false
        let deadline = monotonicNanoseconds() + 30_000_000_000
        while !finished && monotonicNanoseconds() < deadline {
            _ = try deaf.reclaimCompleted()  // serves the control socket
            finished = group.wait(timeout: .now() + .milliseconds(10)) == .success
        }
        #expect(finished, "lookups still waiting on a peer that read its socket")
        #expect(counts.unexpected.load(ordering: .relaxed) == 0)
        _ = try deaf.createNode()  // still connected
        #expect(bus.coordinator.peerCount >= 1)
    }

    /// One uid (65534, sixteen peers in one process) floods a receiver that is not
    /// reading with attachments; a second uid (root, three peers) sends to the same
    /// receiver meanwhile. Needs root and util-linux `setpriv`; skipped with the
    /// reason otherwise.
    @Test("A uid flooding a receiver is refused past its fair share; a second uid's messages still get through",
          .enabled(unless: OtherUID.unavailableReason))
    func floodingUIDGetsItsShareOnly() throws {
        let other = try OtherUID.make(copying: ["bus1-test-peer"])
        let bus = try BusFixture.admittingOtherUID("flood") { $0.maximumQueuedControlMessages = 32 }

        let receiver = try bus.connect(ringCapacity: 4096)
        try receiver.publish(try receiver.createNode(), as: "flood.sink")
        // The fair uid's peers look the sink up first (the receiver serves its socket
        // meanwhile) and then wait for a cue.
        let fair = try bus.peer("attachflood", ["name": "flood.sink", "threads": "3", "count": "1", "cue": "1"])
        var started = false
        for _ in 0..<3000 where !started {
            _ = try receiver.reclaimCompleted()
            started = fair.awaitLine(prefix: "STARTED", timeoutSeconds: 0.01) != nil
        }
        #expect(started, "\(fair.transcript)")
        let flooder = try other.spawn("bus1-test-peer", ["attachflood", "address=\(bus.address)", "name=flood.sink", "threads=16", "count=100"])
        // The receiver does not read: the flooder fills its socket, then its share of the outbox.
        #expect(flooder.awaitLine(prefix: "REFUSED", timeoutSeconds: 60) != nil, "\(flooder.transcript)")
        // The fair uid's attachments reach the coordinator while the flood holds its
        // share: the receiver (still not reading) holds a handle to each fair peer's node.
        let inspector = Inspector(build: .debug, address: bus.address)
        let fairPeers = Set(try inspector.rows(["peers"], "peers").filter { Inspector.number($0, "pid") == Int(fair.pid) }
            .compactMap { Inspector.number($0, "id") })
        #expect(fairPeers.count == 3, "\(fair.transcript)")
        fair.signal(SIGUSR1)
        let fairHandlesArrived = try waitUntil(timeoutSeconds: 60, pollMicroseconds: 20_000) {
            try inspector.rows(["handles"], "handles").filter {
                Inspector.number($0, "holder") == Int(receiver.id) && fairPeers.contains(Inspector.number($0, "owner") ?? -1)
            }.count == 3
        }
        #expect(fairHandlesArrived, "the fair uid's attachments never reached the coordinator: \(fair.transcript)")

        // Now the receiver reads: everything accepted arrives.
        var total = 0
        let deadline = monotonicNanoseconds() + 60_000_000_000
        var done: [String] = []
        while done.count < 2 && monotonicNanoseconds() < deadline {
            while let message = try receiver.tryReceive() {
                guard message.kind == .data else { continue }  // flooder nodes released or destroyed
                total += 1
                if let handle = message.handles.first, handle.isValid { try receiver.release(handle) }
            }
            for child in [flooder, fair] where !done.contains(child.name) {
                if child.awaitLine(prefix: "DONE", timeoutSeconds: 0.002) != nil { done.append(child.name) }
            }
        }
        while let message = try receiver.tryReceive() { if message.kind == .data { total += 1 } }
        #expect(done.count == 2, "\(flooder.transcript)\n\(fair.transcript)")
        let fairDone = fair.lines.first { $0.hasPrefix("DONE") }
        let floodDone = flooder.lines.first { $0.hasPrefix("DONE") }
        #expect(fairDone == "DONE attached=3 refused=0", "\(fair.transcript)")
        let flooded = try #require(numberField(floodDone, "attached"))
        #expect(numberField(floodDone, "refused") ?? 0 >= 1)
        let fromFair = total - Int(flooded)
        #expect(fromFair == 3, "every accepted message arrives: \(total) received, \(flooded) from the flooder; \(receiver.currentStatistics) \(receiver.takeEvents())")
        print("flood: the flooding uid got \(flooded) attachments through and was refused \(numberField(floodDone, "refused") ?? 0) times; the fair uid 3 of 3")
        flooder.signal(SIGKILL); fair.signal(SIGKILL)
        _ = flooder.finish(); _ = fair.finish()
    }
}

/// Outcomes counted across the requester threads.
private final class Counts: Sendable {
    let refused = Atomic<Int>(0)
    let unexpected = Atomic<Int>(0)
}
