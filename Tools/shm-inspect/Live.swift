import CBus1Wire
import Glibc

/// A problem found in shared memory: where it is and what is wrong.
struct Finding: Codable, Hashable {
    /// A stable name for the invariant (for scripts): `ring.index`, `slice.bounds`, ...
    var check: String
    var place: String
    var problem: String
}

/// One slice in a pool's ledger (`struct bus1_slice_record`), read racily.
struct LedgerEntry {
    let offset: UInt64
    let record: bus1_slice_record
}

/// A peer's pool: its layout (from its size alone) and the ledger's live entries.
struct PoolState {
    let layout: bus1_pool_layout?
    let header: bus1_pool_header?
    let entries: [LedgerEntry]

    init(_ pool: MappedObject) {
        var layout = bus1_pool_layout()
        guard bus1_pool_layout_of(UInt64(pool.size), &layout) == 0 else {
            self.layout = nil
            header = pool.load(bus1_pool_header.self, at: 0)
            entries = []
            return
        }
        self.layout = layout
        header = pool.load(bus1_pool_header.self, at: 0)
        let stride = MemoryLayout<bus1_slice_record>.stride
        let ledger = Int(layout.ledger_offset)..<Int(layout.ledger_offset + layout.data_size / UInt64(BUS1_POOL_UNIT) * UInt64(stride))
        var entries: [LedgerEntry] = []
        for range in pool.dataRanges(in: ledger) {
            var at = ledger.lowerBound + (range.lowerBound - ledger.lowerBound) / stride * stride
            while at + stride <= range.upperBound {
                if let record = pool.load(bus1_slice_record.self, at: at), record.block_bytes != 0 || record.state != 0 {
                    let unit = UInt64((at - ledger.lowerBound) / stride)
                    entries.append(LedgerEntry(offset: layout.data_offset + unit * UInt64(BUS1_POOL_UNIT), record: record))
                }
                at += stride
            }
        }
        self.entries = entries
    }

    /// The ledger's blocks added up; records are the owner's to write, so the sum saturates.
    var bytesInUse: UInt64 { entries.reduce(0) { $0.addingSaturated(UInt64($1.record.block_bytes)) } }

    /// Whether `[offset, offset + length)` lies in the payload area.
    func holds(offset: UInt64, length: UInt64, poolSize: UInt64) -> Bool {
        guard let layout else { return false }
        return offset >= layout.data_offset && offset <= poolSize && length <= poolSize - offset
    }
}

/// A channel's rings as read now, with every index check that a racing reader
/// can make soundly: each pair is read in the order that makes a failed check a
/// real violation (a head read before its tail can only lag; a tail read before
/// its head can only lag), never a artefact of reading a moving ring.
struct ChannelState {
    let row: bus1_snapshot_channel
    var subHead: UInt64 = 0, subTail: UInt64 = 0, compHead: UInt64 = 0, compTail: UInt64 = 0, staging: UInt64 = 0
    /// Ticket of the newest descriptor still in the ring, if readable.
    var lastTicket: UInt64?
    var findings: [Finding] = []
    /// Valid queued descriptors (index, descriptor), oldest first.
    var queued: [(index: UInt64, descriptor: bus1_descriptor)] = []
    /// Whether a queued descriptor names a segment of the sender that the snapshot
    /// does not list but that may have been opened since it was taken: its slice
    /// is unchecked, and the sender's ledgers are not comparable with its rings.
    var namesUnlistedSegment = false

    var capacity: UInt64 { UInt64(row.capacity) }
    /// Descriptors published and not yet taken by the receiver.
    var waiting: UInt64 { subTail >= subHead ? subTail - subHead : 0 }
    /// Slices the sender has out on this channel (sent, completion not consumed).
    var outstanding: UInt64 { subTail >= compHead ? subTail - compHead : 0 }
    /// Messages the receiver took and has not released.
    var heldByReceiver: UInt64 { subHead >= compTail ? subHead - compTail : 0 }
    /// Completions published and not yet consumed by the sender.
    var completionsPending: UInt64 { compTail >= compHead ? compTail - compHead : 0 }

    /// `clock` is the clock page when tickets come from it (not on a FIFO-only bus).
    init(_ row: bus1_snapshot_channel, memory: MappedObject?, tables: Tables, pools: [UInt64: PeerPool], clock: MappedObject?) {
        self.row = row
        guard let memory else { finding("object.missing", "no channel memory"); return }
        guard let geometry = ringGeometry(in: memory) else { return }
        readIndices(memory, clock: clock)
        readQueue(memory, geometry: geometry, tables: tables, senderPool: pools[row.sender], clock: clock)
    }

    private mutating func finding(_ check: String, _ problem: String) {
        findings.append(Finding(check: check, place: "channel \(row.channel_id) (\(row.sender) -> \(row.receiver))", problem: problem))
    }

    /// One of the channel header's live words (a ring index, the staging mark); 0 if unreadable.
    private static func word(_ memory: MappedObject, _ path: KeyPath<bus1_channel_header, UInt64>) -> UInt64 {
        memory.word(at: MemoryLayout<bus1_channel_header>.offset(of: path)!) ?? 0
    }

    /// Where the rings lie, if the channel header reads right, agrees with the
    /// coordinator's row and describes rings that fit the memory; otherwise nil,
    /// with a finding that says what is wrong.
    private mutating func ringGeometry(in memory: MappedObject) -> RingGeometry? {
        guard let header = memory.load(bus1_channel_header.self, at: 0) else {
            finding("channel.header", "memory smaller than a channel header"); return nil
        }
        guard header.magic == BUS1_MAGIC_CHANNEL, header.version == BUS1_WIRE_VERSION else {
            finding("channel.header", "bad magic 0x\(String(header.magic, radix: 16)) or version \(header.version)"); return nil
        }
        guard header.channel_id == row.channel_id, header.sender_peer == row.sender, header.receiver_peer == row.receiver,
              header.capacity == row.capacity else {
            finding("channel.header", "header (id \(header.channel_id), \(header.sender_peer) -> \(header.receiver_peer), capacity \(header.capacity)) disagrees with the coordinator")
            return nil
        }
        let cap = capacity
        guard let geometry = RingGeometry(capacity: cap, submissionOffset: header.submission_offset,
                                          completionOffset: header.completion_offset, objectSize: memory.size) else {
            finding("channel.header", "ring geometry (capacity \(cap), submission_offset \(header.submission_offset), completion_offset \(header.completion_offset)) does not fit \(memory.size) bytes")
            return nil
        }
        return geometry
    }

    /// Reads the ring indices and the staging mark, and checks them against each
    /// other, the credit and the clock.
    private mutating func readIndices(_ memory: MappedObject, clock: MappedObject?) {
        let cap = capacity
        // Read order: sub_head, sub_tail, comp_head, comp_tail, sub_head, comp_head.
        let head1 = Self.word(memory, \.sub_head)
        subTail = Self.word(memory, \.sub_tail)
        let compHead1 = Self.word(memory, \.comp_head)
        compTail = Self.word(memory, \.comp_tail)
        subHead = Self.word(memory, \.sub_head)
        compHead = Self.word(memory, \.comp_head)
        staging = Self.word(memory, \.staging)

        // A receiver takes a slot once its ticket is stored, before the sender stores
        // sub_tail (a batch stores it after its last slot): sub_head may honestly run
        // up to a ring ahead.
        if head1 > subTail && head1 - subTail > cap { finding("ring.index", "sub_head \(head1) is more than capacity \(cap) past sub_tail \(subTail)") }
        if subTail > subHead && subTail - subHead > cap { finding("ring.index", "sub_tail \(subTail) is more than capacity \(cap) ahead of sub_head \(subHead)") }
        if compHead1 > compTail { finding("ring.index", "comp_head \(compHead1) is past comp_tail \(compTail)") }
        if compTail > compHead && compTail - compHead > cap { finding("ring.index", "comp_tail \(compTail) is more than capacity \(cap) ahead of comp_head \(compHead)") }
        if subTail > compHead && subTail - compHead > cap { finding("ring.credit", "\(subTail - compHead) slices outstanding, credit is \(cap)") }
        if compTail > subHead { finding("ring.index", "comp_tail \(compTail) is past sub_head \(subHead): completions for messages never taken") }
        let issued = clockTicket(clock)  // read after the staging mark: a mark never exceeds it
        if staging != 0, let issued, staging > issued { finding("ticket.staging", "staging mark \(staging) is ahead of the clock (\(issued))") }
    }

    /// Reads the descriptors still queued and checks each; the valid ones become
    /// ``queued``. A slot is only reused after its index was taken, so only
    /// indices at or past a sub_head read afterwards are trusted.
    private mutating func readQueue(_ memory: MappedObject, geometry: RingGeometry, tables: Tables, senderPool: PeerPool?,
                                    clock: MappedObject?) {
        guard subTail >= subHead, subTail - subHead <= capacity else { return }
        var copies: [(UInt64, bus1_descriptor)] = []
        var index = subHead
        while index < subTail {
            if let d = memory.load(bus1_descriptor.self, at: geometry.descriptorOffset(ofIndex: index)) { copies.append((index, d)) }
            index += 1
        }
        let headAfter = Self.word(memory, \.sub_head)
        let clockAfter = clockTicket(clock)  // every ticket read above was issued before this
        // The newest descriptor still queued; a taken slot's ticket is cleared (0).
        if subTail > 0, let newest = memory.load(bus1_descriptor.self, at: geometry.descriptorOffset(ofIndex: subTail - 1)),
           newest.ticket != 0 {
            lastTicket = newest.ticket
        }
        var previous: UInt64 = 0
        // The slot at sub_head may read ticket 0 honestly: a receiver clears a slot as
        // it takes it, before it stores sub_head. Anywhere else below sub_tail, 0 is a
        // finding (checkDescriptor).
        for (index, d) in copies where index > headAfter || (index == headAfter && d.ticket != 0) {
            if checkDescriptor(d, index: index, after: previous, clock: clockAfter, tables: tables, senderPool: senderPool) {
                queued.append((index, d))
            }
            previous = max(previous, d.ticket)
        }
    }

    /// Checks one queued descriptor: its ticket in order and issued, its flags
    /// known, its slice in the sender's pool, its node the receiver's. Records a
    /// finding for each problem; true if there is none.
    private mutating func checkDescriptor(_ d: bus1_descriptor, index: UInt64, after previous: UInt64, clock clockAfter: UInt64?,
                                          tables: Tables, senderPool: PeerPool?) -> Bool {
        let at = "descriptor \(index) (slot \(index & (capacity - 1)))"
        var ok = true
        if d.ticket == 0 || d.ticket < previous { finding("ticket.order", "\(at): ticket \(d.ticket) after \(previous)"); ok = false }
        if let clockAfter, d.ticket >= clockAfter { finding("ticket.future", "\(at): ticket \(d.ticket) not yet issued (clock \(clockAfter))"); ok = false }
        if d.flags & ~BUS1_DESC_ATTACHMENT != 0 { finding("descriptor.flags", "\(at): unknown flags 0x\(String(d.flags, radix: 16))"); ok = false }
        if let senderPool, !checkSlice(d, at: at, in: senderPool) { ok = false }
        if !tables.owns(row.receiver, node: d.node) && d.node >= tables.peer(row.receiver)?.next_handle ?? 0 {
            // (a node id issued before may name a node destroyed since: its owner drops those)
            finding("descriptor.node", "\(at): node \(d.node) is no node of receiver \(row.receiver)"); ok = false
        }
        return ok
    }

    /// Checks a descriptor's slice in the segment its offset names: inside the
    /// payload area, on a pool unit. A segment the snapshot does not list but the
    /// sender may have opened since is left unchecked (``namesUnlistedSegment``).
    /// Records a finding and returns false on a problem.
    private mutating func checkSlice(_ d: bus1_descriptor, at: String, in senderPool: PeerPool) -> Bool {
        let (index, offset) = splitOffset(d.offset)
        let slice = slicePlace(segment: index, offset: offset)
        if let segment = senderPool.segment(index) {
            if !segment.state.holds(offset: offset, length: UInt64(d.length), poolSize: UInt64(segment.memory.size)) {
                finding("slice.bounds", "\(at): slice [\(slice), +\(d.length)) outside the sender's payload area"); return false
            } else if let layout = segment.state.layout, (offset - layout.data_offset) % UInt64(BUS1_POOL_UNIT) != 0 {
                finding("slice.bounds", "\(at): offset \(slice) not on a \(BUS1_POOL_UNIT)-byte unit"); return false
            }
        } else if index >= UInt64(BUS1_SEGMENTS_MAX) || index < UInt64(senderPool.listed) {
            // (segments are never closed: one listed but not mapped has a missing object, reported on its own)
            finding("slice.bounds", "\(at): slice [\(slice), +\(d.length)) names segment \(index), which the sender does not have"); return false
        } else {
            namesUnlistedSegment = true
        }
        return true
    }
}

/// A peer's wake page: whether it is parked.
func waitState(_ wake: MappedObject?, peer: UInt64) -> String {
    guard let wake, let page = wake.load(bus1_wake_page.self, at: 0), page.magic == BUS1_MAGIC_WAKE, page.peer_id == peer else {
        return "unknown"
    }
    return page.sleeping != 0 ? "parked" : "running"
}

/// The bus clock's next ticket, if the clock page reads right.
func clockTicket(_ clock: MappedObject?) -> UInt64? {
    guard let clock, let page = clock.load(bus1_clock_page.self, at: 0), page.magic == BUS1_MAGIC_CLOCK else { return nil }
    return clock.word(at: MemoryLayout<bus1_clock_page>.offset(of: \.ticket)!)
}

/// A process's command line from `/proc/<pid>/cmdline` (NULs as spaces).
func commandLine(of pid: Int32) -> String {
    let fd = open("/proc/\(pid)/cmdline", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0 else { return "" }
    var bytes = Array(buffer[..<n])
    while bytes.last == 0 { bytes.removeLast() }
    return String(decoding: bytes.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
}
