@_spi(HostileTesting) import Bus1
import Bus1Core
import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import CBus1Wire
import Foundation
import Glibc
import Testing

/// The built `shm-inspect` binary against a live bus with real peers: a producer
/// process (`burst`) and a consumer in the test process that receives only when
/// the test says so. The checks of a build are ``ShmInspectChecks``, which
/// ``ReleaseToolTests`` runs against the release binary.
@Suite("shm-inspect", .timeLimit(.minutes(10)))
struct ShmInspectTests {
    @Test("Each subcommand shows what the test set up: a stuck consumer's full ring, slices in use; a released slice disappears")
    func listings() throws { try ShmInspectChecks.listings(.debug) }

    @Test("A multicast slice lists every receiver it is queued for")
    func multicast() throws { try ShmInspectChecks.multicast(.debug) }

    @Test("A sender's second pool segment: listed with its audience, its slices listed in segment 1, verify ok")
    func segments() throws { try ShmInspectChecks.segments(.debug) }

    @Test("verify passes on a healthy bus, then names each corrupted place; no subcommand crashes on corrupt memory")
    func corruption() throws { try ShmInspectChecks.corruption(.debug) }

    @Test("Bad arguments and a missing bus are clear errors with exit status 2")
    func badArguments() throws { try ShmInspectChecks.badArguments(.debug) }

    /// Needs root (to become another uid) and util-linux `setpriv`; skipped with the
    /// reason otherwise. The other uid is allowed on the bus as a peer, so
    /// the refusal tested is the introspection rule's, not the connection policy's.
    @Test("Introspection from another uid is refused with a clear error", .enabled(unless: OtherUID.unavailableReason))
    func refusedForOtherUID() throws {
        let other = try OtherUID.make(copying: ["shm-inspect"])
        let nobody = OtherUID.uid
        let bus = try BusFixture.admittingOtherUID("inspect-uid", lookups: false)
        let process = try other.spawn("shm-inspect", ["peers", "--bus", bus.address], mergeStandardError: true)
        let status = process.finish(timeoutSeconds: 60)
        let output = process.lines.joined(separator: "\n")
        #expect(status == .exited(2), "\(output)")
        #expect(output.contains("introspection refused: uid \(nobody) may not inspect the bus") && output.contains("only the bus's own uid and root"),
                "\(output)")
    }

    /// The introspection requests misused on a raw socket: each a typed error,
    /// and the connection keeps being served.
    @Test("Introspection misuse is refused: objects before a snapshot, an index past the end, HELLO from an inspector")
    func introspectionMisuse() throws {
        let bus = try BusFixture("inspect-misuse")
        let connection = try RawControlConnection(address: bus.address)
        func ask(_ message: ControlMessage, id: UInt32) throws -> (ControlMessage, Int) {
            let (reply, replyID, descriptorCount) = try connection.askClosingDescriptors(message, id: id)
            #expect(replyID == id)
            return (reply, descriptorCount)
        }
        let state = ControlMessage.error(code: BUS1_ERR_STATE.rawValue, detail: 0)
        let malformed = ControlMessage.error(code: BUS1_ERR_PROTOCOL.rawValue, detail: 0)
        #expect(try ask(.getObjects(first: 0), id: 1).0 == state)
        let (snapshot, fds) = try ask(.introspect, id: 2)
        guard case .snapshot(_, let objects) = snapshot else { Issue.record("no snapshot: \(snapshot)"); return }
        #expect(fds == 1 && objects >= 1)
        #expect(try ask(.getObjects(first: objects), id: 3).0 == malformed)
        #expect(try ask(.hello(poolSize: 0, ringCapacity: 0), id: 4).0 == state)
        #expect(try ask(.introspect, id: 5).0 == state)
        let (first, firstFDs) = try ask(.getObjects(first: 0), id: 6)
        #expect(first == .objects(first: 0, count: UInt32(firstFDs)) && firstFDs == min(4, Int(objects)))
    }
}

/// The `shm-inspect` checks run against each build: ``ShmInspectTests`` runs the
/// debug binary, ``ReleaseToolTests`` the release one.
enum ShmInspectChecks {
    static func listings(_ build: ToolBuild) throws {
        let bus = try BusFixture("inspect")
        let inspector = Inspector(build: build, address: bus.address)
        let consumer = try bus.connect(ringCapacity: 8)
        let node = try consumer.createNode()
        try consumer.publish(node, as: "inspect.sink")
        let producer = try bus.peer("burst", ["names": "inspect.sink", "count": "8", "size": "100"])
        let sent = producer.awaitLine(prefix: "SENT", timeoutSeconds: 30)
        #expect(sent != nil, "\(producer.transcript)")
        let producerID = try #require(numberField(sent, "peer").map { Int($0) })
        let consumerID = Int(consumer.id)

        let peers = try inspector.rows(["peers"], "peers")
        #expect(peers.count == 2)
        let producerRow = peers.first { Inspector.number($0, "id") == producerID }
        #expect(Inspector.number(producerRow, "pid") == Int(producer.pid))
        #expect((producerRow?["command"] as? String)?.contains("bus1-test-peer burst") == true, "\(peers)")
        #expect(Inspector.number(producerRow, "slicesInUse") == 8 && Inspector.number(producerRow, "poolBytesInUse") == 8 * 256, "\(peers)")
        #expect(Inspector.number(peers.first { Inspector.number($0, "id") == consumerID }, "pid") == Int(getpid()))

        let nodes = try inspector.rows(["nodes"], "nodes")
        let sink = nodes.first { ($0["names"] as? [String]) == ["inspect.sink"] }
        #expect(Inspector.number(sink, "owner") == consumerID, "\(nodes)")
        #expect((sink?["holders"] as? [[String: Any]])?.contains { Inspector.number($0, "peer") == producerID } == true, "\(nodes)")
        let handles = try inspector.rows(["handles"], "handles")
        #expect(handles.contains { Inspector.number($0, "holder") == producerID && Inspector.number($0, "owner") == consumerID
            && ($0["ownerHandle"] as? Bool) == false && ($0["ownerConnected"] as? Bool) == true }, "\(handles)")

        var channels = try inspector.rows(["channels"], "channels")
        #expect(channels.count == 1)
        #expect(Inspector.number(channels.first, "sender") == producerID && Inspector.number(channels.first, "receiver") == consumerID)
        #expect(Inspector.number(channels.first, "capacity") == 8 && Inspector.number(channels.first, "waiting") == 8
                && Inspector.number(channels.first, "outstanding") == 8, "a stuck consumer's ring is full: \(channels)")
        #expect((channels.first?["errors"] as? [String])?.isEmpty == true, "\(channels)")

        var slices = try inspector.rows(["pool", "\(producerID)"], "slices")
        #expect(slices.count == 8, "\(slices)")
        #expect(slices.allSatisfy { $0["state"] as? String == "sent" && Inspector.number($0, "length") == 100
            && ($0["receivers"] as? [NSNumber])?.map(\.intValue) == [consumerID] && ($0["where"] as? [String]) == ["queued"] }, "\(slices)")

        // The payload, in place: "burst 0" in the first slice sent (ticket order).
        let first = slices.min { Inspector.number($0, "ticket")! < Inspector.number($1, "ticket")! }!
        let (dumpStatus, dump) = try inspector.run(["slice", "\(producerID)", "\(Inspector.number(first, "offset")!)"])
        #expect(dumpStatus == .exited(0) && dump.contains("|burst 0"), "\(dump)")

        // Take two; keep one, release the other: its slice disappears once the producer reclaims it.
        let held = try consumer.receive()
        do { _ = try consumer.receive() }
        #expect(producer.awaitLine(prefix: "INUSE 7", timeoutSeconds: 30) != nil, "\(producer.transcript)")
        slices = try inspector.rows(["pool", "\(producerID)"], "slices")
        #expect(slices.count == 7, "\(slices)")
        #expect(slices.filter { ($0["where"] as? [String]) == ["received"] }.count == 1, "\(slices)")
        #expect(slices.filter { ($0["where"] as? [String]) == ["queued"] }.count == 6, "\(slices)")
        channels = try inspector.rows(["channels"], "channels")
        #expect(Inspector.number(channels.first, "waiting") == 6 && Inspector.number(channels.first, "heldByReceiver") == 1, "\(channels)")

        let (verifyStatus, verify) = try inspector.run(["verify"])
        #expect(verifyStatus == .exited(0) && verify.contains("no violations"), "\(verify)")
        let (watchStatus, watch) = try inspector.run(["watch", "--count", "2", "--interval", "0.1"])
        #expect(watchStatus == .exited(0) && watch.contains("peers 2") && watch.contains("CHANNEL"), "\(watch)")
        withExtendedLifetime(held) {}
        producer.signal(SIGKILL)
        _ = producer.finish()
    }

    static func multicast(_ build: ToolBuild) throws {
        let bus = try BusFixture("inspect-multi")
        let inspector = Inspector(build: build, address: bus.address)
        let first = try bus.connect(), second = try bus.connect()
        try first.publish(try first.createNode(), as: "multi.a")
        try second.publish(try second.createNode(), as: "multi.b")
        let producer = try bus.peer("burst", ["names": "multi.a,multi.b", "count": "3"])
        let sent = try #require(producer.awaitLine(prefix: "SENT", timeoutSeconds: 30), "\(producer.transcript)")
        let producerID = try #require(field(sent, "peer"), "\(producer.transcript)")
        let slices = try inspector.rows(["pool", String(producerID)], "slices")
        #expect(slices.count == 3, "\(slices)")
        #expect(slices.allSatisfy { ($0["multicast"] as? Bool) == true && Inspector.number($0, "pending") == 2
            && Set(($0["receivers"] as? [NSNumber])?.map(\.uint64Value) ?? []) == [first.id, second.id] }, "\(slices)")
        let (status, verify) = try inspector.run(["verify"])
        #expect(status == .exited(0), "\(verify)")
        // A holder's handle to a node whose owner left goes with the node (the
        // holder got a destroy notification).
        first.disconnect()
        var handles: [[String: Any]] = []
        let gone = try waitUntil(timeoutSeconds: 10, pollMicroseconds: 10_000) {
            handles = try inspector.rows(["handles"], "handles")
            return !handles.contains { Inspector.number($0, "owner") == Int(first.id) }
        }
        #expect(gone, "\(handles)")
        producer.signal(SIGKILL)
        _ = producer.finish()
    }

    /// A sender in this process with slices in two segments: one in segment 0 and
    /// two in a segment for this uid and one other (`loanInSegment`, so no second
    /// uid is needed; this uid is in the audience, so the same-uid consumer may
    /// receive from it).
    static func segments(_ build: ToolBuild) throws {
        let bus = try BusFixture("inspect-segments")
        let inspector = Inspector(build: build, address: bus.address)
        let consumer = try bus.connect(ringCapacity: 8)
        try consumer.publish(try consumer.createNode(), as: "segments.sink")
        let sender = try bus.connect()
        let target = try sender.lookup("segments.sink")
        let audience = [geteuid(), geteuid() == 65534 ? 65533 : 65534].sorted()
        try Array("segment 0".utf8).withUnsafeBytes { try sender.send(copying: $0, to: target) }
        for i in 0..<2 {
            let text = Array("segment 1 #\(i)".utf8)
            var loan = try sender.loanInSegment(text.count, audience: audience)
            loan.write(text)
            try sender.send(loan, to: target)
        }

        let segments = try inspector.rows(["segments"], "segments").filter { Inspector.number($0, "peer") == Int(sender.id) }
        #expect(segments.map { Inspector.number($0, "segment") } == [0, 1], "\(segments)")
        #expect((segments.first?["audience"] as? [NSNumber])?.map(\.uint32Value) == [geteuid()], "\(segments)")
        #expect((segments.last?["audience"] as? [NSNumber])?.map(\.uint32Value) == audience, "\(segments)")
        #expect(Inspector.number(segments.first, "slicesInUse") == 1 && Inspector.number(segments.last, "slicesInUse") == 2, "\(segments)")
        let peers = try inspector.rows(["peers"], "peers")
        #expect(Inspector.number(peers.first { Inspector.number($0, "id") == Int(sender.id) }, "segments") == 2
                && Inspector.number(peers.first { Inspector.number($0, "id") == Int(sender.id) }, "slicesInUse") == 3, "\(peers)")

        func checkSlices(_ whereabouts: [String]) throws -> [String: Any]? {
            let slices = try inspector.rows(["pool", "\(sender.id)"], "slices")
            #expect(slices.count == 3, "\(slices)")
            let inSegment1 = slices.filter { Inspector.number($0, "segment") == 1 }.sorted { Inspector.number($0, "ticket")! < Inspector.number($1, "ticket")! }
            #expect(inSegment1.count == 2, "\(slices)")
            #expect(inSegment1.map { $0["where"] as? [String] ?? [] } == whereabouts.map { [$0] }, "\(slices)")
            #expect(inSegment1.allSatisfy { ($0["receivers"] as? [NSNumber])?.map(\.uint64Value) == [consumer.id]
                && Inspector.number($0, "offset")! >> Int(BUS1_SEGMENT_SHIFT) == 1
                && Inspector.number($0, "offset")! & Int(BUS1_SEGMENT_OFFSET_MASK) == Inspector.number($0, "segmentOffset")! }, "\(slices)")
            let (status, verify) = try inspector.run(["verify"])
            #expect(status == .exited(0) && verify.contains("3 slices in use; no violations"), "\(verify)")
            return inSegment1.first
        }
        let first = try checkSlices(["queued", "queued"])
        let (tableStatus, table) = try inspector.run(["pool", "\(sender.id)"])
        #expect(tableStatus == .exited(0) && table.split(separator: "\n").first?.hasPrefix("SEG") == true, "\(table)")
        let (dumpStatus, dump) = try inspector.run(["slice", "\(sender.id)", "1:\(Inspector.number(first, "segmentOffset") ?? 0)"])
        #expect(dumpStatus == .exited(0) && dump.contains("|segment 1 #0"), "\(dump)")

        // The consumer takes the segment-0 message and the first of segment 1
        // (mapping segment 1 on the way) and holds both: ledgers and rings still agree.
        let heldFromSegment0 = try consumer.receive()
        let heldFromSegment1 = try consumer.receive()
        _ = try checkSlices(["received", "queued"])
        withExtendedLifetime(heldFromSegment0) {}
        withExtendedLifetime(heldFromSegment1) {}
    }

    /// Corruption written on purpose into a channel the test process sends on;
    /// nobody reads the ring (the consumer never receives), so it stays.
    static func corruption(_ build: ToolBuild) throws {
        let bus = try BusFixture("inspect-corrupt")
        let inspector = Inspector(build: build, address: bus.address)
        let consumer = try bus.connect(ringCapacity: 8)
        try consumer.publish(try consumer.createNode(), as: "corrupt.sink")
        let attacker = try bus.connect()
        let target = try attacker.lookup("corrupt.sink")
        try attacker.send(copying: UnsafeRawBufferPointer(start: nil, count: 0), to: target)
        let channel = try #require(attacker.outboundChannelIDs.first)

        func verify() throws -> (Bus1Linux.ExitStatus, String) { try inspector.run(["verify"]) }
        let slice = try #require(Inspector.number(try inspector.rows(["pool", "\(attacker.id)"], "slices").first, "offset"))
        var (status, output) = try verify()
        #expect(status == .exited(0) && output.contains("no violations"), "\(output)")

        // An offset far outside the sender's pool.
        try attacker.sendForged(to: target, .init(offset: 1 << 40))
        (status, output) = try verify()
        #expect(status == .exited(1), "\(output)")
        #expect(output.contains("VIOLATION channel \(channel) (\(attacker.id) -> \(consumer.id))") && output.contains("outside the sender's payload area")
                && output.contains("[slice.bounds]"), "\(output)")

        // A ring index past capacity.
        let subTail = MemoryLayout<bus1_channel_header>.offset(of: \.sub_tail)!
        try attacker.overwriteChannel(to: target, atByteOffset: subTail, with: 1 << 20)
        (status, output) = try verify()
        #expect(status == .exited(1) && output.contains("sub_tail 1048576 is more than capacity 8 ahead") && output.contains("[ring.index]"),
                "\(output)")

        // A smashed header and capacity: still no crash anywhere, and verify says where.
        try attacker.overwriteChannel(to: target, atByteOffset: 0, with: 0xdead_beef_dead_beef)
        try attacker.overwriteChannel(to: target, atByteOffset: MemoryLayout<bus1_channel_header>.offset(of: \.capacity)!, with: .max)
        for listing in [["peers"], ["nodes"], ["handles"], ["channels"], ["pool", "\(attacker.id)"], ["channels", "--json"],
                        ["slice", "\(attacker.id)", "\(slice)"], ["watch", "--count", "1"]] {
            let (listingStatus, text) = try inspector.run(listing)
            #expect(listingStatus == .exited(0), "\(listing): \(text)")
        }
        (status, output) = try verify()
        #expect(status == .exited(1) && output.contains("VIOLATION channel \(channel)") && output.contains("[channel.header]"), "\(output)")
    }

    /// Problems found only once attached (the flags themselves are checked at
    /// start: `ToolCommandLineTests`).
    static func badArguments(_ build: ToolBuild) throws {
        let bus = try BusFixture("inspect-args")
        let peer = try bus.connect()
        for (arguments, message) in [
            (["peers", "--bus", bus.address + ".missing"], "no bus at"),
            (["pool", "999", "--bus", bus.address], "no peer 999 on this bus"),
            (["slice", "\(peer.id)", "16", "--bus", bus.address], "offset 16 is not in peer \(peer.id)'s payload area"),
        ] {
            let process = try ChildProcess("shm-inspect", arguments, build: build, mergeStandardError: true)
            #expect(process.finish(timeoutSeconds: 60) == .exited(2), "\(process.transcript)")
            #expect(process.lines.contains { $0.hasPrefix("shm-inspect: ") && $0.contains(message) }, "\(process.transcript)")
        }
    }
}
