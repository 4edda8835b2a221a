import Bus1
import Bus1Linux
import Dispatch
import Glibc
import Synchronization
import Testing

/// A peer's control socket holds only what fits the coordinator's socket send
/// buffer (a few hundred small datagrams). The coordinator holds the rest for a
/// peer that is busy, in order, and answers a lookup only once the node's owner
/// has the grant in its socket; it gives up only on a peer that lets a whole
/// outbox pile up.
@Suite("Control queue")
struct ControlQueueTests {
    @Test("A peer busy while 1,000 grants pile up misses none: lookups wait for it, then a message to the last node is accepted")
    func busyPeerKeepsEvents() throws {
        let bus = try BusFixture("queue")
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
        let bus = try BusFixture("queue-share") { $0.maximumQueuedControlMessages = 8 }
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
        let deadline = monotonicNanoseconds() + 30_000_000_000
        while counts.refused.load(ordering: .relaxed) == 0 && monotonicNanoseconds() < deadline { usleep(1000) }
        #expect(counts.refused.load(ordering: .relaxed) > 0, "no lookup was refused by the fair share")
        // The deaf peer reads now: every grant it was sent arrives, and the lookups
        // that waited for it are answered.
        var finished = false
        while !finished && monotonicNanoseconds() < deadline + 30_000_000_000 {
            _ = try deaf.reclaimCompleted()  // serves the control socket
            finished = group.wait(timeout: .now() + .milliseconds(10)) == .success
        }
        #expect(finished, "lookups still waiting on a peer that read its socket")
        #expect(counts.unexpected.load(ordering: .relaxed) == 0)
        _ = try deaf.createNode()  // still connected
        #expect(bus.coordinator.peerCount >= 1)
    }
}

/// Outcomes counted across the requester threads.
private final class Counts: Sendable {
    let refused = Atomic<Int>(0)
    let unexpected = Atomic<Int>(0)
}
