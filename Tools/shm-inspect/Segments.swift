import CBus1Wire

/// One segment of a peer's pool (see "Pool segments" in the wire header),
/// mapped: its index, audience, memory and ledger. Segment 0 is the pool of
/// WELCOME (the peer's `pool_object`).
struct SegmentState {
    let index: UInt32
    /// Uids whose peers may map it, as the snapshot lists them (at most
    /// `BUS1_SEGMENT_AUDIENCE_MAX`, whatever `uid_count` says).
    let audience: [UInt32]
    /// Bytes the coordinator recorded for it (the memfd's own size is `memory.size`).
    let recordedSize: UInt64
    let memory: MappedObject
    let state: PoolState

    init(index: UInt32, audience: [UInt32], recordedSize: UInt64, memory: MappedObject) {
        self.index = index
        self.audience = audience
        self.recordedSize = recordedSize
        self.memory = memory
        state = PoolState(memory)
    }

    /// The wire offset (segment in the top bits) of `offset` inside this segment.
    func wireOffset(_ offset: UInt64) -> UInt64 { UInt64(index) << UInt64(BUS1_SEGMENT_SHIFT) | offset }
}

/// A peer's pool: every segment of it the snapshot lists and the tool could map.
struct PeerPool {
    /// Mapped segments, ascending index, each index once, all below `BUS1_SEGMENTS_MAX`.
    let segments: [SegmentState]
    /// How many segments the snapshot lists for the peer. Segments are opened in
    /// index order, so every index below this existed when the snapshot was
    /// taken; an index from this up to `BUS1_SEGMENTS_MAX` may have been opened
    /// since (the tables are a snapshot, the rings are live).
    let listed: Int

    /// The peer's pool from its `pool_object` (segment 0) and the snapshot's
    /// segment rows; nil if it has no pool object. Rows with an index out of
    /// range, a second row for an index, and rows whose object is missing are
    /// skipped here (`verify` reports them).
    init?(_ peer: bus1_snapshot_peer, tables: Tables, attachment: Attachment) {
        guard let pool = attachment.object(peer.pool_object) else { return nil }
        let rows = tables.segments.filter { $0.owner == peer.peer_id }
        listed = rows.count
        var segments = [SegmentState(index: 0, audience: rows.first { $0.index == 0 }.map(audience(of:)) ?? [peer.uid],
                                     recordedSize: peer.pool_size, memory: pool)]
        for row in rows where row.index > 0 && row.index < BUS1_SEGMENTS_MAX && !segments.contains(where: { $0.index == row.index }) {
            guard let memory = attachment.object(row.object) else { continue }
            segments.append(SegmentState(index: row.index, audience: audience(of: row), recordedSize: row.size, memory: memory))
        }
        self.segments = segments.sorted { $0.index < $1.index }
    }

    /// Segment `index`, if mapped.
    func segment(_ index: UInt64) -> SegmentState? { segments.first { UInt64($0.index) == index } }

    /// Every segment's ledger blocks added up (saturating: records are the owner's to write).
    var bytesInUse: UInt64 { segments.reduce(0) { $0.addingSaturated($1.state.bytesInUse) } }
    var slicesInUse: Int { segments.reduce(0) { $0 + $1.state.entries.count } }
    /// Every mapped segment's real size, added up.
    var totalSize: UInt64 { segments.reduce(0) { $0.addingSaturated(UInt64($1.memory.size)) } }
}

/// A segment row's audience: its first `uid_count` uids, never more than the array holds.
func audience(of row: bus1_snapshot_segment) -> [UInt32] {
    let count = min(Int(row.uid_count), Int(BUS1_SEGMENT_AUDIENCE_MAX))
    return withUnsafeBytes(of: row.uids) { Array($0.bindMemory(to: UInt32.self).prefix(count)) }
}

/// A wire offset split into its segment and the offset inside that segment.
func splitOffset(_ offset: UInt64) -> (segment: UInt64, offset: UInt64) {
    (offset >> UInt64(BUS1_SEGMENT_SHIFT), offset & UInt64(BUS1_SEGMENT_OFFSET_MASK))
}

/// How a slice's place is written: the offset alone in segment 0 (as before
/// segments), `segment:offset` in any other.
func slicePlace(segment: UInt64, offset: UInt64) -> String { segment == 0 ? "\(offset)" : "\(segment):\(offset)" }
