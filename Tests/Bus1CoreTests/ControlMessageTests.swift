import Bus1Core
import CBus1Wire
import Testing

@Suite("Control messages", .timeLimit(.minutes(10)))
struct ControlMessageTests {
    static let samples: [ControlMessage] = [
        .hello(poolSize: 1 << 20, ringCapacity: 64), .poolMapped, .nodeCreate,
        .namePublish(handle: 3, name: "org.example.service"), .nameLookup(name: "ü-name"),
        .handleRelease(handle: 9), .violation(channel: 4, reason: 6), .channelClose(channel: 4), .orderingStall(channel: 4), .ok,
        .error(code: 3, detail: 0), .welcome(.init(peer: 2, poolSize: 1 << 26, ringCapacity: 256, flags: 1, coordinatorRing: 7, coordinatorRingCapacity: 4096, uid: 1000, pid: 4242)), .nodeCreated(handle: 1),
        .handleGranted(.init(handle: 5, node: 1, owner: 2, channel: 3, capacity: 256, newChannel: true, ownerUID: 1000, ownerPID: 77)),
        .channelOpened(.init(channel: 3, sender: 1, node: 1, capacity: 256, senderUID: 1001, senderPID: 99)),
        .channelGrant(channel: 3, node: 8), .channelClosed(channel: 3, otherPeer: 2, reason: 2),
        .introspect, .getObjects(first: 8), .snapshot(size: 4096, objectCount: 9), .objects(first: 4, count: 3),
        .nodeDestroy(handles: [1, 2, 3]), .nodeDestroy(handles: Array(1...32)), .destroyed(ticket: 77), .reset,
        .attach(destination: 4, handles: [], fdCount: 2, sequence: 0), .attach(destination: 4, handles: Array(10...25), fdCount: 0, sequence: 1 << 40),
        .attachment(channel: 3, handles: [5, BUS1_INVALID_ID], fdCount: 4, sequence: 77),
        .handleArrived(.init(handle: 6, node: 2, owner: 3, channel: 9, capacity: 64, newChannel: false, ownerUID: 0, ownerPID: -1)),
        .segmentOpen(.init(size: 0, audience: [1000])), .segmentOpen(.init(size: 1 << 20, audience: Array(1...16))),
        .segmentSeal(index: 3), .segmentGet(channel: 7, index: 15),
        .segmentGranted(.init(owner: 4, size: 1 << 20, index: 2, audience: [0, 65534])),
        .nameList(after: nil), .nameList(after: "org.example.ü"), .nameList(after: String(repeating: "n", count: 255)),
        .names(.init(total: 0, remaining: 0, entries: [])),
        .names(.init(total: 20, remaining: 11, entries: (0..<Int(BUS1_NAME_LIST_MAX)).map {
            .init(name: "name.\($0)", owner: UInt64($0), uid: 1000, pid: Int32($0) + 100, command: $0 == 0 ? "" : "bus1-test-peer")
        })),
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

    /// NAME_LIST: `after_length` (offset 16), `after` (20...275), `_reserved` (276).
    @Test("Malformed NAME_LIST requests and NAMES replies are typed errors")
    func malformedNameList() {
        func decode(_ bytes: [UInt8]) throws {
            _ = try bytes.withUnsafeBytes { try ControlMessage.decode($0, descriptorCount: 0) }
        }
        let first = ControlMessage.nameList(after: nil).encode(requestID: 1)
        #expect(first.count == 16 + 264)
        var m = first; m[16] = 0x2C; m[17] = 1  // after_length 300 > BUS1_NAME_MAX
        #expect(throws: ProtocolError.badName) { try decode(m) }
        m = first; m[20] = UInt8(ascii: "x")  // "from the first", yet a cursor byte set
        #expect(throws: ProtocolError.badField("after")) { try decode(m) }
        m = first; m[276] = 1
        #expect(throws: ProtocolError.badField("_reserved")) { try decode(m) }
        m = ControlMessage.nameList(after: "ab").encode(requestID: 1); m[21] = 0xFF  // not UTF-8
        #expect(throws: ProtocolError.badName) { try decode(m) }
        m = ControlMessage.nameList(after: "ab").encode(requestID: 1); m[21] = 0  // a NUL inside
        #expect(throws: ProtocolError.badName) { try decode(m) }
        // The wrong size: short, or with trailing bytes (the header's size says so too).
        var short = Array(first.dropLast(4)); short[8] = UInt8(truncatingIfNeeded: short.count)
        short[9] = UInt8(short.count >> 8)
        #expect(throws: ProtocolError.bodySize(type: UInt16(BUS1_MSG_NAME_LIST.rawValue), size: 260)) { try decode(short) }

        // NAMES: `count` (offset 24) at most BUS1_NAME_LIST_MAX; entries valid names, strictly ascending.
        let entry = { (name: String) in ControlMessage.NameEntry(name: name, owner: 1, uid: 2, pid: 3, command: "c") }
        var names = ControlMessage.names(.init(total: 2, remaining: 0, entries: [entry("a"), entry("b")])).encode(requestID: 1)
        names[24] = UInt8(BUS1_NAME_LIST_MAX + 1)
        #expect(throws: ProtocolError.badField("count")) { try decode(names) }
        names = ControlMessage.names(.init(total: 2, remaining: 0, entries: [entry("b"), entry("a")])).encode(requestID: 1)
        #expect(throws: ProtocolError.badField("entries")) { try decode(names) }
        names = ControlMessage.names(.init(total: 2, remaining: 0, entries: [entry("a"), entry("a")])).encode(requestID: 1)
        #expect(throws: ProtocolError.badField("entries")) { try decode(names) }
        names = ControlMessage.names(.init(total: 1, remaining: 0, entries: [entry("a")])).encode(requestID: 1)
        names[32 + 32] = 0  // the entry's name length 0
        #expect(throws: ProtocolError.badName) { try decode(names) }
    }

    @Test("Credentials sit where the wire header says, in fields that were reserved before")
    func credentialOffsets() {
        let opened = ControlMessage.channelOpened(.init(channel: 1, sender: 2, node: 3, capacity: 64, senderUID: 0x1122_3344, senderPID: 0x0506_0708))
            .encode(requestID: 0)
        #expect(Array(opened[(16 + 24)..<(16 + 32)]) == [0x44, 0x33, 0x22, 0x11, 0x08, 0x07, 0x06, 0x05])
        let grant = ControlMessage.handleGranted(.init(handle: 1, node: 2, owner: 3, channel: 4, capacity: 64, newChannel: false,
                                                       ownerUID: 7, ownerPID: 0x0102_0304)).encode(requestID: 1)
        #expect(Array(grant[(16 + 44)..<(16 + 48)]) == [0x04, 0x03, 0x02, 0x01])
    }
}

extension ControlMessage: CustomTestStringConvertible {
    public var testDescription: String { "type \(type)" }
}
