import Bus1Core
import Bus1TestSupport
import CBus1Wire
import Testing

@Suite("Pool allocator", .timeLimit(.minutes(10)))
struct PoolAllocatorTests {
    /// The slice records with a slice in them, by pool offset.
    static func ledgerEntries(_ memory: UnsafeMutableRawPointer, _ layout: bus1_pool_layout) -> [UInt64: bus1_slice_record] {
        let records = (memory + Int(layout.ledger_offset)).assumingMemoryBound(to: bus1_slice_record.self)
        var entries: [UInt64: bus1_slice_record] = [:]
        for unit in 0..<Int(layout.data_size) / Int(BUS1_POOL_UNIT) where records[unit].block_bytes != 0 {
            entries[layout.data_offset + UInt64(unit) * UInt64(BUS1_POOL_UNIT)] = records[unit]
        }
        return entries
    }

    @Test("Random loans, sends, frees and completions keep every invariant, never overlap, and the ledger mirrors them",
          arguments: [1, 2, 3, 4])
    func randomOperations(seed: UInt64) {
        var rng = SplitMix64(state: seed)
        let layout = bus1_pool_layout(poolSize: bus1_pool_layout.poolSize(forDataSize: 1 << 20))!
        let memory = UnsafeMutableRawPointer.allocate(byteCount: Int(layout.data_offset), alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: Int(layout.data_offset))
        defer { memory.deallocate() }
        var pool = PoolAllocator(dataOffset: Int(layout.data_offset), dataSize: 1 << 20, ledger: SliceLedger(pool: memory, layout: layout))
        var loaned: [UInt64: Int] = [:]
        var sent: [UInt64: (tag: UInt32, size: Int)] = [:]
        for step in 0..<20_000 {
            switch rng.next() % 5 {
            case 0, 1:
                let size = Int(rng.next() % 3 == 0 ? rng.next() % 65536 : rng.next() % 600)
                if let offset = pool.allocate(size) {
                    let capacity = pool.capacity(at: offset)!
                    #expect(capacity >= max(size, 1))
                    // No overlap with anything in use.
                    var others: [(UInt64, Int)] = []
                    for key in Array(loaned.keys) + Array(sent.keys) { others.append((key, pool.capacity(at: key)!)) }
                    for (other, otherSize) in others {
                        #expect(offset + UInt64(capacity) <= other || other + UInt64(otherSize) <= offset, "overlap at step \(step)")
                    }
                    loaned[offset] = size
                }
            case 2:
                if let (offset, size) = loaned.randomElement(using: &rng) {
                    loaned[offset] = nil
                    let tag = UInt32(rng.next() % 3 + 1)
                    pool.markSent(offset, channelTag: tag, ticket: UInt64(step + 1), receiver: UInt64(tag), length: size)
                    sent[offset] = (tag, size)
                }
            case 3:
                if let (offset, _) = loaned.randomElement(using: &rng) {
                    loaned[offset] = nil
                    pool.freeLoan(offset)
                }
            default:
                if let (offset, info) = sent.randomElement(using: &rng) {
                    let wrongTag = pool.reclaim(offset, channelTag: info.tag &+ 7)
                    let right = pool.reclaim(offset, channelTag: info.tag)
                    let twice = pool.reclaim(offset, channelTag: info.tag)
                    #expect(!wrongTag && right && !twice, "tag check or double free at step \(step)")
                    sent[offset] = nil
                }
            }
            if step % 1000 == 0 {
                _ = pool.verify()
                let ledger = Self.ledgerEntries(memory, layout)
                #expect(ledger.count == loaned.count + sent.count, "ledger size at step \(step)")
                for (offset, _) in loaned { #expect(ledger[offset]?.state == UInt16(BUS1_SLICE_LOANED.rawValue)) }
                for (offset, info) in sent {
                    let record = ledger[offset]
                    #expect(record?.state == UInt16(BUS1_SLICE_SENT.rawValue) && record?.receiver == UInt64(info.tag)
                            && record?.length == UInt32(info.size) && record?.pending == 1 && record?.block_bytes == UInt32(pool.capacity(at: offset)!))
                }
            }
        }
        let tag: UInt32 = 2
        let onTag = sent.filter { $0.value.tag == tag }.count
        let swept = pool.reclaimAll(channelTag: tag)
        #expect(swept == onTag)
        for offset in loaned.keys { pool.freeLoan(offset) }
        for (offset, info) in sent where info.tag != tag {
            let ok = pool.reclaim(offset, channelTag: info.tag)
            #expect(ok)
        }
        let inUse = pool.verify()
        let counters = (pool.bytesInUse, pool.slicesInUse)
        #expect(inUse == 0 && counters == (0, 0))
        #expect(Self.ledgerEntries(memory, layout).isEmpty, "ledger keeps freed slices")
        // Everything merged back: the whole area is one block again.
        let whole = pool.allocate(1 << 20)
        #expect(whole != nil)
    }

    @Test("Completions that name no sent block are refused")
    func bogusCompletions() {
        var pool = PoolAllocator(dataOffset: 4096, dataSize: 1 << 16)
        let offset = pool.allocate(100)!
        let unsent = pool.reclaim(offset, channelTag: 1)
        pool.markSent(offset, channelTag: 1, ticket: 1, receiver: 2, length: 100)
        let misaligned = pool.reclaim(offset + 1, channelTag: 1)
        let header = pool.reclaim(0, channelTag: 1)
        let past = pool.reclaim(1 << 40, channelTag: 1)
        let freeUnit = pool.reclaim(offset + 256, channelTag: 1)
        #expect([unsent, misaligned, header, past, freeUnit] == [false, false, false, false, false])
        let valid = pool.reclaim(offset, channelTag: 1)
        #expect(valid)
    }

    @Test("A kept block is sent again and freed only when the owner lets go and every receiver completed it")
    func keptBlock() {
        var pool = PoolAllocator(dataOffset: 4096, dataSize: 1 << 16)
        let offset = pool.allocate(100)!
        pool.markSent(offset, channelTags: [PoolAllocator.keptTag, 1], ticket: 1, length: 100)
        let first = pool.reclaim(offset, channelTag: 1)
        let stillKept = pool.state(at: offset) == .sent
        pool.addSent(offset, channelTags: [2, 3], ticket: 2)
        let again = pool.reclaim(offset, channelTag: 1)  // completed already: a second completion is refused
        let second = pool.reclaim(offset, channelTag: 2)
        let closed = pool.reclaimAll(channelTag: 3)  // the owner still keeps it: nothing freed
        let sentBeforeLetGo = pool.state(at: offset) == .sent
        let letGo = pool.reclaim(offset, channelTag: PoolAllocator.keptTag)
        #expect(first && stillKept && !again && second && closed == 0 && sentBeforeLetGo && letGo)
        #expect(pool.state(at: offset) != .sent && pool.verify() == 0)
    }

    @Test("Exhaustion is reported, not overcommitted")
    func exhaustion() {
        var pool = PoolAllocator(dataOffset: 4096, dataSize: 1 << 16)
        var offsets: [UInt64] = []
        while let o = pool.allocate(1 << 12) { offsets.append(o) }
        let small = pool.allocate(1)
        let huge = pool.allocate((1 << 16) + 1)
        #expect(offsets.count == 16 && small == nil && huge == nil)
    }
}
