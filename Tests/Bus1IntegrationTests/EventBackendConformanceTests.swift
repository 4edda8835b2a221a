import Bus1
import Bus1Coordinator
import Bus1IntegrationSupport
import Bus1TestSupport
import Bus1Linux
import Glibc
import Testing

/// The coordinator's loop over each readiness backend (`CoordinatorConfiguration.eventBackend`):
/// the same checks, so the poll(2) fallback, which a machine with io_uring never
/// picks by itself, is run as often as io_uring. io_uring is skipped, with the
/// kernel's reason, where it refuses a ring of the size the coordinator asks for.
@Suite("Event backends: the same loop over io_uring and poll(2)", .timeLimit(.minutes(10)))
struct EventBackendConformanceTests {
    /// What one backend must do, each check on a fresh bus.
    enum Check: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case connect, requestReply, hangUp, killedProcess, manyPeers
        var testDescription: String { rawValue }
    }

    /// Why the coordinator's io_uring ring (1024 entries) cannot be had here, or nil.
    static let ioUringRefusal: String? = {
        do {
            _ = try IOURing(entries: 1024)
            return nil
        } catch {
            return "io_uring refused here: \(error)"
        }
    }()

    @Test("io_uring", .enabled(if: ioUringRefusal == nil, Comment(rawValue: ioUringRefusal ?? "")), arguments: Check.allCases)
    func ioUring(_ check: Check) throws {
        try Self.run(check, on: .ioUring, mechanism: "io_uring")
    }

    @Test("poll(2)", arguments: Check.allCases)
    func poll(_ check: Check) throws {
        try Self.run(check, on: .poll, mechanism: "poll(2)")
    }

    static func run(_ check: Check, on backend: CoordinatorConfiguration.EventBackend, mechanism: String) throws {
        let bus = try BusFixture("backend-\(check.rawValue)") { $0.eventBackend = backend }
        #expect(bus.coordinator.eventMechanism == mechanism, "the configured backend, not a fallback")
        switch check {
        case .connect: try connect(bus)
        case .requestReply: try requestReply(bus)
        case .hangUp: try hangUp(bus)
        case .killedProcess: try killedProcess(bus)
        case .manyPeers: try manyPeers(bus)
        }
    }

    /// A peer's handshake (HELLO, POOL_MAPPED) is served; it counts as connected.
    static func connect(_ bus: BusFixture) throws {
        let peer = try bus.connect()
        #expect(peer.id != 0)
        #expect(waitUntil(timeoutSeconds: 30) { bus.coordinator.peerCount == 1 })
    }

    /// Requests get their replies (a node, a name, a lookup that opens a channel, a
    /// refusal), and a message sent over the channel arrives.
    static func requestReply(_ bus: BusFixture) throws {
        let owner = try bus.connect(), client = try bus.connect()
        try owner.publish(try owner.createNode(), as: "conformance.service")
        #expect(throws: Bus1Error.refused(.nameUnknown)) { try client.lookup("conformance.nobody") }
        let service = try client.lookup("conformance.service")
        try Array("ping".utf8).withUnsafeBytes { try client.send(copying: $0, to: service) }
        let message = try owner.receive(timeout: .seconds(30))
        #expect(message.kind == .data && message.sender == client.id)
        #expect(message.copyPayload() == Array("ping".utf8))
    }

    /// A peer that hangs up is noticed: its node's holders are told, and it no
    /// longer counts.
    static func hangUp(_ bus: BusFixture) throws {
        let holder = try bus.connect()
        let leaving = try bus.connect()
        try leaving.publish(try leaving.createNode(), as: "conformance.leaving")
        let handle = try holder.lookup("conformance.leaving")
        leaving.disconnect()
        let note = try holder.receive(timeout: .seconds(30))
        #expect(note.kind == .nodeDestroyed && note.node == handle)
        #expect(waitUntil(timeoutSeconds: 30) { bus.coordinator.peerCount == 1 })
    }

    /// A peer process killed without a word is noticed the same way (its socket
    /// hangs up and its pidfd fires; whichever the backend reports first).
    static func killedProcess(_ bus: BusFixture) throws {
        let holder = try bus.connect()
        let child = try bus.peer("relay", ["name": "conformance.child"])
        #expect(child.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(child.transcript)")
        let handle = try holder.lookup("conformance.child")
        child.signal(SIGKILL)
        _ = child.finish()
        let note = try holder.receive(timeout: .seconds(30))
        #expect(note.kind == .nodeDestroyed && note.node == handle)
        #expect(waitUntil(timeoutSeconds: 30) { bus.coordinator.peerCount == 1 })
    }

    /// Many peers connected at once (every one watched by the backend), each
    /// sending to one hub, which hears from all; then all leave together.
    static func manyPeers(_ bus: BusFixture) throws {
        let count = 100
        let hub = try bus.connect()
        try hub.publish(try hub.createNode(), as: "conformance.hub")
        var peers: [Peer] = []
        for _ in 0..<count {
            let peer = try bus.connect()
            let target = try peer.lookup("conformance.hub")
            try withUnsafeBytes(of: peer.id) { try peer.send(copying: $0, to: target) }
            peers.append(peer)
        }
        #expect(waitUntil(timeoutSeconds: 30) { bus.coordinator.peerCount == count + 1 })
        var senders = Set<UInt64>()
        for _ in 0..<count {
            let message = try hub.receive(timeout: .seconds(30))
            #expect(message.kind == .data && message.payload.bytes.unsafeLoad(as: UInt64.self) == message.sender)
            senders.insert(message.sender)
        }
        #expect(senders == Set(peers.map(\.id)))
        for peer in peers { peer.disconnect() }
        #expect(waitUntil(timeoutSeconds: 30) { bus.coordinator.peerCount == 1 })
    }
}
