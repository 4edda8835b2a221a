import Bus1Core
import Bus1Linux
import CBus1Wire
import Testing

@Suite("Segmented pool", .timeLimit(.minutes(10)))
struct SegmentedPoolTests {
    static let size = bus1_pool_layout.poolSize(forDataSize: 1 << 16)
    static let layout = bus1_pool_layout(poolSize: size)!

    static func mapping() throws -> Mapping {
        try Mapping(try MemFD.create(name: "segmented-pool-test", size: size), count: size, writable: true)
    }

    @Test("Offsets carry their segment; each segment has its own audience; a completion for a segment or slice it does not have is refused")
    func segments() throws {
        let pool = SegmentedPool(pool: try Self.mapping(), layout: Self.layout, ownerUID: 1000)
        pool.add(try Self.mapping(), index: 2, layout: Self.layout, audience: [0, 65534])  // index 1 skipped (its seal failed)
        let count = pool.segmentCount, own = pool.segment(for: [1000]), both = pool.segment(for: [0, 65534]), none = pool.segment(for: [0])
        #expect(count == 3 && own == 0 && both == 2 && none == nil)

        let first = pool.allocate(100), second = pool.allocate(100, in: 2)
        let a = try #require(first), b = try #require(second)
        #expect(a >> UInt64(BUS1_SEGMENT_SHIFT) == 0)
        #expect(b >> UInt64(BUS1_SEGMENT_SHIFT) == 2)
        let readable = [pool.isReadable(a, by: 1000), pool.isReadable(a, by: 0), pool.isReadable(b, by: 0), pool.isReadable(b, by: 65534),
                        pool.isReadable(b, by: 1000), pool.isReadable(1 << UInt64(BUS1_SEGMENT_SHIFT), by: 1000) /* the skipped index */]
        #expect(readable == [true, false, true, true, false, false])
        // Both are written where the owner maps them, apart.
        pool.pointer(at: a).storeBytes(of: 0xA, as: UInt8.self)
        pool.pointer(at: b).storeBytes(of: 0xB, as: UInt8.self)
        let pa = pool.pointer(at: a), pb = pool.pointer(at: b), bytes = pool.bytesInUse, slices = pool.slicesInUse
        #expect(pa != pb && pa.load(as: UInt8.self) == 0xA && pb.load(as: UInt8.self) == 0xB)
        #expect(bytes == 512 && slices == 2)

        pool.markSent(a, channelTag: 3, ticket: 5, receiver: 8, length: 100)  // at the same offset in segment 0
        pool.markSent(b, channelTag: 1, ticket: 6, receiver: 9, length: 100)
        let local = b & UInt64(BUS1_SEGMENT_OFFSET_MASK)
        // Refused: segment 2's slice named in segment 0, in a skipped segment, in one never
        // opened, on another channel; then taken once, and not twice.
        let answers = [pool.reclaim(local, channelTag: 1), pool.reclaim(1 << UInt64(BUS1_SEGMENT_SHIFT) | local, channelTag: 1),
                       pool.reclaim(15 << UInt64(BUS1_SEGMENT_SHIFT) | local, channelTag: 1), pool.reclaim(b, channelTag: 2),
                       pool.reclaim(b, channelTag: 1), pool.reclaim(b, channelTag: 1)]
        #expect(answers == [false, false, false, false, true, false])
        let freed = pool.reclaimAll(channelTag: 3), bytesAfter = pool.bytesInUse, slicesAfter = pool.slicesInUse
        #expect(freed == 1 && bytesAfter == 0 && slicesAfter == 0)
    }
}
