import CBus1Wire
import Glibc

/// The owner's allocator for its own pool: a binary buddy allocator over the
/// payload area, with all bookkeeping in process-local memory (nothing a receiver
/// can write is ever trusted).
///
/// Invariants:
/// - the blocks tile the payload area: walking from unit 0 by block sizes visits
///   every block exactly once, free or not;
/// - a block is `free` (on exactly one free list), `loaned` (handed to the caller to
///   fill) or `sent` (in flight on one channel, identified by a tag, or — a
///   multicast — on several: `multicastTags` lists one tag per descriptor still
///   outstanding, and the block is freed when the last one completes);
/// - the owner may keep a sent block for itself (``keptTag``, one entry like a
///   descriptor's that no receiver can complete, since no channel has that tag):
///   a kept block can be sent again (``addSent(_:channelTags:ticket:)``) and is
///   freed only once the owner lets go and every receiver completed it;
/// - two free buddies of the same order never coexist on the free lists (they are
///   merged on free); small blocks may instead wait, unmerged and `cached`, on a
///   per-order quick list (at most `quickListDepth` each), so a steady stream of
///   small messages reuses the same blocks without splitting and merging 18 levels
///   every time.
///
/// Offsets are pool offsets (from the start of the memfd), so a descriptor's
/// offset is the same number the allocator hands out.
///
/// Set-up is O(1): the per-unit tables (``UnitTables``, 14 bytes a unit, 3.5 MiB
/// for a 64 MiB pool) live in one anonymous mapping the kernel zero-fills page
/// by page on first touch, and every field is stored so that zero is its
/// initial value; only the pages of units a block ever starts at are faulted in.
/// States: free → loaned → (free | sent); sent → free (on a matching completion).
public struct PoolAllocator: ~Copyable {
    public enum BlockState: UInt8, Sendable {
        case free = 0, loaned = 1, sent = 2
        /// Free, but parked on a quick list (not merged with its buddy).
        case cached = 3
    }

    /// Where the payload area starts in the pool.
    public let dataOffset: Int
    /// Bytes in the payload area (a power of two).
    public let dataSize: Int
    /// Bytes per allocation unit.
    public static let unitSize = Int(BUS1_POOL_UNIT)
    static let unitShift = Int(BUS1_POOL_UNIT).trailingZeroBitCount
    let maxOrder: Int

    private let tables: UnitTables
    /// Free-list links, stored as unit + 1 (0: none).
    private var next: UnsafeMutableBufferPointer<Int32> { tables.next }
    private var prev: UnsafeMutableBufferPointer<Int32> { tables.prev }
    /// The order of the block starting at a unit, stored as order + 1 (0: no block starts there).
    private var order: UnsafeMutableBufferPointer<Int8> { tables.order }
    /// A block's `BlockState` (meaningful where a block starts).
    private var state: UnsafeMutableBufferPointer<UInt8> { tables.state }
    private var tag: UnsafeMutableBufferPointer<UInt32> { tables.tag }
    /// The first block of each order's free list, as unit + 1 (0: empty).
    private var freeHead: [Int32]
    private var nonEmpty: UInt64 = 0
    /// Quick lists of cached small blocks, by order (0...quickOrders-1).
    private var quick = QuickLists()
    static let quickOrders = QuickLists.orders
    static let quickListDepth = QuickLists.depth
    /// Multicast blocks (by unit): the channel tag of every descriptor not yet
    /// completed. Unicast blocks use `tag` alone and never allocate here.
    private var multicastTags: [Int: [UInt32]] = [:]
    /// Sentinel in `tag` for a block whose tags live in `multicastTags`.
    private static let multicastTag: UInt32 = .max
    /// The owner's own reference to a sent block it keeps to send again (a topic's
    /// history): never a channel's tag, so no receiver's completion can free it.
    public static let keptTag: UInt32 = .max - 1

    /// The pool's shared slice ledger, kept in step with `state` (nil: none).
    private let ledger: SliceLedger?

    /// Bytes in loaned or sent blocks.
    public private(set) var bytesInUse = 0
    /// Loaned or sent blocks.
    public private(set) var slicesInUse = 0

    /// The largest payload one slice can hold.
    public var largestSlice: Int { dataSize }

    /// An allocator for a payload area of `dataSize` bytes (a power of two, at least
    /// one unit) starting at `dataOffset`, mirroring what it hands out into
    /// `ledger` if given.
    public init(dataOffset: Int, dataSize: Int, ledger: SliceLedger? = nil) {
        self.ledger = ledger
        precondition(dataSize >= Self.unitSize && dataSize & (dataSize - 1) == 0, "pool payload area must be a power of two")
        self.dataOffset = dataOffset
        self.dataSize = dataSize
        let units = dataSize >> Self.unitShift
        maxOrder = units.trailingZeroBitCount
        tables = UnitTables(units: units)
        freeHead = Array(repeating: 0, count: maxOrder + 1)
        push(0, order: maxOrder)
    }

    deinit { tables.unmap() }

    // MARK: Allocation

    /// The order of the block an allocation of `byteCount` bytes takes: the
    /// smallest power of two of units that holds it.
    @inline(__always)
    static func order(for byteCount: Int) -> Int {
        let units = max(1, (byteCount + unitSize - 1) >> unitShift)
        return units <= 1 ? 0 : Int.bitWidth - (units - 1).leadingZeroBitCount
    }

    /// Bytes in the block an allocation of `byteCount` bytes gets (what a slice
    /// of it can hold), known without looking the block up.
    @inline(__always)
    public static func blockBytes(for byteCount: Int) -> Int { unitSize << order(for: byteCount) }

    /// A block able to hold `byteCount` bytes, marked loaned; nil if none is free.
    public mutating func allocate(_ byteCount: Int) -> UInt64? {
        let wanted = Self.order(for: byteCount)
        guard wanted <= maxOrder else { return nil }
        if wanted < Self.quickOrders, let unit = quick.pop(order: wanted) {
            state[unit] = BlockState.loaned.rawValue
            bytesInUse += Self.unitSize << wanted
            slicesInUse += 1
            ledger?.loaned(unit: unit, blockBytes: Self.unitSize << wanted)
            return UInt64(dataOffset + unit << Self.unitShift)
        }
        let candidates = nonEmpty & ~((UInt64(1) << UInt64(wanted)) &- 1)
        guard candidates != 0 else { return flushQuickLists() ? allocate(byteCount) : nil }
        var k = candidates.trailingZeroBitCount
        let unit = Int(freeHead[k]) - 1
        remove(unit, order: k)
        while k > wanted {  // split, keeping the lower half
            k -= 1
            push(unit + (1 << k), order: k)
        }
        order[unit] = Int8(k + 1)
        state[unit] = BlockState.loaned.rawValue
        bytesInUse += Self.unitSize << k
        slicesInUse += 1
        ledger?.loaned(unit: unit, blockBytes: Self.unitSize << k)
        return UInt64(dataOffset + unit << Self.unitShift)
    }

    /// Marks a loaned block as sent on the channel identified by `channelTag`, to
    /// peer `receiver` (for the ledger) as `ticket`, carrying `length` bytes.
    /// Not `mutating`: it writes only the unit tables, so a caller needs no
    /// exclusive access (a mutating call copied the whole allocator per send).
    public func markSent(_ offset: UInt64, channelTag: UInt32, ticket: UInt64, receiver: UInt64, length: Int) {
        let unit = self.unit(offset)!
        precondition(state[unit] == BlockState.loaned.rawValue, "sending a block that is not loaned")
        state[unit] = BlockState.sent.rawValue
        tag[unit] = channelTag
        ledger?.sent(unit: unit, ticket: ticket, receiver: receiver, length: UInt32(length), pending: 1)
    }

    /// Marks a loaned block as sent once per entry of `channelTags` (a multicast: one
    /// descriptor per destination, possibly several on one channel). Tags must not
    /// be `UInt32.max`.
    public mutating func markSent(_ offset: UInt64, channelTags: [UInt32], ticket: UInt64, length: Int) {
        let unit = self.unit(offset)!
        precondition(state[unit] == BlockState.loaned.rawValue, "sending a block that is not loaned")
        state[unit] = BlockState.sent.rawValue
        if channelTags.count == 1 {
            tag[unit] = channelTags[0]
        } else {
            tag[unit] = Self.multicastTag
            multicastTags[unit] = channelTags
        }
        ledger?.sent(unit: unit, ticket: ticket, receiver: BUS1_INVALID_ID /* multicast */, length: UInt32(length), pending: channelTags.count)
    }

    /// Sends a block that is `sent` and kept (``keptTag``) once more, once per
    /// entry of `channelTags` (which must not be `UInt32.max` or ``keptTag``).
    public mutating func addSent(_ offset: UInt64, channelTags: [UInt32], ticket: UInt64) {
        let unit = self.unit(offset)!
        precondition(state[unit] == BlockState.sent.rawValue, "sending again a block that is not sent")
        var tags = tag[unit] == Self.multicastTag ? multicastTags[unit]! : [tag[unit]]
        precondition(tags.contains(Self.keptTag), "sending again a block its owner does not keep")
        tags += channelTags
        tag[unit] = Self.multicastTag
        multicastTags[unit] = tags
        ledger?.resent(unit: unit, ticket: ticket, pending: tags.count)
    }

    /// Frees a loaned block (a loan given up without sending).
    public mutating func freeLoan(_ offset: UInt64) {
        let unit = self.unit(offset)!
        precondition(state[unit] == BlockState.loaned.rawValue, "freeing a block that is not loaned")
        release(unit)
    }

    /// Frees a sent block after its receiver completed it. Returns false, changing
    /// nothing, unless `offset` is a block sent on `channelTag`: a receiver cannot
    /// free what it was not given, nor free anything twice.
    public mutating func reclaim(_ offset: UInt64, channelTag: UInt32) -> Bool {
        guard let unit = self.unit(offset), order[unit] != 0, state[unit] == BlockState.sent.rawValue else { return false }
        if tag[unit] == Self.multicastTag {
            guard var tags = multicastTags[unit], let i = tags.firstIndex(of: channelTag) else { return false }
            tags.remove(at: i)
            if !tags.isEmpty {
                multicastTags[unit] = tags
                ledger?.pending(unit: unit, tags.count)
                return true
            }
            multicastTags[unit] = nil
        } else if tag[unit] != channelTag {
            return false
        }
        release(unit)
        return true
    }

    /// Drops every outstanding descriptor on `channelTag` (its channel closed) and
    /// frees the blocks nobody else holds. Returns how many blocks were freed.
    @discardableResult
    public mutating func reclaimAll(channelTag: UInt32) -> Int {
        var doomed: [Int] = []  // collect first: freeing merges blocks under the walk
        var unit = 0
        let units = dataSize >> Self.unitShift
        while unit < units {
            let k = blockOrder(unit)
            precondition(k >= 0, "blocks no longer tile the pool")
            if state[unit] == BlockState.sent.rawValue {
                if tag[unit] == channelTag {
                    doomed.append(unit)
                } else if tag[unit] == Self.multicastTag, var tags = multicastTags[unit], tags.contains(channelTag) {
                    tags.removeAll { $0 == channelTag }
                    if tags.isEmpty {
                        multicastTags[unit] = nil
                        doomed.append(unit)
                    } else {
                        multicastTags[unit] = tags
                        ledger?.pending(unit: unit, tags.count)
                    }
                }
            }
            unit += 1 << k
        }
        for unit in doomed { release(unit) }
        return doomed.count
    }

    /// Capacity in bytes of the block at `offset`, if it is a block in use.
    public func capacity(at offset: UInt64) -> Int? {
        guard let unit = self.unit(offset), order[unit] != 0,
              state[unit] == BlockState.loaned.rawValue || state[unit] == BlockState.sent.rawValue else { return nil }
        return Self.unitSize << blockOrder(unit)
    }

    /// State of the block starting at `offset`, if a block starts there.
    public func state(at offset: UInt64) -> BlockState? {
        guard let unit = self.unit(offset), order[unit] != 0 else { return nil }
        return BlockState(rawValue: state[unit])
    }

    /// Walks the blocks and checks the tiling and buddy invariants; returns the
    /// bytes in use it found (for tests).
    public func verify() -> Int {
        var unit = 0, used = 0, slices = 0
        let units = dataSize >> Self.unitShift
        while unit < units {
            let k = blockOrder(unit)
            precondition(k >= 0 && unit % (1 << k) == 0, "block tiling broken at unit \(unit)")
            let blockState = BlockState(rawValue: state[unit])!
            if blockState == .loaned || blockState == .sent { used += Self.unitSize << k; slices += 1 } else if blockState == .free && k < maxOrder {
                let buddy = unit ^ (1 << k)
                precondition(!(blockOrder(buddy) == k && state[buddy] == BlockState.free.rawValue), "unmerged free buddies at \(unit)")
            }
            unit += 1 << k
        }
        precondition(used == bytesInUse && slices == slicesInUse, "usage counters disagree with the blocks")
        return used
    }

    // MARK: Internals

    /// The order of the block starting at `unit` (-1: none starts there).
    @inline(__always)
    private func blockOrder(_ unit: Int) -> Int { Int(order[unit]) - 1 }

    @inline(__always)
    private func unit(_ offset: UInt64) -> Int? {
        guard offset >= UInt64(dataOffset), offset < UInt64(dataOffset + dataSize) else { return nil }
        let relative = Int(offset) - dataOffset
        guard relative & (Self.unitSize - 1) == 0 else { return nil }
        return relative >> Self.unitShift
    }

    private mutating func release(_ start: Int) {
        let unit = start
        let k = blockOrder(unit)
        bytesInUse -= Self.unitSize << k
        slicesInUse -= 1
        ledger?.freed(unit: unit)
        if k < Self.quickOrders && quick.push(unit, order: k) {
            state[unit] = BlockState.cached.rawValue
            return
        }
        coalesce(unit, order: k)
    }

    /// Frees a block into the buddy lists, merging it with free buddies.
    private mutating func coalesce(_ start: Int, order startOrder: Int) {
        var unit = start
        var k = startOrder
        state[unit] = BlockState.free.rawValue
        while k < maxOrder {
            let buddy = unit ^ (1 << k)
            guard order[buddy] == Int8(k + 1), state[buddy] == BlockState.free.rawValue else { break }
            remove(buddy, order: k)
            order[max(unit, buddy)] = 0
            unit = min(unit, buddy)
            k += 1
        }
        push(unit, order: k)
    }

    /// Returns every cached block to the buddy lists (when a larger block is
    /// needed). Returns whether there were any.
    private mutating func flushQuickLists() -> Bool {
        var any = false
        for k in 0..<Self.quickOrders {
            while let unit = quick.pop(order: k) {
                coalesce(unit, order: k)
                any = true
            }
        }
        return any
    }

    private mutating func push(_ unit: Int, order k: Int) {
        let head = freeHead[k]
        next[unit] = head
        prev[unit] = 0
        if head != 0 { prev[Int(head) - 1] = Int32(unit + 1) }
        freeHead[k] = Int32(unit + 1)
        nonEmpty |= UInt64(1) << UInt64(k)
        order[unit] = Int8(k + 1)
        state[unit] = BlockState.free.rawValue
    }

    private mutating func remove(_ unit: Int, order k: Int) {
        let n = next[unit], p = prev[unit]
        if p != 0 { next[Int(p) - 1] = n } else { freeHead[k] = n }
        if n != 0 { prev[Int(n) - 1] = p }
        if freeHead[k] == 0 { nonEmpty &= ~(UInt64(1) << UInt64(k)) }
    }
}

extension PoolAllocator {
    /// The per-unit tables, carved from one private anonymous mapping: one mmap
    /// whatever the unit count, zero-filled by the kernel a page at a time on
    /// first touch (what `calloc` promises only for fresh chunks). Plain pointers,
    /// stored inline in the allocator (no indirection on the hot path); the
    /// allocator's `deinit` unmaps them.
    struct UnitTables {
        let next: UnsafeMutableBufferPointer<Int32>
        let prev: UnsafeMutableBufferPointer<Int32>
        let tag: UnsafeMutableBufferPointer<UInt32>
        let order: UnsafeMutableBufferPointer<Int8>
        let state: UnsafeMutableBufferPointer<UInt8>
        private let base: UnsafeMutableRawPointer
        private let byteCount: Int

        init(units: Int) {
            // Widest first: every array stays aligned (`units` is a power of two).
            byteCount = units * (4 + 4 + 4 + 1 + 1)
            let mapped = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let mapped, mapped != MAP_FAILED else { fatalError("pool allocator: mmap of \(byteCount) bytes failed (errno \(errno))") }
            base = mapped
            next = Self.carve(base, units: units, as: Int32.self)
            prev = Self.carve(base + 4 * units, units: units, as: Int32.self)
            tag = Self.carve(base + 8 * units, units: units, as: UInt32.self)
            order = Self.carve(base + 12 * units, units: units, as: Int8.self)
            state = Self.carve(base + 13 * units, units: units, as: UInt8.self)
        }

        private static func carve<T>(_ start: UnsafeMutableRawPointer, units: Int, as type: T.Type) -> UnsafeMutableBufferPointer<T> {
            UnsafeMutableBufferPointer(start: start.bindMemory(to: T.self, capacity: units), count: units)
        }

        func unmap() { munmap(base, byteCount) }
    }
}

/// The allocator's quick lists: up to ``depth`` cached block starts for each of
/// the ``orders`` smallest orders, in one fixed allocation, so caching and
/// reusing a block is a load and a store (arrays of arrays cost uniqueness
/// checks and bounds checks per operation on the message path).
struct QuickLists: ~Copyable {
    static let orders = 5  // 256 B ... 4 KiB
    static let depth = 256
    /// `orders` stacks of `depth` units each.
    private let units: UnsafeMutablePointer<Int32>
    /// Entries on each stack.
    private let counts: UnsafeMutablePointer<Int>

    init() {
        units = .allocate(capacity: Self.orders * Self.depth)
        counts = .allocate(capacity: Self.orders)
        counts.initialize(repeating: 0, count: Self.orders)
    }

    deinit {
        units.deallocate()
        counts.deallocate()
    }

    /// The block cached last at order `k` (< ``orders``), taken off its list.
    @inline(__always)
    func pop(order k: Int) -> Int? {
        let count = counts[k]
        guard count > 0 else { return nil }
        counts[k] = count - 1
        return Int(units[k * Self.depth + count - 1])
    }

    /// Caches `unit` at order `k` (< ``orders``); false when that list is full.
    @inline(__always)
    func push(_ unit: Int, order k: Int) -> Bool {
        let count = counts[k]
        guard count < Self.depth else { return false }
        units[k * Self.depth + count] = Int32(unit)
        counts[k] = count + 1
        return true
    }
}
