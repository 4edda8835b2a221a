import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// One segment of a peer's pool (see "Pool segments" in the wire header): a memfd
/// the owner writes payloads into and only peers of `audience`'s uids may map.
/// Segment 0 is the pool of WELCOME, readable by the owner's uid.
final class PoolSegment {
    let index: UInt32
    /// Bytes, header included (a valid pool layout).
    let size: Int
    /// Uids whose peers may get it, strictly ascending.
    let audience: [UInt32]
    /// Until sealed: as created, writable, for its owner only. Once the owner
    /// mapped it and the coordinator sealed it against new writers: a read-only
    /// description, what receivers get (the writable one is closed: one fd each).
    private(set) var memory: OwnedDescriptor
    private(set) var isSealed = false

    init(index: UInt32, size: Int, audience: [UInt32], memory: consuming FileDescriptor) {
        self.index = index
        self.size = size
        self.audience = audience
        self.memory = OwnedDescriptor(memory)
    }

    /// Seals it against new writable mappings (the owner's stays), checks the
    /// seals took, and keeps only a read-only description.
    func seal() throws(LinuxError) {
        guard !isSealed else { return }
        try MemFD.addSeals([.futureWrite, .seal], to: memory.descriptor)
        guard try MemFD.seals(of: memory.descriptor).isSuperset(of: [.shrink, .grow, .futureWrite, .seal]) else {
            throw LinuxError("F_SEAL_FUTURE_WRITE", code: EPERM)
        }
        memory = OwnedDescriptor(try MemFD.reopen(memory.descriptor, writable: false))
        isSealed = true
    }

    var wire: ControlMessage.Segment { .init(size: UInt64(size), index: index, audience: audience) }
}

extension Coordinator {
    /// A pool segment of `size` bytes (a valid layout) for `peer`, its header
    /// written (informational: receivers take the layout from the size), sealed
    /// against resizing; the owner maps it, then ``PoolSegment/seal()`` seals it
    /// against every other writer.
    func makeSegment(index: UInt32, size: Int, layout: bus1_pool_layout, audience: [UInt32], for peer: PeerRecord) throws(LinuxError) -> PoolSegment {
        let name = index == 0 ? "bus1-pool-\(peer.id)" : "bus1-pool-\(peer.id)-\(index)"
        let fd = try MemFD.create(name: name, size: size)
        try MemFD.addSeals([.shrink, .grow], to: fd)  // future-write and seal come once the owner mapped it
        let mapping = try Mapping(fd, count: Int(BUS1_PAGE_SIZE), writable: true)
        var h = bus1_pool_header()
        h.magic = BUS1_MAGIC_POOL; h.version = BUS1_WIRE_VERSION; h.peer_id = peer.id
        h.size = UInt64(size); h.data_offset = layout.data_offset
        mapping.base.storeBytes(of: h, as: bus1_pool_header.self)
        return PoolSegment(index: index, size: size, audience: audience, memory: fd)
    }

    /// SEGMENT_OPEN: a new segment for `audience`, as large as asked (0: as the
    /// pool), charged to the owner's uid as pool bytes and, since it holds one of
    /// the coordinator's fds, as a channel.
    func openSegment(_ asked: ControlMessage.Segment, for peer: PeerRecord) throws -> Response {
        guard asked.owner == 0, asked.index == 0 else { throw RequestError.protocolError }
        guard peer.segments.count < Int(BUS1_SEGMENTS_MAX) else { throw RequestError.quota(BUS1_QUOTA_SEGMENTS.rawValue) }
        let requested = asked.size == 0 ? UInt64(peer.poolSize) : asked.size
        guard let (size, layout) = configuration.pool(forRequest: requested), UInt64(size) == requested else {
            throw RequestError.segment(BUS1_SEGMENT_BAD_SIZE.rawValue)
        }
        try accounts.check(.poolBytes, size, for: peer.uid)
        try accounts.check(.channels, for: peer.uid)
        let segment = try makeSegment(index: UInt32(peer.segments.count), size: size, layout: layout, audience: asked.audience, for: peer)
        peer.segments.append(segment)
        accounts.add(.poolBytes, size, to: peer.uid)
        accounts.add(.channels, to: peer.uid)
        var granted = segment.wire
        granted.owner = peer.id
        return Response(message: .segmentGranted(granted), fds: [segment.memory.rawValue], owners: [segment])
    }

    /// SEGMENT_SEAL: the owner mapped segment `index`; seal it.
    func sealSegment(_ index: UInt32, of peer: PeerRecord) throws -> Response {
        guard index > 0, Int(index) < peer.segments.count else { throw RequestError.segment(BUS1_SEGMENT_UNKNOWN.rawValue) }
        try peer.segments[Int(index)].seal()
        return .ok
    }

    /// SEGMENT_GET: segment `index` of the sender of the caller's inbound channel,
    /// read-only, if it is sealed and the caller's uid is in its audience. This is
    /// the only way memory written by one peer reaches another.
    func grantSegment(_ index: UInt32, on channelID: UInt64, to peer: PeerRecord) throws(RequestError) -> Response {
        guard let channel = channels[channelID], channel.receiver == peer.id, let sender = peers[channel.sender],
              Int(index) < sender.segments.count, sender.segments[Int(index)].isSealed
        else { throw .segment(BUS1_SEGMENT_UNKNOWN.rawValue) }
        let segment = sender.segments[Int(index)]
        guard segment.audience.contains(peer.uid) else {
            logger.notice("segment refused: the receiver's uid is not in its audience",
                          metadata: ["receiver": "\(peer.id)", "uid": "\(peer.uid)", "sender": "\(sender.id)", "segment": "\(index)"])
            throw .segment(BUS1_SEGMENT_NOT_AUDIENCE.rawValue)
        }
        var granted = segment.wire
        granted.owner = sender.id
        return Response(message: .segmentGranted(granted), fds: [segment.memory.rawValue], owners: [segment])
    }

    /// What a leaving peer's segments gave back to its uid.
    func unchargeSegments(of peer: PeerRecord) {
        for segment in peer.segments {
            accounts.uncharge(.poolBytes, segment.size, from: peer.uid)
            if segment.index > 0 { accounts.uncharge(.channels, from: peer.uid) }
        }
    }
}
