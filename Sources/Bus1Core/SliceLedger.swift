import Bus1Linux
import CBus1Wire

extension bus1_pool_layout {
    /// The layout of a pool of `poolSize` bytes (`bus1_pool_layout_of()`), or nil if
    /// no valid pool has that size.
    public init?(poolSize: Int) {
        var layout = bus1_pool_layout()
        guard poolSize > 0, bus1_pool_layout_of(UInt64(poolSize), &layout) == 0 else { return nil }
        self = layout
    }

    /// Pool bytes for a payload area of `dataSize` bytes (a power of two).
    public static func poolSize(forDataSize dataSize: Int) -> Int {
        Int(bus1_pool_size_for(UInt64(dataSize)))
    }
}

/// The owner's writer for its pool's slice ledger (`struct bus1_slice_record`,
/// one per payload unit): what it has loaned and sent, to whom and since when,
/// for inspectors. Nothing reads it back; it is advisory and costs a few stores
/// to a line only the owner writes.
/// Sendable: an immutable pointer; only the pool's owner writes through it, with
/// atomic stores (inspectors read racily and say so).
public struct SliceLedger: @unchecked Sendable {
    private let records: UnsafeMutablePointer<bus1_slice_record>
    private let units: Int

    /// The ledger of the pool mapped (writable) at `base` with `layout`.
    public init(pool base: UnsafeMutableRawPointer, layout: bus1_pool_layout) {
        units = Int(layout.data_size) / Int(BUS1_POOL_UNIT)
        records = (base + Int(layout.ledger_offset)).bindMemory(to: bus1_slice_record.self, capacity: units)
    }

    @inline(__always)
    func loaned(unit: Int, blockBytes: Int) {
        // Field by field: assigning a whole record went through `memcpy`.
        records[unit].ticket = 0
        records[unit].receiver = 0
        records[unit].block_bytes = UInt32(truncatingIfNeeded: blockBytes)
        records[unit].length = 0
        records[unit].pending = 0
        records[unit].state = UInt16(BUS1_SLICE_LOANED.rawValue)
        records[unit].since_ms = coarseMonotonicMilliseconds()
    }

    @inline(__always)
    func sent(unit: Int, ticket: UInt64, receiver: UInt64, length: UInt32, pending: Int) {
        records[unit].ticket = ticket
        records[unit].receiver = receiver
        records[unit].length = length
        records[unit].pending = UInt16(truncatingIfNeeded: pending)
        records[unit].state = UInt16(BUS1_SLICE_SENT.rawValue)
    }

    /// A kept slice sent again (a multicast now, whatever it was).
    func resent(unit: Int, ticket: UInt64, pending: Int) {
        records[unit].ticket = ticket
        records[unit].receiver = BUS1_INVALID_ID
        records[unit].pending = UInt16(truncatingIfNeeded: pending)
    }

    @inline(__always)
    func pending(unit: Int, _ count: Int) {
        records[unit].pending = UInt16(truncatingIfNeeded: count)
    }

    @inline(__always)
    func freed(unit: Int) {
        records[unit] = bus1_slice_record()
    }
}
