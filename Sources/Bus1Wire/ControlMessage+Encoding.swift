import CBus1Wire

extension ControlMessage {
    // MARK: Encoding

    /// The datagram bytes.
    public func encode(requestID: UInt32) -> [UInt8] {
        let framer = Framer(type: type, requestID: requestID)
        // Every case is a request or a reply; ControlMessageTests encodes each one.
        guard let bytes = encodeRequest(framer) ?? encodeReply(framer) else { preconditionFailure("no encoding for \(self)") }
        return bytes
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
        case .poolMapped, .nodeCreate, .introspect, .reset:
            return frame(())
        case .namePublish(let handle, let name):
            return frame(Self.nameBody(handle: handle, name: name))
        case .nameLookup(let name):
            return frame(Self.nameBody(handle: 0, name: name))
        case .handleRelease(let handle):
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
            Self.store(handles, into: &b.handles, maximum: BUS1_DESTROY_MAX)
            return frame(b)
        case .attach(let destination, let handles, let fdCount, let sequence):
            var b = bus1_msg_attach(); b.destination = destination; b.handle_count = UInt32(handles.count); b.fd_count = fdCount; b.sequence = sequence
            Self.store(handles, into: &b.handles, maximum: BUS1_ATTACH_MAX_HANDLES)
            return frame(b)
        case .segmentOpen(let segment):
            return frame(Self.segmentBody(segment))
        case .segmentGet(let channel, let index):
            var b = bus1_msg_segment_ref(); b.channel_id = channel; b.index = index
            return frame(b)
        case .segmentSeal(let index):
            var b = bus1_msg_segment_ref(); b.index = index
            return frame(b)
        case .nameList(let after):
            var b = bus1_msg_name_list()
            if let after { b.after_length = Self.storeName(after, into: &b.after) }
            return frame(b)
        default:
            return nil
        }
    }

    /// A reply's or event's bytes (coordinator to peer), or nil for a request.
    private func encodeReply(_ frame: Framer) -> [UInt8]? {
        switch self {
        case .ok:
            return frame(())
        case .nodeCreated(let handle):
            return frame(bus1_msg_handle(handle: handle))
        case .segmentGranted(let segment):
            return frame(Self.segmentBody(segment))
        case .names(let page):
            return frame(Self.namesBody(page))
        case .channelClosed(let channel, let other, let reason):
            var b = bus1_msg_channel_closed(); b.channel_id = channel; b.other_peer = other; b.reason = reason
            return frame(b)
        case .error(let code, let detail):
            return frame(bus1_msg_error(code: code, detail: detail))
        case .objects(let first, let count):
            return frame(bus1_msg_objects(first: first, count: count))
        case .snapshot(let size, let count):
            return frame(bus1_msg_snapshot(size: size, object_count: count, _reserved: 0))
        case .welcome(let w):
            var b = bus1_msg_welcome(); b.peer_id = w.peer; b.pool_size = w.poolSize; b.ring_capacity = w.ringCapacity; b.flags = w.flags
            b.coordinator_ring = w.coordinatorRing; b.coordinator_ring_capacity = w.coordinatorRingCapacity
            b.peer_uid = w.uid; b.peer_pid = w.pid
            return frame(b)
        case .attachment(let channel, let handles, let fdCount, let sequence):
            var b = bus1_msg_attachment(); b.channel_id = channel; b.handle_count = UInt32(handles.count); b.fd_count = fdCount; b.sequence = sequence
            Self.store(handles, into: &b.handles, maximum: BUS1_ATTACH_MAX_HANDLES)
            return frame(b)
        case .destroyed(let ticket):
            return frame(bus1_msg_ticket(ticket: ticket))
        case .handleGranted(let g), .handleArrived(let g):
            var b = bus1_msg_handle_granted()
            b.handle = g.handle; b.node = g.node; b.owner_peer = g.owner; b.channel_id = g.channel
            b.capacity = g.capacity; b.new_channel = g.newChannel ? 1 : 0; b.owner_uid = g.ownerUID; b.owner_pid = g.ownerPID
            return frame(b)
        case .channelOpened(let o):
            var b = bus1_msg_channel_opened()
            b.channel_id = o.channel; b.sender_peer = o.sender; b.node = o.node; b.capacity = o.capacity
            b.sender_uid = o.senderUID; b.sender_pid = o.senderPID
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
        body.length = storeName(name, into: &body.name)
        return body
    }

    /// Writes up to `BUS1_NAME_MAX` bytes of `name` into a fixed name array of the
    /// wire (`name[BUS1_NAME_MAX + 1]`, or any byte array at least that long: the
    /// snapshot's) and returns how many it wrote.
    public static func storeName<Fixed>(_ name: String, into array: inout Fixed) -> UInt32 {
        let bytes = Array(name.utf8.prefix(Int(BUS1_NAME_MAX)))
        withUnsafeMutableBytes(of: &array) { $0.copyBytes(from: bytes) }
        return UInt32(bytes.count)
    }

    /// A NAMES body: the page's first `BUS1_NAME_LIST_MAX` entries, the command cut
    /// to what `command[]` holds with its NUL.
    private static func namesBody(_ page: NamePage) -> bus1_msg_names {
        var b = bus1_msg_names(); b.total = page.total; b.remaining = page.remaining
        let rows = page.entries.prefix(Int(BUS1_NAME_LIST_MAX)).map { entry in
            var row = bus1_name_entry(); row.owner_peer = entry.owner; row.owner_uid = entry.uid; row.owner_pid = entry.pid
            row.length = storeName(entry.name, into: &row.name)
            let command = Array(entry.command.utf8.prefix(Int(BUS1_COMMAND_MAX) - 1))
            withUnsafeMutableBytes(of: &row.command) { $0.copyBytes(from: command) }
            return row
        }
        b.count = UInt32(rows.count)
        _ = withUnsafeMutableBytes(of: &b.entries) { $0.bindMemory(to: bus1_name_entry.self).update(fromContentsOf: rows) }
        return b
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

    /// Writes up to `maximum` ids into a fixed-size id array of the wire.
    private static func store<Fixed>(_ ids: [UInt64], into array: inout Fixed, maximum: UInt32) {
        _ = withUnsafeMutableBytes(of: &array) { $0.bindMemory(to: UInt64.self).update(fromContentsOf: ids.prefix(Int(maximum))) }
    }

    /// A SEGMENT_OPEN or SEGMENT_GRANTED body.
    private static func segmentBody(_ segment: Segment) -> bus1_msg_segment {
        var b = bus1_msg_segment(); b.owner = segment.owner; b.size = segment.size; b.index = segment.index
        let uids = segment.audience.prefix(Int(BUS1_SEGMENT_AUDIENCE_MAX))
        b.uid_count = UInt32(uids.count)
        _ = withUnsafeMutableBytes(of: &b.uids) { $0.bindMemory(to: UInt32.self).update(fromContentsOf: uids) }
        return b
    }
}
