import Bus1Core
import CBus1Wire
import Testing

@Suite("Control messages", .timeLimit(.minutes(10)))
struct ControlMessageTests {
    static let samples: [ControlMessage] = [
        .hello(poolSize: 1 << 20, ringCapacity: 64), .poolMapped, .nodeCreate,
        .namePublish(handle: 3, name: "org.example.service"), .nameLookup(name: "ü-name"),
        .handleRelease(handle: 9), .violation(channel: 4, reason: 6), .channelClose(channel: 4), .orderingStall(channel: 4), .ok,
        .error(code: 3, detail: 0), .welcome(.init(peer: 2, poolSize: 1 << 26, ringCapacity: 256, flags: 1, coordinatorRing: 7, coordinatorRingCapacity: 4096)), .nodeCreated(handle: 1),
        .handleGranted(.init(handle: 5, node: 1, owner: 2, channel: 3, capacity: 256, newChannel: true, ownerUID: 1000)),
        .channelOpened(.init(channel: 3, sender: 1, node: 1, capacity: 256)),
        .channelGrant(channel: 3, node: 8), .channelClosed(channel: 3, otherPeer: 2, reason: 2),
        .introspect, .getObjects(first: 8), .snapshot(size: 4096, objectCount: 9), .objects(first: 4, count: 3),
        .nodeDestroy(handles: [1, 2, 3]), .nodeDestroy(handles: Array(1...32)), .destroyed(ticket: 77), .reset,
        .attach(destination: 4, handles: [], fdCount: 2, sequence: 0), .attach(destination: 4, handles: Array(10...25), fdCount: 0, sequence: 1 << 40),
        .attachment(channel: 3, handles: [5, BUS1_INVALID_ID], fdCount: 4, sequence: 77),
        .handleArrived(.init(handle: 6, node: 2, owner: 3, channel: 9, capacity: 64, newChannel: false, ownerUID: 0)),
        .segmentOpen(.init(size: 0, audience: [1000])), .segmentOpen(.init(size: 1 << 20, audience: Array(1...16))),
        .segmentSeal(index: 3), .segmentGet(channel: 7, index: 15),
        .segmentGranted(.init(owner: 4, size: 1 << 20, index: 2, audience: [0, 65534])),
    ]

    @Test("Every message survives encode and decode", arguments: samples)
    func roundTrip(message: ControlMessage) throws {
        let bytes = message.encode(requestID: 42)
        let (decoded, id) = try bytes.withUnsafeBytes { try ControlMessage.decode($0, descriptorCount: message.descriptorCount) }
        #expect(decoded == message)
        #expect(id == 42)
    }

    @Test("Malformed datagrams are typed errors")
    func malformed() {
        func decode(_ bytes: [UInt8], fds: Int = 0) throws {
            _ = try bytes.withUnsafeBytes { try ControlMessage.decode($0, descriptorCount: fds) }
        }
        let valid = ControlMessage.nodeCreate.encode(requestID: 1)
        #expect(throws: ProtocolError.truncated(3)) { try decode([1, 2, 3]) }
        var m = valid; m[0] ^= 1
        #expect(throws: ProtocolError.self) { try decode(m) }
        m = valid; m[4] = 9
        #expect(throws: ProtocolError.versionMismatch(9)) { try decode(m) }
        m = valid; m[6] = 250
        #expect(throws: ProtocolError.unknownType(250)) { try decode(m) }
        #expect(throws: ProtocolError.sizeMismatch(declared: 16, actual: 20)) { try decode(valid + [0, 0, 0, 0]) }
        #expect(throws: ProtocolError.descriptorCount(type: UInt16(BUS1_MSG_NODE_CREATE.rawValue), expected: 0, actual: 1)) {
            try decode(valid, fds: 1)
        }
        var name = ControlMessage.nameLookup(name: "abc").encode(requestID: 1)
        name[24] = 0
        #expect(throws: ProtocolError.badName) { try decode(name) }
        name = ControlMessage.nameLookup(name: "abc").encode(requestID: 1)
        name[29] = 0  // a NUL inside the name
        #expect(throws: ProtocolError.badName) { try decode(name) }

        // Counts past the fixed arrays, or an empty destroy, are refused before anything reads them.
        var destroy = ControlMessage.nodeDestroy(handles: [1]).encode(requestID: 1)
        destroy[16] = 0
        #expect(throws: ProtocolError.badField("count")) { try decode(destroy) }
        destroy[16] = 33
        #expect(throws: ProtocolError.badField("count")) { try decode(destroy) }
        var attach = ControlMessage.attach(destination: 1, handles: [], fdCount: 0, sequence: 0).encode(requestID: 1)
        attach[24] = 17
        #expect(throws: ProtocolError.badField("handle_count")) { try decode(attach) }
        attach[24] = 0; attach[28] = 5
        #expect(throws: ProtocolError.badField("fd_count")) { try decode(attach, fds: 5) }
        attach[28] = 2  // says two fds, came with one
        #expect(throws: ProtocolError.descriptorCount(type: UInt16(BUS1_MSG_ATTACH.rawValue), expected: 2, actual: 1)) {
            try decode(attach, fds: 1)
        }

        // An audience is 1...16 uids, strictly ascending (one uid once: no ambiguity in which segment is whose).
        var segment = ControlMessage.segmentOpen(.init(size: 0, audience: [5, 7])).encode(requestID: 1)
        segment[36] = 0
        #expect(throws: ProtocolError.badField("uid_count")) { try decode(segment) }
        segment[36] = 17
        #expect(throws: ProtocolError.badField("uid_count")) { try decode(segment) }
        segment[36] = 2; segment[44] = 5  // [5, 5]
        #expect(throws: ProtocolError.badField("uids")) { try decode(segment) }
        var seal = ControlMessage.segmentSeal(index: 1).encode(requestID: 1)
        seal[16] = 1  // a seal names no channel
        #expect(throws: ProtocolError.badField("channel_id")) { try decode(seal) }
    }
}

extension ControlMessage: CustomTestStringConvertible {
    public var testDescription: String { "type \(type)" }
}
