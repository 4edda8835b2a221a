import Bus1Linux
import CBus1Wire

/// A peer's own pool as its receivers see it: segments, each readable by one
/// audience of uids (see "Pool segments" in the wire header), each with its own
/// allocator and slice ledger.
///
/// Offsets are wire offsets: the segment index in the top bits
/// (`BUS1_SEGMENT_SHIFT`), the offset inside that segment below, so a slice's
/// offset is the same number in the allocator, in a descriptor and in the
/// completion that returns it, and a completion naming a segment this pool does
/// not have, or a slice a segment did not send, is refused like any bad offset.
///
/// Segment 0, the pool of WELCOME (readable by the owner's own uid), is kept
/// inline: same-uid traffic, the common case, pays one compare for segments.
///
/// A class, so a `Loan` keeps the pool (not the whole peer) alive and frees its
/// slice into it. Used from the owning peer's one thread only: its state is
/// `@exclusivity(unchecked)` like the peer's hot state.
public final class SegmentedPool {
    /// Segment 0.
    @exclusivity(unchecked) private var primary: PoolAllocator
    private let primaryMapping: Mapping
    /// The owner's uid: segment 0's audience.
    public let ownerUID: UInt32
    /// Segments 1... in index order; nil for an index the coordinator gave out
    /// that this peer never got to use (its seal failed).
    @exclusivity(unchecked) private var others: [Segment?] = []

    /// A segment beyond the first: its mapping (writable), allocator and audience.
    private final class Segment {
        let mapping: Mapping
        var allocator: PoolAllocator
        let audience: [UInt32]
        init(mapping: consuming Mapping, allocator: consuming PoolAllocator, audience: [UInt32]) {
            self.mapping = mapping
            self.allocator = allocator
            self.audience = audience
        }
    }

    static let offsetMask = UInt64(BUS1_SEGMENT_OFFSET_MASK)

    /// The pool of WELCOME, mapped writable, as segment 0 of `ownerUID`.
    public init(pool: consuming Mapping, layout: bus1_pool_layout, ownerUID: UInt32) {
        primary = PoolAllocator(dataOffset: Int(layout.data_offset), dataSize: Int(layout.data_size),
                                ledger: SliceLedger(pool: pool.base, layout: layout))
        primaryMapping = pool
        self.ownerUID = ownerUID
    }

    /// Segment indices in use or skipped (segment 0 included): every new one is above.
    public var segmentCount: Int { 1 + others.count }

    /// Adds segment `index` (at least ``segmentCount``), mapped writable, for
    /// `audience` (strictly ascending).
    public func add(_ mapping: consuming Mapping, index: Int, layout: bus1_pool_layout, audience: [UInt32]) {
        precondition(index >= segmentCount && index < Int(BUS1_SEGMENTS_MAX), "segment index")
        while segmentCount < index { others.append(nil) }
        let allocator = PoolAllocator(dataOffset: index << Int(BUS1_SEGMENT_SHIFT) + Int(layout.data_offset),
                                      dataSize: Int(layout.data_size), ledger: SliceLedger(pool: mapping.base, layout: layout))
        others.append(Segment(mapping: mapping, allocator: allocator, audience: audience))
    }

    /// The segment whose audience is exactly `audience` (strictly ascending), if any.
    public func segment(for audience: [UInt32]) -> Int? {
        if audience == [ownerUID] { return 0 }
        return others.firstIndex { $0?.audience == audience }.map { $0 + 1 }
    }

    /// Whether peers of `uid` can read the slice at `offset` (its segment's
    /// audience includes them).
    @inline(__always)
    public func isReadable(_ offset: UInt64, by uid: UInt32) -> Bool {
        let index = Int(offset >> UInt64(BUS1_SEGMENT_SHIFT))
        if index == 0 { return uid == ownerUID }
        return index <= others.count && others[index - 1]?.audience.contains(uid) == true
    }

    /// Where the slice at `offset` is mapped in this process.
    @inline(__always)
    public func pointer(at offset: UInt64) -> UnsafeMutableRawPointer {
        let index = Int(offset >> UInt64(BUS1_SEGMENT_SHIFT))
        let base = index == 0 ? primaryMapping.base : others[index - 1]!.mapping.base
        return base + Int(offset & Self.offsetMask)
    }

    // MARK: The allocator's operations, by segment

    /// A loaned block of at least `byteCount` bytes in segment `index`.
    @inline(__always)
    public func allocate(_ byteCount: Int, in index: Int = 0) -> UInt64? {
        index == 0 ? primary.allocate(byteCount) : others[index - 1]!.allocator.allocate(byteCount)
    }

    @inline(__always)
    public func markSent(_ offset: UInt64, channelTag: UInt32, ticket: UInt64, receiver: UInt64, length: Int) {
        if offset >> UInt64(BUS1_SEGMENT_SHIFT) == 0 {
            primary.markSent(offset, channelTag: channelTag, ticket: ticket, receiver: receiver, length: length)
        } else {
            segment(of: offset)!.allocator.markSent(offset, channelTag: channelTag, ticket: ticket, receiver: receiver, length: length)
        }
    }

    public func markSent(_ offset: UInt64, channelTags: [UInt32], ticket: UInt64, length: Int) {
        if offset >> UInt64(BUS1_SEGMENT_SHIFT) == 0 {
            primary.markSent(offset, channelTags: channelTags, ticket: ticket, length: length)
        } else {
            segment(of: offset)!.allocator.markSent(offset, channelTags: channelTags, ticket: ticket, length: length)
        }
    }

    public func addSent(_ offset: UInt64, channelTags: [UInt32], ticket: UInt64) {
        if offset >> UInt64(BUS1_SEGMENT_SHIFT) == 0 {
            primary.addSent(offset, channelTags: channelTags, ticket: ticket)
        } else {
            segment(of: offset)!.allocator.addSent(offset, channelTags: channelTags, ticket: ticket)
        }
    }

    @inline(__always)
    public func freeLoan(_ offset: UInt64) {
        if offset >> UInt64(BUS1_SEGMENT_SHIFT) == 0 { primary.freeLoan(offset) } else { segment(of: offset)!.allocator.freeLoan(offset) }
    }

    /// ``PoolAllocator/reclaim(_:channelTag:)`` in the segment `offset` names;
    /// false for a segment this pool does not have.
    @inline(__always)
    public func reclaim(_ offset: UInt64, channelTag: UInt32) -> Bool {
        if offset >> UInt64(BUS1_SEGMENT_SHIFT) == 0 { return primary.reclaim(offset, channelTag: channelTag) }
        guard let segment = segment(of: offset) else { return false }
        return segment.allocator.reclaim(offset, channelTag: channelTag)
    }

    /// ``PoolAllocator/reclaimAll(channelTag:)`` in every segment.
    @discardableResult
    public func reclaimAll(channelTag: UInt32) -> Int {
        var freed = primary.reclaimAll(channelTag: channelTag)
        for case let segment? in others { freed += segment.allocator.reclaimAll(channelTag: channelTag) }
        return freed
    }

    /// Bytes in loaned or sent blocks, all segments.
    public var bytesInUse: Int { others.reduce(primary.bytesInUse) { $0 + ($1?.allocator.bytesInUse ?? 0) } }
    /// Loaned or sent blocks, all segments.
    public var slicesInUse: Int { others.reduce(primary.slicesInUse) { $0 + ($1?.allocator.slicesInUse ?? 0) } }
    /// The largest slice of segment 0 (every segment this library opens is as large).
    public var largestSlice: Int { primary.largestSlice }

    private func segment(of offset: UInt64) -> Segment? {
        let index = Int(offset >> UInt64(BUS1_SEGMENT_SHIFT))
        return index >= 1 && index <= others.count ? others[index - 1] : nil  // nil too for a skipped index
    }
}
