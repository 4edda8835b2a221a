import CBus1Wire

extension ControlMessage {
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
            return (b.handle, try ControlMessage.name(b.name, length: b.length))
        }
    }

    /// The name in a fixed `name[BUS1_NAME_MAX + 1]` array of the wire: `length`
    /// bytes (1...BUS1_NAME_MAX) of UTF-8 without NUL, or `badName`.
    private static func name<Fixed>(_ array: Fixed, length: UInt32) throws(ProtocolError) -> String {
        guard length >= 1, length <= BUS1_NAME_MAX else { throw .badName }
        let raw = withUnsafeBytes(of: array) { Array($0.prefix(Int(length))) }
        guard !raw.contains(0), let s = String(validating: raw, as: UTF8.self) else { throw .badName }
        return s
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
            try checkAttachmentCounts(handles: b.handle_count, fds: b.fd_count)
            return .attach(destination: b.destination, handles: Self.ids(b.handles, count: b.handle_count), fdCount: b.fd_count, sequence: b.sequence)
        case BUS1_MSG_RESET.rawValue: try body.empty(); return .reset
        case BUS1_MSG_SEGMENT_OPEN.rawValue: return .segmentOpen(try segment(body))
        case BUS1_MSG_SEGMENT_GET.rawValue:
            let b = try body.load(bus1_msg_segment_ref.self); return .segmentGet(channel: b.channel_id, index: b.index)
        case BUS1_MSG_SEGMENT_SEAL.rawValue:
            let b = try body.load(bus1_msg_segment_ref.self)
            guard b.channel_id == 0 else { throw .badField("channel_id") }
            return .segmentSeal(index: b.index)
        case BUS1_MSG_NAME_LIST.rawValue:
            let b = try body.load(bus1_msg_name_list.self)
            guard b._reserved == 0 else { throw .badField("_reserved") }
            guard b.after_length != 0 else {
                // From the first name: the cursor's bytes must be unused, like every spare byte.
                guard withUnsafeBytes(of: b.after, { $0.allSatisfy { $0 == 0 } }) else { throw .badField("after") }
                return .nameList(after: nil)
            }
            return .nameList(after: try name(b.after, length: b.after_length))
        default:
            return nil
        }
    }

    /// A reply or event (coordinator to peer), or nil for another type.
    private static func decodeReply(_ body: Body) throws(ProtocolError) -> ControlMessage? {
        let type = UInt32(body.type)
        switch type {
        case BUS1_MSG_NODE_CREATED.rawValue: return .nodeCreated(handle: try body.load(bus1_msg_handle.self).handle)
        case BUS1_MSG_SEGMENT_GRANTED.rawValue: return .segmentGranted(try segment(body))
        case BUS1_MSG_NAMES.rawValue: return .names(try namePage(body))
        case BUS1_MSG_ATTACHMENT.rawValue:
            let b = try body.load(bus1_msg_attachment.self)
            try checkAttachmentCounts(handles: b.handle_count, fds: b.fd_count)
            return .attachment(channel: b.channel_id, handles: Self.ids(b.handles, count: b.handle_count), fdCount: b.fd_count, sequence: b.sequence)
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
                                       coordinatorRing: b.coordinator_ring, coordinatorRingCapacity: b.coordinator_ring_capacity,
                                       uid: b.peer_uid, pid: b.peer_pid))
        case BUS1_MSG_HANDLE_GRANTED.rawValue, BUS1_MSG_HANDLE_ARRIVED.rawValue:
            let b = try body.load(bus1_msg_handle_granted.self)
            guard b.new_channel <= 1 else { throw .badField("new_channel") }
            let grant = HandleGrant(handle: b.handle, node: b.node, owner: b.owner_peer, channel: b.channel_id,
                                    capacity: b.capacity, newChannel: b.new_channel == 1, ownerUID: b.owner_uid, ownerPID: b.owner_pid)
            return type == BUS1_MSG_HANDLE_GRANTED.rawValue ? .handleGranted(grant) : .handleArrived(grant)
        case BUS1_MSG_CHANNEL_OPENED.rawValue:
            let b = try body.load(bus1_msg_channel_opened.self)
            return .channelOpened(ChannelOpening(channel: b.channel_id, sender: b.sender_peer, node: b.node, capacity: b.capacity,
                                                 senderUID: b.sender_uid, senderPID: b.sender_pid))
        case BUS1_MSG_CHANNEL_GRANT.rawValue:
            let b = try body.load(bus1_msg_channel_grant.self); return .channelGrant(channel: b.channel_id, node: b.node)
        case BUS1_MSG_CHANNEL_CLOSED.rawValue:
            let b = try body.load(bus1_msg_channel_closed.self)
            return .channelClosed(channel: b.channel_id, otherPeer: b.other_peer, reason: b.reason)
        default:
            return nil
        }
    }

    /// The first `count` ids of a fixed-size id array of the wire.
    private static func ids<Fixed>(_ array: Fixed, count: UInt32) -> [UInt64] {
        withUnsafeBytes(of: array) { Array($0.bindMemory(to: UInt64.self).prefix(Int(count))) }
    }

    /// The counts of an ATTACH or ATTACHMENT body: within what one message carries.
    private static func checkAttachmentCounts(handles: UInt32, fds: UInt32) throws(ProtocolError) {
        guard handles <= BUS1_ATTACH_MAX_HANDLES else { throw .badField("handle_count") }
        guard fds <= BUS1_MSG_MAX_FDS else { throw .badField("fd_count") }
    }

    /// A NAMES body: at most `BUS1_NAME_LIST_MAX` entries, each a valid name,
    /// strictly ascending (so a client that pages after the last one always moves on).
    private static func namePage(_ body: Body) throws(ProtocolError) -> NamePage {
        let b = try body.load(bus1_msg_names.self)
        guard b.count <= BUS1_NAME_LIST_MAX else { throw .badField("count") }
        let rows = withUnsafeBytes(of: b.entries) { Array($0.bindMemory(to: bus1_name_entry.self).prefix(Int(b.count))) }
        var entries: [NameEntry] = []
        for row in rows {
            let command = withUnsafeBytes(of: row.command) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            entries.append(NameEntry(name: try name(row.name, length: row.length), owner: row.owner_peer,
                                     uid: row.owner_uid, pid: row.owner_pid, command: command))
        }
        guard zip(entries, entries.dropFirst()).allSatisfy({ $0.name < $1.name }) else { throw .badField("entries") }
        return NamePage(total: b.total, remaining: b.remaining, entries: entries)
    }

    /// A SEGMENT_OPEN or SEGMENT_GRANTED body: an audience of 1...16 uids, strictly ascending.
    private static func segment(_ body: Body) throws(ProtocolError) -> Segment {
        let b = try body.load(bus1_msg_segment.self)
        guard b.uid_count >= 1, b.uid_count <= BUS1_SEGMENT_AUDIENCE_MAX else { throw .badField("uid_count") }
        let audience = withUnsafeBytes(of: b.uids) { Array($0.bindMemory(to: UInt32.self).prefix(Int(b.uid_count))) }
        guard zip(audience, audience.dropFirst()).allSatisfy({ $0 < $1 }) else { throw .badField("uids") }
        return Segment(owner: b.owner, size: b.size, index: b.index, audience: audience)
    }
}
