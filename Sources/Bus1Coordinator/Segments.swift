import Bus1Core
import Bus1Linux
import CBus1Wire

/// Pool segments (see "Pool segments" in the wire header): the owner opens and
/// seals them; a receiver gets one read-only, only if its uid is in the audience.
extension Coordinator {
    /// A pool segment of `size` bytes (a valid layout) for `peer`, its header
    /// written (informational: receivers take the layout from the size), sealed
    /// against resizing; the owner maps it, then ``PoolSegment/seal()`` seals it
    /// against every other writer (future-write and seal come only then).
    func makeSegment(index: UInt32, size: Int, layout: bus1_pool_layout, audience: [UInt32],
                     for peer: PeerRecord) throws(RequestError) -> PoolSegment {
        let name = index == 0 ? "bus1-pool-\(peer.id)" : "bus1-pool-\(peer.id)-\(index)"
        let memory = try RequestError.passingErrno { () throws(LinuxError) in
            try sharedObjects.make(name, size: size, seals: [.shrink, .grow], mappedBytes: Int(BUS1_PAGE_SIZE)) { mapping in
                var h = bus1_pool_header()
                h.magic = BUS1_MAGIC_POOL; h.version = BUS1_WIRE_VERSION; h.peer_id = peer.id
                h.size = UInt64(size); h.data_offset = layout.data_offset
                mapping.base.storeBytes(of: h, as: bus1_pool_header.self)
            }.takeMemory()
        }
        return PoolSegment(index: index, size: size, audience: audience, memory: memory)
    }

    /// SEGMENT_OPEN: a new segment for `audience`, as large as asked (0: as the
    /// pool), charged to the owner's uid as pool bytes and, since it holds one of
    /// the coordinator's fds, as a channel.
    func openSegment(_ asked: ControlMessage.Segment, for peer: PeerRecord) throws(RequestError) -> Response {
        guard asked.owner == 0, asked.index == 0 else { throw .protocolError }
        guard peer.segments.count < Int(BUS1_SEGMENTS_MAX) else { throw .quota(.segments) }
        let requested = asked.size == 0 ? UInt64(peer.poolSize) : asked.size
        guard let (size, layout) = configuration.pool(forRequest: requested), UInt64(size) == requested else {
            throw .segment(.badSize)
        }
        try tables.accounts.check(.poolBytes, size, for: peer.uid)
        try tables.accounts.check(.channels, for: peer.uid)
        let segment = try makeSegment(index: UInt32(peer.segments.count), size: size, layout: layout, audience: asked.audience, for: peer)
        peer.segments.append(segment)
        tables.accounts.add(.poolBytes, size, to: peer.uid)
        tables.accounts.add(.channels, to: peer.uid)
        var granted = segment.wire
        granted.owner = peer.id
        return Response(message: .segmentGranted(granted), fds: [segment.memory.rawValue], owners: [segment])
    }

    /// SEGMENT_SEAL: the owner mapped segment `index`; seal it.
    func sealSegment(_ index: UInt32, of peer: PeerRecord) throws(RequestError) -> Response {
        guard index > 0, Int(index) < peer.segments.count else { throw .segment(.unknown) }
        let segment = peer.segments[Int(index)]
        try RequestError.passingErrno { () throws(LinuxError) in try segment.seal() }
        return .ok
    }

    /// SEGMENT_GET: segment `index` of the sender of the caller's inbound channel,
    /// read-only, if it is sealed and the caller's uid is in its audience. This is
    /// the only way memory written by one peer reaches another.
    func grantSegment(_ index: UInt32, on channelID: UInt64, to peer: PeerRecord) throws(RequestError) -> Response {
        guard let channel = tables.channels[channelID], channel.receiver == peer.id, let sender = peers[channel.sender],
              Int(index) < sender.segments.count, sender.segments[Int(index)].isSealed
        else { throw .segment(.unknown) }
        let segment = sender.segments[Int(index)]
        guard segment.audience.contains(peer.uid) else {
            logger.notice("segment refused: the receiver's uid is not in its audience",
                          metadata: ["receiver": "\(peer.id)", "uid": "\(peer.uid)", "sender": "\(sender.id)", "segment": "\(index)"])
            throw .segment(.notInAudience)
        }
        var granted = segment.wire
        granted.owner = sender.id
        return Response(message: .segmentGranted(granted), fds: [segment.memory.rawValue], owners: [segment])
    }

    /// What a leaving peer's segments gave back to its uid.
    func unchargeSegments(of peer: PeerRecord) {
        for segment in peer.segments {
            tables.accounts.uncharge(.poolBytes, segment.size, from: peer.uid)
            if segment.index > 0 { tables.accounts.uncharge(.channels, from: peer.uid) }
        }
    }
}
