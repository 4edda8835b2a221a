import Bus1Linux
import CBus1Wire

/// What `shm-inspect` shows, read from one attachment: the snapshot's tables and
/// the live state of every pool and channel they name.
struct BusView {
    let attachment: Attachment
    let tables: Tables
    /// Every peer's pool segments and their ledgers, by peer id.
    let pools: [UInt64: PeerPool]
    let channels: [ChannelState]
    /// Senders whose channels' `sub_tail` and `comp_head` did not move while their
    /// ledger was read: only for them is the ledger comparable with the rings.
    let quiescentSenders: Set<UInt64>

    init(_ attachment: Attachment) throws(InspectError) {
        self.attachment = attachment
        let tables = try Tables(attachment.snapshot)
        self.tables = tables
        let before = Self.senderCounters(tables, attachment)
        var pools: [UInt64: PeerPool] = [:]
        for peer in tables.peers {
            if let pool = PeerPool(peer, tables: tables, attachment: attachment) { pools[peer.peer_id] = pool }
        }
        self.pools = pools
        let clock = tables.header.flags & BUS1_WELCOME_FIFO_ONLY == 0 ? attachment.object(0) : nil
        channels = tables.channels.map { ChannelState($0, memory: attachment.object($0.object), tables: tables, pools: pools, clock: clock) }
        let after = Self.senderCounters(tables, attachment)
        // A sender with a send in progress (a staging mark set on one of its channels)
        // has marked slices sent in its ledger before it stores sub_tail (a batch,
        // after its last slot), so its counts do not compare yet. (A FIFO-only bus
        // stages nothing; the counters' check and stableFindings' rounds remain.)
        let staged = Set(channels.filter { $0.staging != 0 }.map(\.row.sender))
        quiescentSenders = Set(tables.peers.map(\.peer_id).filter { before[$0] == after[$0] && !staged.contains($0) })
    }

    /// Every sender's (sub_tail, comp_head) per channel, in snapshot order.
    private static func senderCounters(_ tables: Tables, _ attachment: Attachment) -> [UInt64: [UInt64]] {
        let tail = MemoryLayout<bus1_channel_header>.offset(of: \.sub_tail)!, head = MemoryLayout<bus1_channel_header>.offset(of: \.comp_head)!
        var counters: [UInt64: [UInt64]] = [:]
        for channel in tables.channels {
            let memory = attachment.object(channel.object)
            counters[channel.sender, default: []] += [memory?.word(at: tail) ?? 0, memory?.word(at: head) ?? 0]
        }
        return counters
    }

    /// The same tables with the live memory read again.
    func reread() throws(InspectError) -> BusView { try BusView(attachment) }

    var globalOrder: Bool { tables.header.flags & BUS1_WELCOME_FIFO_ONLY == 0 }

    func peer(named text: String) throws(InspectError) -> bus1_snapshot_peer {
        guard let id = UInt64(text), let peer = tables.peer(id) else {
            throw .usage("no peer \(text) on this bus (peers: \(tables.peers.map { String($0.peer_id) }.joined(separator: ", ")))")
        }
        return peer
    }

    // MARK: Rows

    struct PeerRow: Codable {
        var id: UInt64, pid: Int32, uid: UInt32, command: String, state: String
        /// Bytes, slices in use and segments over every segment of the pool (segment 0 included).
        var poolSize: UInt64, poolBytesInUse: UInt64, slicesInUse: Int, segments: Int
        var nodes: UInt32, handles: UInt32, ringCapacity: UInt32, wait: String
    }

    func peerRows() -> [PeerRow] {
        tables.peers.map { p in
            let pool = pools[p.peer_id]
            return PeerRow(id: p.peer_id, pid: p.pid, uid: p.uid, command: commandLine(of: p.pid), state: stateName(p.state),
                           poolSize: pool?.totalSize ?? p.pool_size, poolBytesInUse: pool?.bytesInUse ?? 0,
                           slicesInUse: pool?.slicesInUse ?? 0, segments: pool?.segments.count ?? 0,
                           nodes: p.nodes, handles: p.handles, ringCapacity: p.ring_capacity,
                           wait: waitState(attachment.object(p.wake_object), peer: p.peer_id))
        }
    }

    struct SegmentRow: Codable {
        var peer: UInt64, segment: UInt32, size: UInt64, audience: [UInt32], bytesInUse: UInt64, slicesInUse: Int
    }

    /// Every mapped segment of every peer, by peer, then index.
    func segmentRows() -> [SegmentRow] {
        tables.peers.flatMap { p in
            (pools[p.peer_id]?.segments ?? []).map {
                SegmentRow(peer: p.peer_id, segment: $0.index, size: UInt64($0.memory.size), audience: $0.audience,
                           bytesInUse: $0.state.bytesInUse, slicesInUse: $0.state.entries.count)
            }
        }
    }

    struct Holder: Codable { var peer: UInt64, handle: UInt64, references: UInt32 }
    struct NodeRow: Codable { var owner: UInt64, node: UInt64, names: [String], holders: [Holder] }

    func nodeRows() -> [NodeRow] {
        tables.handles.filter { $0.holder == $0.owner }.map { own in
            let holders = tables.handles.filter { $0.owner == own.owner && $0.node == own.node && $0.holder != own.owner }
                .map { Holder(peer: $0.holder, handle: $0.handle, references: $0.references) }
            return NodeRow(owner: own.owner, node: own.node, names: tables.names(of: own.owner, own.node), holders: holders)
        }
    }

    struct HandleRow: Codable {
        var holder: UInt64, handle: UInt64, owner: UInt64, node: UInt64, references: UInt32, ownerHandle: Bool, names: [String]
        /// False for a handle to a node whose owner has left the bus (kept until released).
        var ownerConnected: Bool
    }

    func handleRows() -> [HandleRow] {
        tables.handles.map { h in
            HandleRow(holder: h.holder, handle: h.handle, owner: h.owner, node: h.node, references: h.references,
                      ownerHandle: h.holder == h.owner, names: tables.names(of: h.owner, h.node),
                      ownerConnected: tables.peer(h.owner) != nil)
        }
    }

    struct ChannelRow: Codable {
        var id: UInt64, sender: UInt64, receiver: UInt64, capacity: UInt64
        var waiting: UInt64, heldByReceiver: UInt64, completionsPending: UInt64, outstanding: UInt64
        var subTail: UInt64, subHead: UInt64, compTail: UInt64, compHead: UInt64
        var staging: UInt64, lastTicket: UInt64?, allowedNodes: UInt32, errors: [String]
    }

    func channelRows() -> [ChannelRow] {
        channels.map { c in
            ChannelRow(id: c.row.channel_id, sender: c.row.sender, receiver: c.row.receiver, capacity: c.capacity,
                       waiting: c.waiting, heldByReceiver: c.heldByReceiver, completionsPending: c.completionsPending,
                       outstanding: c.outstanding, subTail: c.subTail, subHead: c.subHead, compTail: c.compTail, compHead: c.compHead,
                       staging: c.staging, lastTicket: c.lastTicket, allowedNodes: c.row.allowed_nodes,
                       errors: c.findings.map(\.problem))
        }
    }

    struct SliceRow: Codable {
        /// `offset` is the wire offset (segment in the top bits, as descriptors name
        /// it); `segmentOffset` the offset inside segment `segment`.
        var offset: UInt64, segment: UInt32, segmentOffset: UInt64, blockBytes: UInt32, length: UInt32, state: String, ticket: UInt64
        /// Receivers still holding it: the one destination, or for a multicast those
        /// whose descriptor is still readable in a ring.
        var receivers: [UInt64]
        var multicast: Bool, pending: UInt16
        /// "queued" (in the receiver's ring) or "received" (taken, not yet released), per receiver.
        var where_: [String]
        var ageMilliseconds: UInt32

        enum CodingKeys: String, CodingKey {
            case offset, segment, segmentOffset, blockBytes, length, state, ticket, receivers, multicast, pending, where_ = "where", ageMilliseconds
        }
    }

    /// The slices in every segment's ledger, segment by segment.
    func sliceRows(of peer: bus1_snapshot_peer) -> [SliceRow] {
        guard let pool = pools[peer.peer_id] else { return [] }
        let now = coarseMonotonicMilliseconds()
        let outbound = channels.filter { $0.row.sender == peer.peer_id }
        // Looked up once per ledger record: the owner can fill its whole ledger.
        // Descriptors name slices by wire offset, so the segment must match too.
        let queuedSlices = outbound.map { Set($0.queued.map { QueuedSlice(offset: $0.descriptor.offset, ticket: $0.descriptor.ticket) }) }
        return pool.segments.flatMap { segment in segment.state.entries.map { entry in
            let r = entry.record
            let offset = segment.wireOffset(entry.offset)
            let multicast = r.receiver == BUS1_INVALID_ID
            var receivers: [UInt64] = []
            var whereabouts: [String] = []
            if r.state == UInt16(BUS1_SLICE_SENT.rawValue) {
                for (channel, slices) in zip(outbound, queuedSlices) where multicast || channel.row.receiver == r.receiver {
                    let queued = slices.contains(QueuedSlice(offset: offset, ticket: r.ticket))
                    if queued || !multicast {
                        receivers.append(channel.row.receiver)
                        whereabouts.append(queued ? "queued" : "received")
                    }
                }
                if !multicast && receivers.isEmpty { receivers = [r.receiver]; whereabouts = ["gone"] }
            }
            return SliceRow(offset: offset, segment: segment.index, segmentOffset: entry.offset, blockBytes: r.block_bytes,
                            length: r.length, state: sliceStateName(r.state), ticket: r.ticket, receivers: receivers,
                            multicast: multicast, pending: r.pending, where_: whereabouts, ageMilliseconds: now &- r.since_ms)
        } }
    }
}

/// A slice as a queued descriptor names it (`offset`: the wire offset).
private struct QueuedSlice: Hashable {
    let offset: UInt64
    let ticket: UInt64
}

func stateName(_ state: UInt32) -> String {
    switch state {
    case BUS1_PEER_CONNECTED.rawValue: "connected"
    case BUS1_PEER_WELCOMED.rawValue: "welcomed"
    case BUS1_PEER_READY.rawValue: "ready"
    default: "state \(state)"
    }
}

func sliceStateName(_ state: UInt16) -> String {
    switch UInt32(state) {
    case BUS1_SLICE_LOANED.rawValue: "loaned"
    case BUS1_SLICE_SENT.rawValue: "sent"
    case BUS1_SLICE_FREE.rawValue: "free"
    default: "state \(state)"
    }
}
