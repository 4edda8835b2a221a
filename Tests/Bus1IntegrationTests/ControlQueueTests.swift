import Bus1
import Bus1Linux
import Testing

/// A peer's control socket holds only what fits the coordinator's socket send
/// buffer (a few hundred small datagrams); the coordinator must hold the rest for
/// a peer that is busy, in order, and give up only on one that lets a whole
/// outbox pile up.
@Suite("Control queue")
struct ControlQueueTests {
    /// One CHANNEL_GRANT per node, unread while the sender looks them all up.
    static func grantFlood(_ bus: BusFixture, nodes: Int) throws -> (receiver: Peer, sender: Peer, handles: [Handle]) {
        let receiver = try bus.connect()
        for i in 0..<nodes { try receiver.publish(try receiver.createNode(), as: "flood.\(i)") }
        let sender = try bus.connect()
        var handles: [Handle] = []
        for i in 0..<nodes {
            guard let handle = try? sender.lookup("flood.\(i)") else { break }
            handles.append(handle)
        }
        return (receiver, sender, handles)
    }

    @Test("A peer busy while 1,000 grants pile up misses none and keeps working")
    func busyPeerKeepsEvents() throws {
        let bus = try BusFixture("queue")
        let (receiver, sender, handles) = try Self.grantFlood(bus, nodes: 1000)
        #expect(handles.count == 1000)
        // The last node's grant came last: a message to it is accepted only if the
        // receiver has seen every grant before it, in order.
        for handle in [handles[0], handles[999]] {
            try sender.send(copying: UnsafeRawBufferPointer(start: nil, count: 0), to: handle)
            let message = try receiver.receive(timeoutNanoseconds: 10_000_000_000)
            #expect(message.sender == sender.id)
        }
        #expect(receiver.currentStatistics.violationsDetected == 0)
        #expect(bus.coordinator.peerCount == 2)
    }

    @Test("A peer that lets more than the limit pile up is disconnected; nobody else is")
    func overflowingPeerIsDisconnected() throws {
        let bus = try BusFixture("queue-overflow") { $0.maximumQueuedControlMessages = 8 }
        let (receiver, sender, _) = try Self.grantFlood(bus, nodes: 1000)
        #expect(throws: Bus1Error.coordinatorGone) { _ = try receiver.receive(timeoutNanoseconds: 5_000_000_000) }
        #expect(throws: Bus1Error.refused(.nameUnknown)) { _ = try sender.lookup("flood.0") }
        #expect(bus.coordinator.peerCount == 1)
    }
}
