import CBus1Wire

/// One control-socket datagram (`struct bus1_msg_header` + one body), decoded and
/// checked. Encoding and decoding live only here; the layouts live only in the wire
/// header.
public enum ControlMessage: Sendable, Equatable {
    // requests
    case hello(poolSize: UInt64, ringCapacity: UInt32)
    case poolMapped
    case nodeCreate
    case namePublish(handle: UInt64, name: String)
    case nameLookup(name: String)
    case handleRelease(handle: UInt64)
    case violation(channel: UInt64, reason: UInt32)
    case channelClose(channel: UInt64)
    case orderingStall(channel: UInt64)
    case introspect
    case getObjects(first: UInt32)
    case nodeDestroy(handles: [UInt64])
    /// `sequence`: the submission index the attached message will take.
    case attach(destination: UInt64, handles: [UInt64], fdCount: UInt32, sequence: UInt64)
    case reset
    /// A new segment of the caller's pool; `index` and `owner` are 0.
    case segmentOpen(Segment)
    case segmentSeal(index: UInt32)
    case segmentGet(channel: UInt64, index: UInt32)
    // replies
    case ok
    case error(code: UInt32, detail: UInt32)
    case welcome(Welcome)
    case nodeCreated(handle: UInt64)
    case handleGranted(HandleGrant)
    case snapshot(size: UInt64, objectCount: UInt32)
    case objects(first: UInt32, count: UInt32)
    case destroyed(ticket: UInt64)
    /// The reply to ``segmentOpen(_:)`` (the memfd, writable: to its owner only)
    /// and to ``segmentGet(channel:index:)`` (read-only).
    case segmentGranted(Segment)
    // events
    case channelOpened(ChannelOpening)
    case channelGrant(channel: UInt64, node: UInt64)
    case channelClosed(channel: UInt64, otherPeer: UInt64, reason: UInt32)
    case handleArrived(HandleGrant)
    /// For the descriptor at submission index `sequence` of `channel`.
    case attachment(channel: UInt64, handles: [UInt64], fdCount: UInt32, sequence: UInt64)

    /// `bus1_msg_welcome`.
    public struct Welcome: Sendable, Equatable {
        public var peer: UInt64, poolSize: UInt64, ringCapacity: UInt32, flags: UInt32
        public var coordinatorRing: UInt64, coordinatorRingCapacity: UInt32
        public init(peer: UInt64, poolSize: UInt64, ringCapacity: UInt32, flags: UInt32,
                    coordinatorRing: UInt64, coordinatorRingCapacity: UInt32) {
            self.peer = peer; self.poolSize = poolSize; self.ringCapacity = ringCapacity; self.flags = flags
            self.coordinatorRing = coordinatorRing; self.coordinatorRingCapacity = coordinatorRingCapacity
        }
    }

    /// `bus1_msg_handle_granted`.
    public struct HandleGrant: Sendable, Equatable {
        public var handle: UInt64, node: UInt64, owner: UInt64, channel: UInt64
        public var capacity: UInt32, newChannel: Bool
        /// The owner's uid: the audience that can read what is sent to the node.
        public var ownerUID: UInt32
        public init(handle: UInt64, node: UInt64, owner: UInt64, channel: UInt64, capacity: UInt32, newChannel: Bool, ownerUID: UInt32) {
            self.handle = handle; self.node = node; self.owner = owner; self.channel = channel
            self.capacity = capacity; self.newChannel = newChannel; self.ownerUID = ownerUID
        }
    }

    /// `bus1_msg_channel_opened`.
    public struct ChannelOpening: Sendable, Equatable {
        public var channel: UInt64, sender: UInt64, node: UInt64, capacity: UInt32
        public init(channel: UInt64, sender: UInt64, node: UInt64, capacity: UInt32) {
            self.channel = channel; self.sender = sender; self.node = node; self.capacity = capacity
        }
    }

    /// `bus1_msg_segment`: segment `index` of `owner`'s pool, `size` bytes,
    /// readable by peers of the uids in `audience` (strictly ascending).
    public struct Segment: Sendable, Equatable {
        public var owner: UInt64, size: UInt64, index: UInt32, audience: [UInt32]
        public init(owner: UInt64 = 0, size: UInt64, index: UInt32 = 0, audience: [UInt32]) {
            self.owner = owner; self.size = size; self.index = index; self.audience = audience
        }
    }

    /// The `bus1_msg_type` of this message.
    public var type: UInt32 {
        switch self {
        case .hello: BUS1_MSG_HELLO.rawValue
        case .poolMapped: BUS1_MSG_POOL_MAPPED.rawValue
        case .nodeCreate: BUS1_MSG_NODE_CREATE.rawValue
        case .namePublish: BUS1_MSG_NAME_PUBLISH.rawValue
        case .nameLookup: BUS1_MSG_NAME_LOOKUP.rawValue
        case .handleRelease: BUS1_MSG_HANDLE_RELEASE.rawValue
        case .violation: BUS1_MSG_VIOLATION.rawValue
        case .channelClose: BUS1_MSG_CHANNEL_CLOSE.rawValue
        case .orderingStall: BUS1_MSG_ORDERING_STALL.rawValue
        case .introspect: BUS1_MSG_INTROSPECT.rawValue
        case .getObjects: BUS1_MSG_GET_OBJECTS.rawValue
        case .nodeDestroy: BUS1_MSG_NODE_DESTROY.rawValue
        case .attach: BUS1_MSG_ATTACH.rawValue
        case .reset: BUS1_MSG_RESET.rawValue
        case .segmentOpen: BUS1_MSG_SEGMENT_OPEN.rawValue
        case .segmentGet: BUS1_MSG_SEGMENT_GET.rawValue
        case .segmentSeal: BUS1_MSG_SEGMENT_SEAL.rawValue
        case .segmentGranted: BUS1_MSG_SEGMENT_GRANTED.rawValue
        case .destroyed: BUS1_MSG_DESTROYED.rawValue
        case .handleArrived: BUS1_MSG_HANDLE_ARRIVED.rawValue
        case .attachment: BUS1_MSG_ATTACHMENT.rawValue
        case .ok: BUS1_MSG_OK.rawValue
        case .error: BUS1_MSG_ERROR.rawValue
        case .welcome: BUS1_MSG_WELCOME.rawValue
        case .nodeCreated: BUS1_MSG_NODE_CREATED.rawValue
        case .handleGranted: BUS1_MSG_HANDLE_GRANTED.rawValue
        case .snapshot: BUS1_MSG_SNAPSHOT.rawValue
        case .objects: BUS1_MSG_OBJECTS.rawValue
        case .channelOpened: BUS1_MSG_CHANNEL_OPENED.rawValue
        case .channelGrant: BUS1_MSG_CHANNEL_GRANT.rawValue
        case .channelClosed: BUS1_MSG_CHANNEL_CLOSED.rawValue
        }
    }

    /// How many fds must travel with this message (SCM_RIGHTS).
    public var descriptorCount: Int {
        switch self {
        case .welcome: 4  // pool, wake page, clock page, coordinator ring
        case .handleGranted(let g), .handleArrived(let g): g.newChannel ? 2 : 0  // channel, owner's wake page
        case .attach(_, _, let fdCount, _), .attachment(_, _, let fdCount, _): Int(fdCount)
        case .channelOpened: 2  // channel, sender wake page
        case .segmentGranted: 1  // the segment memfd
        case .snapshot: 1  // the snapshot memfd
        case .objects(_, let count): Int(count)
        default: 0
        }
    }

    // MARK: Encoding

    /// The datagram bytes.
    public func encode(requestID: UInt32) -> [UInt8] {
        let framer = Framer(type: type, requestID: requestID)
        return encodeRequest(framer) ?? encodeReply(framer)!
    }

    /// Frames a body under this message's header.
    private struct Framer {
        let type: UInt32
        let requestID: UInt32
        func callAsFunction<Body>(_ body: Body) -> [UInt8] { ControlMessage.frame(type, requestID, body) }
    }

    /// A request's bytes (peer to coordinator), or nil for a reply or event.
    private func encodeRequest(_ frame: Framer) -> [UInt8]? {
        switch self {
        case .hello(let size, let capacity):
            var b = bus1_msg_hello(); b.pool_size = size; b.ring_capacity = capacity
            return frame(b)
        case .poolMapped, .nodeCreate, .ok, .introspect, .reset:
            return frame(())
        case .namePublish(let handle, let name):
            return frame(Self.nameBody(handle: handle, name: name))
        case .nameLookup(let name):
            return frame(Self.nameBody(handle: 0, name: name))
        case .handleRelease(let handle), .nodeCreated(let handle):
            return frame(bus1_msg_handle(handle: handle))
        case .violation(let channel, let reason):
            var b = bus1_msg_violation(); b.channel_id = channel; b.kind = reason
            return frame(b)
        case .channelClose(let channel), .orderingStall(let channel):
            return frame(bus1_msg_channel(channel_id: channel))
        case .getObjects(let first):
            return frame(bus1_msg_objects(first: first, count: 0))
        case .nodeDestroy(let handles):
            var b = bus1_msg_node_destroy(); b.count = UInt32(handles.count)
            _ = withUnsafeMutableBytes(of: &b.handles) { $0.bindMemory(to: UInt64.self).update(fromContentsOf: handles.prefix(Int(BUS1_DESTROY_MAX))) }
            return frame(b)
        case .attach(let destination, let handles, let fdCount, let sequence):
            var b = bus1_msg_attach(); b.destination = destination; b.handle_count = UInt32(handles.count); b.fd_count = fdCount
            b.sequence = sequence
            _ = withUnsafeMutableBytes(of: &b.handles) { $0.bindMemory(to: UInt64.self).update(fromContentsOf: handles.prefix(Int(BUS1_ATTACH_MAX_HANDLES))) }
            return frame(b)
        case .segmentOpen(let segment), .segmentGranted(let segment):
            var b = bus1_msg_segment(); b.owner = segment.owner; b.size = segment.size; b.index = segment.index
            let uids = segment.audience.prefix(Int(BUS1_SEGMENT_AUDIENCE_MAX))
            b.uid_count = UInt32(uids.count)
            _ = withUnsafeMutableBytes(of: &b.uids) { $0.bindMemory(to: UInt32.self).update(fromContentsOf: uids) }
            return frame(b)
        case .segmentGet(let channel, let index):
            var b = bus1_msg_segment_ref(); b.channel_id = channel; b.index = index
            return frame(b)
        case .segmentSeal(let index):
            var b = bus1_msg_segment_ref(); b.index = index
            return frame(b)
        case .channelClosed(let channel, let other, let reason):
            var b = bus1_msg_channel_closed(); b.channel_id = channel; b.other_peer = other; b.reason = reason
            return frame(b)
        default:
            return nil
        }
    }

    /// A reply's or event's bytes (coordinator to peer), or nil for a request.
    private func encodeReply(_ frame: Framer) -> [UInt8]? {
        switch self {
        case .error(let code, let detail):
            return frame(bus1_msg_error(code: code, detail: detail))
        case .objects(let first, let count):
            return frame(bus1_msg_objects(first: first, count: count))
        case .snapshot(let size, let count):
            return frame(bus1_msg_snapshot(size: size, object_count: count, _reserved: 0))
        case .welcome(let w):
            var b = bus1_msg_welcome(); b.peer_id = w.peer; b.pool_size = w.poolSize; b.ring_capacity = w.ringCapacity; b.flags = w.flags
            b.coordinator_ring = w.coordinatorRing; b.coordinator_ring_capacity = w.coordinatorRingCapacity
            return frame(b)
        case .attachment(let channel, let handles, let fdCount, let sequence):
            var b = bus1_msg_attachment(); b.channel_id = channel; b.handle_count = UInt32(handles.count); b.fd_count = fdCount
            b.sequence = sequence
            _ = withUnsafeMutableBytes(of: &b.handles) { $0.bindMemory(to: UInt64.self).update(fromContentsOf: handles.prefix(Int(BUS1_ATTACH_MAX_HANDLES))) }
            return frame(b)
        case .destroyed(let ticket):
            return frame(bus1_msg_ticket(ticket: ticket))
        case .handleGranted(let g), .handleArrived(let g):
            var b = bus1_msg_handle_granted()
            b.handle = g.handle; b.node = g.node; b.owner_peer = g.owner; b.channel_id = g.channel
            b.capacity = g.capacity; b.new_channel = g.newChannel ? 1 : 0; b.owner_uid = g.ownerUID
            return frame(b)
        case .channelOpened(let o):
            var b = bus1_msg_channel_opened()
            b.channel_id = o.channel; b.sender_peer = o.sender; b.node = o.node; b.capacity = o.capacity
            return frame(b)
        case .channelGrant(let channel, let node):
            return frame(bus1_msg_channel_grant(channel_id: channel, node: node))
        default:
            return nil
        }
    }

    private static func nameBody(handle: UInt64, name: String) -> bus1_msg_name {
        var body = bus1_msg_name()
        body.handle = handle
        let bytes = Array(name.utf8.prefix(Int(BUS1_NAME_MAX)))
        body.length = UInt32(bytes.count)
        withUnsafeMutableBytes(of: &body.name) { $0.copyBytes(from: bytes) }
        return body
    }

    /// The first `count` ids of a fixed-size id array of the wire.
    private static func ids<Fixed>(_ array: Fixed, count: UInt32) -> [UInt64] {
        withUnsafeBytes(of: array) { Array($0.bindMemory(to: UInt64.self).prefix(Int(count))) }
    }

    private static func frame<Body>(_ type: UInt32, _ requestID: UInt32, _ body: Body) -> [UInt8] {
        let bodySize = Body.self == Void.self ? 0 : MemoryLayout<Body>.size
        var header = bus1_msg_header()
        header.magic = BUS1_MAGIC_MESSAGE
        header.version = UInt16(BUS1_WIRE_VERSION)
        header.type = UInt16(type)
        header.size = UInt32(MemoryLayout<bus1_msg_header>.size + bodySize)
        header.request_id = requestID
        var bytes = [UInt8](repeating: 0, count: Int(header.size))
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: header, as: bus1_msg_header.self)
            if bodySize > 0 {
                withUnsafeBytes(of: body) { raw.baseAddress!.advanced(by: MemoryLayout<bus1_msg_header>.size).copyMemory(from: $0.baseAddress!, byteCount: bodySize) }
            }
        }
        return bytes
    }

    // MARK: Decoding

    /// Decodes and checks one datagram that arrived with `descriptorCount` fds.
    public static func decode(
        _ bytes: UnsafeRawBufferPointer, descriptorCount: Int
    ) throws(ProtocolError) -> (message: ControlMessage, requestID: UInt32) {
        let headerSize = MemoryLayout<bus1_msg_header>.size
        guard bytes.count >= headerSize else { throw .truncated(bytes.count) }
        let header = bytes.loadUnaligned(as: bus1_msg_header.self)
        guard header.magic == BUS1_MAGIC_MESSAGE else { throw .badMagic(header.magic) }
        guard header.version == UInt16(BUS1_WIRE_VERSION) else { throw .versionMismatch(header.version) }
        guard Int(header.size) == bytes.count else { throw .sizeMismatch(declared: header.size, actual: bytes.count) }
        let body = Body(type: header.type, bytes: UnsafeRawBufferPointer(rebasing: bytes[headerSize...]))
        let message: ControlMessage
        if let request = try decodeRequest(body) {
            message = request
        } else if let reply = try decodeReply(body) {
            message = reply
        } else {
            throw .unknownType(header.type)
        }
        guard descriptorCount == message.descriptorCount else {
            throw .descriptorCount(type: header.type, expected: message.descriptorCount, actual: descriptorCount)
        }
        return (message, header.request_id)
    }

    /// A datagram's body, with the checks every message type shares.
    private struct Body {
        let type: UInt16
        let bytes: UnsafeRawBufferPointer

        /// The body as exactly one `T`.
        func load<T>(_: T.Type) throws(ProtocolError) -> T {
            guard bytes.count == MemoryLayout<T>.size else { throw .bodySize(type: type, size: bytes.count) }
            return bytes.loadUnaligned(as: T.self)
        }

        func empty() throws(ProtocolError) {
            guard bytes.isEmpty else { throw .bodySize(type: type, size: bytes.count) }
        }

        /// A `bus1_msg_name` body: the handle and a checked name.
        func name() throws(ProtocolError) -> (UInt64, String) {
            let b = try load(bus1_msg_name.self)
            guard b.length >= 1, b.length <= BUS1_NAME_MAX else { throw .badName }
            let raw = withUnsafeBytes(of: b.name) { Array($0.prefix(Int(b.length))) }
            guard !raw.contains(0), let s = String(validating: raw, as: UTF8.self) else { throw .badName }
            return (b.handle, s)
        }
    }

    /// A request (peer to coordinator), or nil for another type.
    private static func decodeRequest(_ body: Body) throws(ProtocolError) -> ControlMessage? {
        let type = UInt32(body.type)
        switch type {
        case BUS1_MSG_HELLO.rawValue:
            let b = try body.load(bus1_msg_hello.self)
            return .hello(poolSize: b.pool_size, ringCapacity: b.ring_capacity)
        case BUS1_MSG_POOL_MAPPED.rawValue: try body.empty(); return .poolMapped
        case BUS1_MSG_NODE_CREATE.rawValue: try body.empty(); return .nodeCreate
        case BUS1_MSG_NAME_PUBLISH.rawValue:
            let (handle, s) = try body.name(); return .namePublish(handle: handle, name: s)
        case BUS1_MSG_NAME_LOOKUP.rawValue:
            let (_, s) = try body.name(); return .nameLookup(name: s)
        case BUS1_MSG_HANDLE_RELEASE.rawValue: return .handleRelease(handle: try body.load(bus1_msg_handle.self).handle)
        case BUS1_MSG_VIOLATION.rawValue:
            let b = try body.load(bus1_msg_violation.self); return .violation(channel: b.channel_id, reason: b.kind)
        case BUS1_MSG_CHANNEL_CLOSE.rawValue: return .channelClose(channel: try body.load(bus1_msg_channel.self).channel_id)
        case BUS1_MSG_ORDERING_STALL.rawValue: return .orderingStall(channel: try body.load(bus1_msg_channel.self).channel_id)
        case BUS1_MSG_INTROSPECT.rawValue: try body.empty(); return .introspect
        case BUS1_MSG_GET_OBJECTS.rawValue:
            let b = try body.load(bus1_msg_objects.self)
            guard b.count == 0 else { throw .badField("count") }
            return .getObjects(first: b.first)
        case BUS1_MSG_NODE_DESTROY.rawValue:
            let b = try body.load(bus1_msg_node_destroy.self)
            guard b.count >= 1, b.count <= BUS1_DESTROY_MAX else { throw .badField("count") }
            return .nodeDestroy(handles: Self.ids(b.handles, count: b.count))
        case BUS1_MSG_ATTACH.rawValue:
            let b = try body.load(bus1_msg_attach.self)
            guard b.handle_count <= BUS1_ATTACH_MAX_HANDLES else { throw .badField("handle_count") }
            guard b.fd_count <= BUS1_MSG_MAX_FDS else { throw .badField("fd_count") }
            return .attach(destination: b.destination, handles: Self.ids(b.handles, count: b.handle_count), fdCount: b.fd_count,
                              sequence: b.sequence)
        case BUS1_MSG_RESET.rawValue: try body.empty(); return .reset
        case BUS1_MSG_SEGMENT_OPEN.rawValue, BUS1_MSG_SEGMENT_GRANTED.rawValue:
            let b = try body.load(bus1_msg_segment.self)
            guard b.uid_count >= 1, b.uid_count <= BUS1_SEGMENT_AUDIENCE_MAX else { throw .badField("uid_count") }
            let audience = withUnsafeBytes(of: b.uids) { Array($0.bindMemory(to: UInt32.self).prefix(Int(b.uid_count))) }
            guard zip(audience, audience.dropFirst()).allSatisfy({ $0 < $1 }) else { throw .badField("uids") }
            let segment = Segment(owner: b.owner, size: b.size, index: b.index, audience: audience)
            return type == BUS1_MSG_SEGMENT_OPEN.rawValue ? .segmentOpen(segment) : .segmentGranted(segment)
        case BUS1_MSG_SEGMENT_GET.rawValue:
            let b = try body.load(bus1_msg_segment_ref.self); return .segmentGet(channel: b.channel_id, index: b.index)
        case BUS1_MSG_SEGMENT_SEAL.rawValue:
            let b = try body.load(bus1_msg_segment_ref.self)
            guard b.channel_id == 0 else { throw .badField("channel_id") }
            return .segmentSeal(index: b.index)
        case BUS1_MSG_NODE_CREATED.rawValue: return .nodeCreated(handle: try body.load(bus1_msg_handle.self).handle)
        default:
            return nil
        }
    }

    /// A reply or event (coordinator to peer), or nil for another type.
    private static func decodeReply(_ body: Body) throws(ProtocolError) -> ControlMessage? {
        let type = UInt32(body.type)
        switch type {
        case BUS1_MSG_ATTACHMENT.rawValue:
            let b = try body.load(bus1_msg_attachment.self)
            guard b.handle_count <= BUS1_ATTACH_MAX_HANDLES else { throw .badField("handle_count") }
            guard b.fd_count <= BUS1_MSG_MAX_FDS else { throw .badField("fd_count") }
            return .attachment(channel: b.channel_id, handles: Self.ids(b.handles, count: b.handle_count), fdCount: b.fd_count,
                                  sequence: b.sequence)
        case BUS1_MSG_DESTROYED.rawValue: return .destroyed(ticket: try body.load(bus1_msg_ticket.self).ticket)
        case BUS1_MSG_SNAPSHOT.rawValue:
            let b = try body.load(bus1_msg_snapshot.self); return .snapshot(size: b.size, objectCount: b.object_count)
        case BUS1_MSG_OBJECTS.rawValue:
            let b = try body.load(bus1_msg_objects.self)
            guard b.count <= BUS1_MSG_MAX_FDS else { throw .badField("count") }
            return .objects(first: b.first, count: b.count)
        case BUS1_MSG_OK.rawValue: try body.empty(); return .ok
        case BUS1_MSG_ERROR.rawValue:
            let b = try body.load(bus1_msg_error.self); return .error(code: b.code, detail: b.detail)
        case BUS1_MSG_WELCOME.rawValue:
            let b = try body.load(bus1_msg_welcome.self)
            return .welcome(Welcome(peer: b.peer_id, poolSize: b.pool_size, ringCapacity: b.ring_capacity, flags: b.flags,
                                       coordinatorRing: b.coordinator_ring, coordinatorRingCapacity: b.coordinator_ring_capacity))
        case BUS1_MSG_HANDLE_GRANTED.rawValue, BUS1_MSG_HANDLE_ARRIVED.rawValue:
            let b = try body.load(bus1_msg_handle_granted.self)
            guard b.new_channel <= 1 else { throw .badField("new_channel") }
            let grant = HandleGrant(handle: b.handle, node: b.node, owner: b.owner_peer, channel: b.channel_id,
                                    capacity: b.capacity, newChannel: b.new_channel == 1, ownerUID: b.owner_uid)
            return type == BUS1_MSG_HANDLE_GRANTED.rawValue ? .handleGranted(grant) : .handleArrived(grant)
        case BUS1_MSG_CHANNEL_OPENED.rawValue:
            let b = try body.load(bus1_msg_channel_opened.self)
            return .channelOpened(ChannelOpening(channel: b.channel_id, sender: b.sender_peer, node: b.node, capacity: b.capacity))
        case BUS1_MSG_CHANNEL_GRANT.rawValue:
            let b = try body.load(bus1_msg_channel_grant.self); return .channelGrant(channel: b.channel_id, node: b.node)
        case BUS1_MSG_CHANNEL_CLOSED.rawValue:
            let b = try body.load(bus1_msg_channel_closed.self)
            return .channelClosed(channel: b.channel_id, otherPeer: b.other_peer, reason: b.reason)
        default:
            return nil
        }
    }
}

/// A control datagram that does not follow the wire format.
public enum ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(Int)
    case badMagic(UInt32)
    case versionMismatch(UInt16)
    case sizeMismatch(declared: UInt32, actual: Int)
    case bodySize(type: UInt16, size: Int)
    case unknownType(UInt16)
    case badName
    case badField(String)
    case descriptorCount(type: UInt16, expected: Int, actual: Int)
    case cutByKernel

    public var description: String {
        switch self {
        case .truncated(let n): "datagram of \(n) bytes is shorter than a header"
        case .badMagic(let m): "bad magic 0x\(String(m, radix: 16))"
        case .versionMismatch(let v): "wire version \(v), expected \(BUS1_WIRE_VERSION)"
        case .sizeMismatch(let d, let a): "header says \(d) bytes, datagram has \(a)"
        case .bodySize(let t, let s): "message type \(t) with a body of \(s) bytes"
        case .unknownType(let t): "unknown message type \(t)"
        case .badName: "name must be 1...\(BUS1_NAME_MAX) bytes of UTF-8 without NUL"
        case .badField(let f): "invalid field \(f)"
        case .descriptorCount(let t, let e, let a): "message type \(t) needs \(e) fds, came with \(a)"
        case .cutByKernel: "datagram or its fds were truncated"
        }
    }
}
