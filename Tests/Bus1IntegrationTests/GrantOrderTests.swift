import Bus1
import Bus1Coordinator
import Bus1IntegrationSupport
import Bus1TestSupport
import Dispatch
import Foundation
import Testing

/// A handle that arrives in an attachment may name a channel its receiver has not
/// been told of yet: the receiver's own lookup of the same owner made it, and that
/// reply still waits for the owner to read its socket.
@Suite("Grant order", .timeLimit(.minutes(10)))
struct GrantOrderTests {
    /// Runs `body` on its own thread (a blocked request must not hold up the test).
    final class Background: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private(set) var error: Bus1Error?
        init(_ body: @escaping @Sendable () throws(Bus1Error) -> Void) {
            Thread.detachNewThread { [self] in
                do throws(Bus1Error) { try body() } catch { self.error = error }
                done.signal()
            }
        }
        func wait() { done.wait() }
    }

    /// The peers of one test, handed to the background thread as a whole (a
    /// `Peer` is used by one thread at a time: the receiver only there).
    final class Cast: @unchecked Sendable {
        let owner: Peer, receiver: Peer, attacher: Peer, filler: Peer
        init(_ bus: BusFixture) throws {
            owner = try bus.connect(); receiver = try bus.connect(); attacher = try bus.connect(); filler = try bus.connect()
        }
    }

    @Test("A handle arriving on a channel whose lookup reply is still held installs the channel; the held lookup then times out typed")
    func arrivedBeforeHeldLookup() throws {
        let bus = try BusFixture("grant-order") { $0.heldReplyTimeout = .seconds(2) }
        let cast = try Cast(bus)
        let count = 2000
        for i in 0..<count { try cast.owner.publish(try cast.owner.createNode(), as: "owned.\(i)") }
        let passed = try cast.attacher.lookup("owned.0")  // before the owner's socket fills
        try cast.receiver.publish(try cast.receiver.createNode(), as: "receiver")
        let toReceiver = try cast.attacher.lookup("receiver")
        // The owner stops reading: fill its socket until a lookup is held (and times out).
        for i in 1..<count {
            // (A `catch .refused(.timedOut)` clause here crashes the 6.3.1 SIL verifier.)
            do { _ = try cast.filler.lookup("owned.\(i)") } catch {
                guard error == .refused(.timedOut) else { throw error }
                break
            }
        }
        // The receiver's lookup makes the channel receiver → owner; its reply is held.
        let lookup = Background { () throws(Bus1Error) in _ = try cast.receiver.lookup("owned.\(count - 1)") }
        #expect(waitUntil(timeoutSeconds: 60) { bus.coordinator.repliesHeld > 0 }, "the receiver's lookup was never held")
        // The attached handle names that channel; it reaches the receiver first.
        #expect(throws: Bus1Error.refused(.timedOut)) {
            try cast.attacher.send(try cast.attacher.loan(8), to: toReceiver, attaching: [passed])
        }
        lookup.wait()
        #expect(lookup.error == .refused(.timedOut), "the receiver's lookup failed with \(String(describing: lookup.error))")
    }

    @Test("An attachment refused halfway (the uid's channel total runs out on its second handle) leaves no handle behind in the receiver")
    func refusedAttachLeavesNothing() throws {
        // Channels for root: sender → receiver, sender → owner1, sender → owner2; the
        // attachment needs receiver → owner1 (the 4th) and receiver → owner2 (a 5th).
        let bus = try BusFixture("attach-undo") { $0.maximumChannelsPerUID = 4 }
        let sender = try bus.connect(), receiver = try bus.connect(), owner1 = try bus.connect(), owner2 = try bus.connect()
        try receiver.publish(try receiver.createNode(), as: "r")
        try owner1.publish(try owner1.createNode(), as: "o1")
        try owner2.publish(try owner2.createNode(), as: "o2")
        let toReceiver = try sender.lookup("r"), h1 = try sender.lookup("o1"), h2 = try sender.lookup("o2")
        #expect(throws: Bus1Error.refused(.quotaExceeded(.uidChannels))) {
            try sender.send(try sender.loan(8), to: toReceiver, attaching: [h1, h2])
        }
        #expect(throws: Bus1Error.timedOut) { _ = try receiver.receive(timeout: .milliseconds(50)) }
        // The sender was the only holder of owner1's node: had the receiver kept a
        // handle from the refused attachment, this release would notify nobody.
        try sender.release(h1)
        let note = try owner1.receive(timeout: .seconds(5))
        #expect(note.kind == .nodeReleased)
    }
}
