import Bus1
import Bus1Linux
import Dispatch
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

    /// The owner never reads; twelve requesters (threads, each its own peer) look
    /// its nodes up until the grants overflow the limit.
    @Test("A peer that lets more than the limit pile up is disconnected; the lookups waiting on it are refused")
    func overflowingPeerIsDisconnected() throws {
        let bus = try BusFixture("queue-overflow") { $0.maximumQueuedControlMessages = 8 }
        let deaf = try bus.connect()
        for i in 0..<2000 { try deaf.publish(try deaf.createNode(), as: "flood.\(i)") }
        let group = DispatchGroup()
        let address = bus.address
        for thread in 0..<12 {
            DispatchQueue.global().async(group: group) {
                var options = PeerOptions(address: address)
                options.waitMode = .park
                guard let requester = try? Peer.connect(options: options) else { return }
                for i in stride(from: thread, to: 2000, by: 12) {
                    do { _ = try requester.lookup("flood.\(i)") } catch { return }
                }
            }
        }
        #expect(group.wait(timeout: .now() + 60) == .success, "lookups still waiting on a peer that was never disconnected")
        #expect(throws: Bus1Error.coordinatorGone) { _ = try deaf.receive(timeoutNanoseconds: 5_000_000_000) }
        let other = try bus.connect()
        #expect(throws: Bus1Error.refused(.nameUnknown)) { _ = try other.lookup("flood.0") }
    }
}
