@_spi(HostileTesting) import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Foundation
import Testing

/// Descriptor slots publish themselves (wire version 5): a receiver takes a slot
/// once its ticket is stored, before the sender stores `sub_tail`, and clears the
/// ticket when it takes it. What that means for a hostile sender and for
/// `shm-inspect`, on real shared memory.
@Suite("Descriptor slots", .timeLimit(.minutes(5)))
struct SlotProtocolTests {
    /// A forged ticket 0 reads as an empty slot: the forger's own channel stalls
    /// behind it (its later messages stay queued), and nobody else's does.
    @Test("A forged ticket 0 stalls only the forger's channel")
    func forgedTicketZero() throws {
        let bus = try BusFixture("slot-zero")
        let consumer = try bus.connect(ringCapacity: 8)
        try consumer.publish(try consumer.createNode(), as: "slots.zero")
        let hostile = try bus.connect(), honest = try bus.connect()
        let viaHostile = try hostile.lookup("slots.zero"), viaHonest = try honest.lookup("slots.zero")
        try hostile.send(copying: Array("h0".utf8), to: viaHostile)
        let first = try consumer.receive(timeout: .seconds(5))
        #expect(first.sender == hostile.id)
        try hostile.sendForged(to: viaHostile, .init(ticket: 0))
        try hostile.send(copying: Array("h1".utf8), to: viaHostile)  // behind the empty slot
        for i in 0..<3 { try honest.send(copying: Array("ok\(i)".utf8), to: viaHonest) }
        for _ in 0..<3 {
            let message = try consumer.receive(timeout: .seconds(5))
            #expect(message.sender == honest.id)
        }
        #expect(try consumer.tryReceive() == nil)
        withExtendedLifetime(first) {}
    }

    /// A batch in progress: the receiver took slot 0 before the sender stored
    /// `sub_tail` (a batch stores it after its last slot). `verify` must call that
    /// honest (a review found it reported "sub_head past sub_tail").
    @Test("shm-inspect verify: a slot taken before sub_tail moved is honest")
    func slotTakenBeforeTail() throws {
        let (bus, inspector, consumer, sender, target) = try Self.inspectedPair("slot-batch")
        var verify: (status: Bus1Linux.ExitStatus, output: String)?
        var taken = 0
        try sender.sendBatch(to: target, count: 2, sliceSize: 64) { index, slice in
            if index == 1 {
                if let message = try? consumer.tryReceive() { taken += 1; _ = message.ticket }
                verify = try? inspector.run(["verify"])
            }
            slice[0] = UInt8(index)
            return 1
        }
        #expect(taken == 1, "the receiver saw slot 0 before sub_tail")
        #expect(verify?.status == .exited(0), "\(verify?.output ?? "-")")
        withExtendedLifetime(bus) {}
    }

    /// `channels` shows the newest queued descriptor's ticket, and none once it
    /// was taken (taking clears the slot's ticket).
    @Test("shm-inspect channels: the newest queued ticket, none once taken")
    func newestQueuedTicket() throws {
        let (bus, inspector, consumer, sender, target) = try Self.inspectedPair("slot-last")
        try sender.send(copying: Array("x".utf8), to: target)
        _ = try consumer.tryReceive()  // learns of the channel; the message may or may not be taken yet
        try sender.send(copying: Array("y".utf8), to: target)
        let queued = try inspector.rows(["channels"], "channels").first { Inspector.number($0, "sender") == Int(sender.id) }
        #expect(Inspector.number(queued, "lastTicket") != nil, "\(String(describing: queued))")
        while let message = try consumer.tryReceive() { _ = message.ticket }
        let taken = try inspector.rows(["channels"], "channels").first { Inspector.number($0, "sender") == Int(sender.id) }
        #expect(taken != nil && Inspector.number(taken, "lastTicket") == nil, "\(String(describing: taken))")
        withExtendedLifetime(bus) {}
    }

    /// A bus with `shm-inspect` on it, a consumer on an 8-slot ring and a sender
    /// holding a handle to the consumer's node (the bus is returned to keep it up).
    static func inspectedPair(_ name: String) throws -> (BusFixture, Inspector, Peer, Peer, Handle) {
        let bus = try BusFixture(name)
        let consumer = try bus.connect(ringCapacity: 8)
        try consumer.publish(try consumer.createNode(), as: "slots.\(name)")
        let sender = try bus.connect()
        return (bus, Inspector(build: .debug, address: bus.address), consumer, sender, try sender.lookup("slots.\(name)"))
    }
}
