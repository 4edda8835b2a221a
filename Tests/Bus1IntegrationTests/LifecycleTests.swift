import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// The capability lifecycle across real processes: handles and fds travelling in
/// messages, release and destroy notifications ordered with data, reset.
@Suite("Capability lifecycle", .timeLimit(.minutes(10)))
struct LifecycleTests {
    @Test("A handle passed A→B→C reaches the node's owner; the first release is cancelled by the other relay holding it; A is notified once")
    func handleTravelsAndReleaseIsCancelled() throws {
        let bus = try BusFixture("relay")
        let owner = try bus.connect()
        let node = try owner.createNode()
        let c = try bus.peer("relay", ["name": "relay.c"])
        let b = try bus.peer("relay", ["name": "relay.b", "next": "relay.c"])
        let cReady = try #require(c.awaitLine(prefix: "READY", timeoutSeconds: 30), "\(c.transcript)")
        let bReady = try #require(b.awaitLine(prefix: "READY", timeoutSeconds: 30), "\(b.transcript)")
        let cID = try #require(numberField(cReady, "peer")), bID = try #require(numberField(bReady, "peer"))

        let toB = try owner.lookup("relay.b")
        try owner.send(try owner.loan(0), to: toB, attaching: [node])
        #expect(b.awaitLine(prefix: "FORWARDED", timeoutSeconds: 30) != nil, "\(b.transcript)")
        #expect(c.awaitLine(prefix: "REACHED", timeoutSeconds: 30) != nil, "\(c.transcript)")

        let reached = try owner.receive(timeout: .seconds(30))
        #expect(reached.kind == .data && reached.sender == cID && reached.node == node)
        #expect(reached.copyPayload() == Array("reached".utf8))
        // B and C each release their handle; whichever comes first finds the other
        // still holding one, so only the last release notifies, ordered after
        // everything its releaser sent.
        let released = try receive(on: owner, until: .nodeReleased)
        #expect(released.sender == cID || released.sender == bID)
        if released.sender == cID { #expect(released.ticket > reached.ticket) }
        #expect(released.before.isEmpty, "\(released.before)")
        #expect(try owner.tryReceive() == nil, "a second release notification")
        b.signal(SIGKILL); c.signal(SIGKILL)
        _ = b.finish(); _ = c.finish()
    }

    @Test("Destroy racing a send: every message ordered before the destruction is delivered, none after; the sender learns in order")
    func destroyRacesSends() throws {
        let bus = try BusFixture("race")
        let owner = try bus.connect()
        let node = try owner.createNode()
        try owner.publish(node, as: "race.node")
        let racer = try bus.peer("racer", ["name": "race.node"])
        #expect(racer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(racer.transcript)")
        var next: UInt64 = 0
        func take(_ message: borrowing Message) {
            #expect(message.kind == .data)
            #expect(message.payload.bytes.unsafeLoad(as: UInt64.self) == next, "messages lost or reordered")
            next += 1
        }
        for _ in 0..<300 { take(try owner.receive(timeout: .seconds(30))) }
        let destroyedAt = try owner.destroy([node])
        // Whatever is delivered now was ordered before the destruction; the owner
        // keeps taking (and dropping) so the racer has credit until it learns.
        var stopped: String?
        let deadline = monotonicNanoseconds() + 30_000_000_000
        while stopped == nil && monotonicNanoseconds() < deadline {
            while let message = try owner.tryReceive() {
                #expect(message.ticket < destroyedAt)
                take(message)
            }
            stopped = racer.awaitLine(prefix: "STOPPED", timeoutSeconds: 0.005)
        }
        while let message = try owner.tryReceive() { #expect(message.ticket < destroyedAt); take(message) }
        let stoppedLine = try #require(stopped, "\(racer.transcript)")
        let sent = try #require(numberField(stoppedLine, "sent"))
        #expect(numberField(stoppedLine, "ticket") == destroyedAt, "the holder's notification carries the destruction's ticket")
        #expect(next <= sent)
        #expect(owner.currentStatistics.messagesReceived == Int(next))
        print("destroy race: \(sent) sent, \(next) delivered before the destruction, \(sent - next) dropped after it")
        racer.signal(SIGKILL)
        _ = racer.finish()
    }

    @Test("A receiver that leaves: what it released counts as read, the rest as abandoned by the sender")
    func abandonedMessages() throws {
        let bus = try BusFixture("abandoned")
        let sender = try bus.connect()
        var receiver: Peer? = try bus.connect()
        let node = try receiver!.createNode()
        try receiver!.publish(node, as: "leaver")
        let target = try sender.lookup("leaver")
        for i in 0..<5 { try sender.send(copying: [UInt8(i)], to: target) }
        for _ in 0..<2 { _ = try receiver!.receive(timeout: .seconds(5)) }  // read and released
        receiver!.disconnect()
        receiver = nil
        var statistics = sender.currentStatistics
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while statistics.slicesInUse > 0 && monotonicNanoseconds() < deadline {
            usleep(1000)
            statistics = sender.currentStatistics
        }
        #expect(statistics.slicesInUse == 0 && statistics.messagesAbandoned == 3, "\(statistics)")
    }

    @Test("A batch destroy is atomic: one ticket for every holder; others are refused with notOwner, nothing destroyed")
    func batchDestroyIsAtomic() throws {
        let bus = try BusFixture("batch")
        let owner = try bus.connect()
        let nodes = try (0..<3).map { i in
            let node = try owner.createNode()
            try owner.publish(node, as: "batch.\(i)")
            return node
        }
        let names = "batch.0,batch.1,batch.2"
        let watchers = try (0..<2).map { _ in try bus.peer("watch", ["names": names, "notes": "3"]) }
        for watcher in watchers { #expect(watcher.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(watcher.transcript)") }

        let stranger = try bus.connect()
        let held = try stranger.lookup("batch.0")
        #expect(throws: Bus1Error.refused(.notOwner)) { try stranger.destroy([held]) }
        #expect(throws: Bus1Error.refused(.handleUnknown)) { try owner.destroy([nodes[1], Handle(id: 1 << 40)]) }
        _ = try stranger.lookup("batch.1")  // the refused batch destroyed nothing

        let ticket = try owner.destroy(nodes)
        for watcher in watchers {
            #expect(watcher.awaitLine(prefix: "DONE", timeoutSeconds: 30) != nil, "\(watcher.transcript)")
            let notes = watcher.lines.filter { $0.hasPrefix("NOTE") }
            #expect(notes.count == 3 && notes.allSatisfy { $0.contains("kind=nodeDestroyed") && numberField($0, "ticket") == ticket },
                    "\(watcher.transcript)")
        }
        let note = try stranger.receive(timeout: .seconds(10))
        #expect(note.kind == .nodeDestroyed && note.node == held && note.ticket == ticket)
        #expect(throws: Bus1Error.nodeDestroyed(held)) { try stranger.send(copying: UnsafeRawBufferPointer(start: nil, count: 0), to: held) }
        try stranger.release(held)  // forgets it; the coordinator did already
        #expect(throws: Bus1Error.refused(.nameUnknown)) { _ = try stranger.lookup("batch.1") }
        for watcher in watchers { watcher.signal(SIGKILL); _ = watcher.finish() }
    }

    @Test("Reset destroys the peer's nodes and releases its handles in one step; it stays connected")
    func resetInOneStep() throws {
        let bus = try BusFixture("reset")
        let other = try bus.connect()
        let otherNode = try other.createNode()
        try other.publish(otherNode, as: "reset.other")
        let peer = try bus.connect()
        try peer.publish(try peer.createNode(), as: "reset.mine")
        let held = try peer.lookup("reset.other")
        try peer.send(copying: UnsafeRawBufferPointer(start: nil, count: 0), to: held)
        let watcher = try bus.peer("watch", ["names": "reset.mine", "notes": "1"])
        #expect(watcher.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(watcher.transcript)")

        let ticket = try peer.reset()
        #expect(watcher.awaitLine(prefix: "DONE", timeoutSeconds: 30) != nil, "\(watcher.transcript)")
        #expect(watcher.lines.contains { $0.contains("kind=nodeDestroyed") && numberField($0, "ticket") == ticket }, "\(watcher.transcript)")
        let released = try receive(on: other, until: .nodeReleased)
        #expect(released.sender == peer.id && released.ticket == ticket)
        #expect(released.before.count == 1 && released.before[0].0 == .data, "the message sent before the reset comes first")
        // Still connected: it can start over.
        let fresh = try peer.createNode()
        try peer.publish(fresh, as: "reset.mine")
        #expect(try peer.lookup("reset.other") != held, "handle ids are never reused")
        watcher.signal(SIGKILL)
        _ = watcher.finish()
    }

    @Test("Fds travel in messages and work (close-on-exec in the receiver); Unix sockets and bus memfds are refused, typed, and the loan comes back")
    func descriptorsTravel() throws {
        let bus = try BusFixture("fds")
        let sender = try bus.connect()
        let sink = try bus.peer("fdsink", ["name": "fd.sink"])
        #expect(sink.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(sink.transcript)")
        let target = try sender.lookup("fd.sink")

        // Close-on-exec, as everything the test process opens: other tests spawn
        // children meanwhile.
        let pair = try ChildDescriptors.streamSocketPair()
        let socketPair = [pair.0, pair.1]
        defer { close(socketPair[0]); close(socketPair[1]) }
        #expect(throws: Bus1Error.refused(.descriptorRefused(.unixSocket))) {
            try sender.send(try sender.loan(64), to: target, attaching: [], fileDescriptors: [socketPair[0]])
        }
        let lookalike = try MemFD.create(name: "bus1-pool-7", size: 4096)  // named as the coordinator names pools
        let busLookalike = lookalike.rawValue
        #expect(throws: Bus1Error.refused(.descriptorRefused(.busObject))) {
            try sender.send(try sender.loan(64), to: target, attaching: [], fileDescriptors: [busLookalike])
        }
        #expect(throws: Bus1Error.attachmentTooLarge(handles: 0, fileDescriptors: 5)) {
            try sender.send(try sender.loan(64), to: target, attaching: [], fileDescriptors: [0, 1, 2, 0, 1])
        }
        #expect(sender.currentStatistics.slicesInUse == 0, "a refused send frees its loan")

        var pipes: [[Int32]] = []
        for _ in 0..<2 {
            let pipe = try ChildDescriptors.pipe()
            pipes.append([pipe.read, pipe.write])
        }
        try sender.send(try sender.loan(16), to: target, attaching: [], fileDescriptors: pipes.map { $0[1] })
        for fds in pipes { close(fds[1]) }  // the sink holds its own copies
        #expect(sink.awaitLine(prefix: "WROTE", timeoutSeconds: 30) == "WROTE fds=2 cloexec=2", "\(sink.transcript)")
        for (i, fds) in pipes.enumerated() {
            var buffer = [UInt8](repeating: 0, count: 16)
            let n = read(fds[0], &buffer, buffer.count)
            #expect(n > 0 && Array(buffer.prefix(max(n, 0))) == Array("fd \(i)".utf8))
            close(fds[0])
        }
        sink.signal(SIGKILL)
        _ = sink.finish()
    }

    @Test("A sender may pass only handles it holds (a lying attachment flag: HostileTests); a handle to the receiver's own node comes back as its own; one to a node destroyed first arrives invalid")
    func attachmentsAreChecked() throws {
        let bus = try BusFixture("attach-checks")
        let receiver = try bus.connect()
        try receiver.publish(try receiver.createNode(), as: "checks.node")
        let sender = try bus.connect()
        let target = try sender.lookup("checks.node")
        #expect(throws: Bus1Error.unknownHandle(Handle(id: 999))) {
            try sender.send(try sender.loan(8), to: target, attaching: [Handle(id: 999)])
        }
        #expect(throws: Bus1Error.attachmentTooLarge(handles: 17, fileDescriptors: 0)) {
            try sender.send(try sender.loan(8), to: target, attaching: Array(repeating: target, count: 17))
        }
        // A handle to the receiver's own node comes back as the receiver's own id.
        try sender.send(try sender.loan(8), to: target, attaching: [target])
        let message = try receiver.receive(timeout: .seconds(10))
        #expect(message.handles == [message.node])

        // A handle whose node is destroyed before the message's ticket arrives
        // invalid, even though the sender had not heard of the destruction yet.
        let owner = try bus.connect()
        let doomedNode = try owner.createNode()
        try owner.publish(doomedNode, as: "checks.doomed")
        let doomed = try sender.lookup("checks.doomed")
        let destroyedAt = try owner.destroy([doomedNode])
        try sender.send(try sender.loan(8), to: target, attaching: [doomed, target])
        let late = try receiver.receive(timeout: .seconds(10))
        #expect(late.kind == .data && late.ticket > destroyedAt)
        #expect(late.handles == [.invalid, late.node])
    }

    @Test("Limits are typed: fds past the per-uid cap are refused; a peer that lets its coordinator ring fill is disconnected, the destroy goes on")
    func lifecycleLimits() throws {
        let bus = try BusFixture("lifecycle-limits") {
            $0.maximumQueuedDescriptorsPerUID = 1
            $0.coordinatorRingCapacity = 2
        }
        let owner = try bus.connect()
        let nodes = try (0..<3).map { i in
            let node = try owner.createNode()
            try owner.publish(node, as: "limits.\(i)")
            return node
        }
        let sender = try bus.connect()
        let target = try sender.lookup("limits.0")
        let pipe = try ChildDescriptors.pipe()
        let fds = [pipe.read, pipe.write]
        defer { close(fds[0]); close(fds[1]) }
        #expect(throws: Bus1Error.refused(.quotaExceeded(.fileDescriptors))) {
            try sender.send(try sender.loan(8), to: target, attaching: [], fileDescriptors: [fds[0], fds[1]])
        }
        try sender.send(try sender.loan(8), to: target, attaching: [], fileDescriptors: [fds[1]])

        // The holder never receives: three notifications do not fit its ring of two.
        let holder = try bus.connect()
        for i in 0..<3 { _ = try holder.lookup("limits.\(i)") }
        let before = bus.coordinator.peerCount
        let ticket = try owner.destroy(nodes)
        #expect(ticket > 0)
        #expect(bus.coordinator.peerCount == before - 1, "the holder was disconnected")
        #expect(throws: Bus1Error.coordinatorGone) { _ = try holder.receive(timeout: .seconds(5)) }
        let note = try sender.receive(timeout: .seconds(5))  // a holder with room is notified
        #expect(note.kind == .nodeDestroyed && note.node == target && note.ticket == ticket)
    }
}
