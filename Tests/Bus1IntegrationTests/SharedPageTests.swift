import Bus1
@_spi(HostileTesting) import Bus1
import Bus1IntegrationSupport
import Bus1TestSupport
import Testing

/// Peers map the bus clock and other peers' wake pages writable (to take tickets,
/// to ring doorbells). What such a page *is* comes from the coordinator over the
/// socket, never from bytes a peer can write, so scribbling on it harms nobody's
/// connection, lookups or messages; scribbled words (ticket, doorbell, sleeping
/// flag, control sequence) degrade order and wake-ups at most.
@Suite("Shared pages a peer may write", .timeLimit(.minutes(10)))
struct SharedPageTests {
    @Test("After a peer writes random bytes over the clock page and every wake page it can reach (headers and words), new peers still connect, look up and exchange checked messages")
    func scribbledHeaders() throws {
        let bus = try BusFixture("scribble")
        let victim = try bus.peer("consumer", ["name": "victim", "count": "300"])
        #expect(victim.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(victim.transcript)")

        let hostile = try bus.connect()
        _ = try hostile.lookup("victim")  // a channel, so the victim's wake page is mapped writable here
        var random = SplitMix64(state: 12)
        for offset in stride(from: 0, to: 128, by: 8) {  // header line and shared words
            hostile.overwriteSharedPages(.clock, atByteOffset: offset, with: random.next())
            hostile.overwriteSharedPages(.ownWake, atByteOffset: offset, with: random.next())
            hostile.overwriteSharedPages(.receiversWake, atByteOffset: offset, with: random.next())
        }

        // A new peer connects (it maps the clock), looks the victim up (it maps the
        // victim's wake page) and sends 300 checked messages; an in-process one too.
        let producer = try bus.peer("producer", ["name": "victim", "count": "300"])
        #expect(producer.finish(timeoutSeconds: 90) == .exited(0), "\(producer.transcript)")
        #expect(victim.finish(timeoutSeconds: 90) == .exited(0), "\(victim.transcript)")
        let late = try bus.connect()
        let node = try late.createNode()
        try late.publish(node, as: "late")
        let sender = try bus.connect()
        var loan = try sender.loan(4)
        loan.write(Array("late".utf8))
        try sender.send(loan, to: try sender.lookup("late"))
        let message = try late.receive(timeout: .seconds(10))
        let bytes = message.copyPayload()
        #expect(bytes == Array("late".utf8))
    }

    @Test("A rewound clock does not break the coordinator ring: a destroy notification still arrives after a rewind, and the coordinator counts the anomaly")
    func rewoundClockAndNotifications() throws {
        let bus = try BusFixture("rewind-notes")
        let owner = try bus.connect(), holder = try bus.connect(), hostile = try bus.connect()
        let node = try owner.createNode()
        try owner.publish(node, as: "rewind.node")
        _ = try holder.lookup("rewind.node")
        try owner.destroy([try owner.createNode()])  // a first notification ticket (nobody holds it)
        let before = hostile.clockValue
        hostile.writeClock(1)  // rewound below every ticket issued so far
        let ticket = try owner.destroy([node])
        #expect(ticket >= before, "the coordinator's ticket fell with the clock: \(ticket) < \(before)")
        let note = try holder.receive(timeout: .seconds(10))
        #expect(note.kind == .nodeDestroyed)
        #expect(bus.coordinator.clockAnomalies >= 1)
    }
}

