@_spi(HostileTesting) import Bus1
@_spi(Testing) import Bus1Coordinator
import Bus1IntegrationSupport
import Bus1TestSupport
import Bus1Linux
import CBus1Wire
import Glibc
import Testing

/// The coordinator's own failures reach the peer that asked, typed, with their
/// errno, and hurt nobody else. A shared object (memfd) the coordinator cannot
/// make (its fd limit, memory) is forced for real through the coordinator's
/// failure injection (`failSharedObject`): the next memfd_create or mmap of its
/// object factory fails with the chosen errno, exactly where the kernel would
/// refuse it. The peer must get `Refusal.internalError(errno:)` with that errno
/// (`BUS1_ERR_INTERNAL`, not a misleading state error), the coordinator must have
/// made and charged nothing for the refused request, and other peers must go on.
@Suite("Coordinator failures reach the peer with their errno", .timeLimit(.minutes(10)))
struct CoordinatorFailureTests {
    /// One injected failure: which object of a request fails, where, and how.
    struct Failure: Sendable, CustomTestStringConvertible {
        /// The object that fails, counting the request's objects from 0.
        let object: Int
        let step: SharedObjectStep
        let errno: Int32
        let what: String
        var testDescription: String { what }
    }

    /// HELLO makes three objects: the pool (0), the wake page (1), the coordinator ring (2).
    static let handshakeFailures = [
        Failure(object: 0, step: .create, errno: EMFILE, what: "the pool's memfd_create (EMFILE)"),
        Failure(object: 1, step: .map, errno: ENOMEM, what: "the wake page's mmap (ENOMEM)"),
        Failure(object: 2, step: .create, errno: ENFILE, what: "the coordinator ring's memfd_create (ENFILE)"),
    ]

    @Test("A HELLO whose objects cannot be made is refused with internalError(errno); the peer connects on the next try",
          arguments: handshakeFailures)
    func connectRefused(_ failure: Failure) throws {
        let bus = try BusFixture("fail-hello")
        let (owner, client) = try Self.pair(on: bus, name: "fail.hello")
        bus.coordinator.failSharedObject(skipping: failure.object, at: failure.step, errno: failure.errno)
        #expect(throws: Bus1Error.refused(.internalError(errno: failure.errno))) { try bus.connect() }
        // The refused connection leaves without a trace (a debug build would stop on
        // an uncharge of what was never charged), and the next one is served.
        #expect(waitUntil(timeoutSeconds: 30) { bus.coordinator.peerCount == 2 })
        let late = try bus.connect()
        try Self.expectDelivery(from: late, to: owner, name: "fail.hello")
        try Self.expectDelivery(from: client, to: owner, name: "fail.hello")
    }

    @Test("A HELLO refused at its last object charges nothing: the uid's pool-bytes total admits exactly as many pools as before")
    func refusedHelloChargesNothing() throws {
        let pool = Int(bus1_pool_size_for(1 << 20))
        let bus = try BusFixture("fail-charge") {
            $0.defaultPoolDataSize = 1 << 20
            $0.maximumPoolBytesPerUID = 2 * pool
        }
        let first = try bus.connect()
        bus.coordinator.failSharedObject(skipping: 2, at: .create, errno: ENFILE)  // the ring, after the pool and wake page
        #expect(throws: Bus1Error.refused(.internalError(errno: ENFILE))) { try bus.connect() }
        #expect(waitUntil(timeoutSeconds: 30) { bus.coordinator.peerCount == 1 })
        let second = try bus.connect()
        #expect(throws: Bus1Error.refused(.quotaExceeded(.uidPoolBytes))) { try bus.connect() }
        #expect(first.id != second.id)
    }

    @Test("A lookup whose channel cannot be made is refused with internalError(errno), grants nothing, and succeeds on the next try",
          arguments: [SharedObjectStep.create, .map])
    func lookupRefused(_ step: SharedObjectStep) throws {
        let bus = try BusFixture("fail-lookup")
        let (other, otherClient) = try Self.pair(on: bus, name: "fail.other")
        let owner = try bus.connect()
        try owner.publish(try owner.createNode(), as: "fail.lookup")
        let client = try bus.connect()
        bus.coordinator.failSharedObject(at: step, errno: EMFILE)
        #expect(throws: Bus1Error.refused(.internalError(errno: EMFILE))) { try client.lookup("fail.lookup") }
        let handle = try Self.expectDelivery(from: client, to: owner, name: "fail.lookup")
        try Self.expectDelivery(from: otherClient, to: other, name: "fail.other")
        // The refused lookup left no reference behind: releasing the one the retry
        // got leaves the node without holders, and its owner is told.
        try client.release(handle)
        let note = try owner.receive(timeout: .seconds(30))
        #expect(note.kind == .nodeReleased && note.sender == client.id)
    }

    @Test("A pool segment that cannot be made is refused with internalError(errno); the next SEGMENT_OPEN gets one")
    func segmentRefused() throws {
        let bus = try BusFixture("fail-segment")
        let peer = try bus.connect()
        let audience = [getuid(), getuid() &+ 4242]  // not the owner's uid alone: a segment of its own
        bus.coordinator.failSharedObject(at: .create, errno: ENOSPC)
        #expect(throws: Bus1Error.refused(.internalError(errno: ENOSPC))) { _ = try peer.loanInSegment(64, audience: audience) }
        let loan = try peer.loanInSegment(64, audience: audience)
        #expect(loan.count == 64)
    }

    /// An owner with a node published as `name`, and a peer that looked it up.
    static func pair(on bus: BusFixture, name: String) throws -> (owner: Peer, client: Peer) {
        let owner = try bus.connect()
        try owner.publish(try owner.createNode(), as: name)
        let client = try bus.connect()
        try expectDelivery(from: client, to: owner, name: name)
        return (owner, client)
    }

    /// `sender` looks `name` up and sends its own id; `owner` receives it.
    /// Returns the handle the lookup gave.
    @discardableResult
    static func expectDelivery(from sender: Peer, to owner: Peer, name: String) throws -> Handle {
        let target = try sender.lookup(name)
        try withUnsafeBytes(of: sender.id) { try sender.send(copying: $0, to: target) }
        let message = try owner.receive(timeout: .seconds(30))
        #expect(message.kind == .data && message.sender == sender.id)
        #expect(message.payload.bytes.unsafeLoad(as: UInt64.self) == sender.id)
        return target
    }
}
