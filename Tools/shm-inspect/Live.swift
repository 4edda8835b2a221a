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
        let place = "channel \(row.channel_id) (\(row.sender) -> \(row.receiver))"
        func finding(_ check: String, _ problem: String) { findings.append(Finding(check: check, place: place, problem: problem)) }
        guard let memory else { finding("object.missing", "no channel memory"); return }
        guard let header = memory.load(bus1_channel_header.self, at: 0) else { finding("channel.header", "memory smaller than a channel header"); return }
        guard header.magic == BUS1_MAGIC_CHANNEL, header.version == BUS1_WIRE_VERSION else {
            finding("channel.header", "bad magic 0x\(String(header.magic, radix: 16)) or version \(header.version)"); return
        }
        guard header.channel_id == row.channel_id, header.sender_peer == row.sender, header.receiver_peer == row.receiver,
              header.capacity == row.capacity else {
            finding("channel.header", "header (id \(header.channel_id), \(header.sender_peer) -> \(header.receiver_peer), capacity \(header.capacity)) disagrees with the coordinator")
            return
        }
        let cap = UInt64(row.capacity)
        guard let geometry = RingGeometry(capacity: cap, submissionOffset: header.submission_offset,
                                          completionOffset: header.completion_offset, objectSize: memory.size) else {
            finding("channel.header", "ring geometry (capacity \(cap), submission_offset \(header.submission_offset), completion_offset \(header.completion_offset)) does not fit \(memory.size) bytes")
            return
        }
        func word(_ path: KeyPath<bus1_channel_header, UInt64>) -> UInt64 {
            memory.word(at: MemoryLayout<bus1_channel_header>.offset(of: path)!) ?? 0
        }
        // Read order: sub_head, sub_tail, comp_head, comp_tail, sub_head, comp_head.
        let head1 = word(\.sub_head)
        subTail = word(\.sub_tail)
        let compHead1 = word(\.comp_head)
        compTail = word(\.comp_tail)
        subHead = word(\.sub_head)
        compHead = word(\.comp_head)
        staging = word(\.staging)

        if head1 > subTail { finding("ring.index", "sub_head \(head1) is past sub_tail \(subTail)") }
        if subTail > subHead && subTail - subHead > cap { finding("ring.index", "sub_tail \(subTail) is more than capacity \(cap) ahead of sub_head \(subHead)") }
        if compHead1 > compTail { finding("ring.index", "comp_head \(compHead1) is past comp_tail \(compTail)") }
        if compTail > compHead && compTail - compHead > cap { finding("ring.index", "comp_tail \(compTail) is more than capacity \(cap) ahead of comp_head \(compHead)") }
        if subTail > compHead && subTail - compHead > cap { finding("ring.credit", "\(subTail - compHead) slices outstanding, credit is \(cap)") }
        if compTail > subHead { finding("ring.index", "comp_tail \(compTail) is past sub_head \(subHead): completions for messages never taken") }
        let issued = clockTicket(clock)  // read after the staging mark: a mark never exceeds it
        if staging != 0, let issued, staging > issued { finding("ticket.staging", "staging mark \(staging) is ahead of the clock (\(issued))") }

        // Descriptors still queued; a slot is only reused after its index was taken,
        // so only indices at or past a sub_head read afterwards are trusted.
        guard subTail >= subHead, subTail - subHead <= cap else { return }
        var copies: [(UInt64, bus1_descriptor)] = []
        var index = subHead
        while index < subTail {
            if let d = memory.load(bus1_descriptor.self, at: geometry.descriptorOffset(ofIndex: index)) { copies.append((index, d)) }
            index += 1
        }
        let headAfter = word(\.sub_head)
        let clockAfter = clockTicket(clock)  // every ticket read above was issued before this
        if subTail > 0, let newest = memory.load(bus1_descriptor.self, at: geometry.descriptorOffset(ofIndex: subTail - 1)) {
            lastTicket = newest.ticket
        }
        let senderPool = pools[row.sender]
        var previous: UInt64 = 0
        for (index, d) in copies where index >= headAfter {
            let at = "descriptor \(index) (slot \(index & (cap - 1)))"
            var ok = true
            if d.ticket == 0 || d.ticket < previous { finding("ticket.order", "\(at): ticket \(d.ticket) after \(previous)"); ok = false }
            if let clockAfter, d.ticket >= clockAfter { finding("ticket.future", "\(at): ticket \(d.ticket) not yet issued (clock \(clockAfter))"); ok = false }
            if d.flags & ~BUS1_DESC_ATTACHMENT != 0 { finding("descriptor.flags", "\(at): unknown flags 0x\(String(d.flags, radix: 16))"); ok = false }
            if let senderPool {
                // The slice is checked in the segment its offset names.
                let (index, offset) = splitOffset(d.offset)
                let slice = slicePlace(segment: index, offset: offset)
                if let segment = senderPool.segment(index) {
                    if !segment.state.holds(offset: offset, length: UInt64(d.length), poolSize: UInt64(segment.memory.size)) {
                        finding("slice.bounds", "\(at): slice [\(slice), +\(d.length)) outside the sender's payload area"); ok = false
                    } else if let layout = segment.state.layout, (offset - layout.data_offset) % UInt64(BUS1_POOL_UNIT) != 0 {
                        finding("slice.bounds", "\(at): offset \(slice) not on a \(BUS1_POOL_UNIT)-byte unit"); ok = false
                    }
                } else if index >= UInt64(BUS1_SEGMENTS_MAX) || index < UInt64(senderPool.listed) {
                    // (segments are never closed: one listed but not mapped has a missing object, reported on its own)
                    finding("slice.bounds", "\(at): slice [\(slice), +\(d.length)) names segment \(index), which the sender does not have"); ok = false
                } else {
                    namesUnlistedSegment = true
                }
            }
            if !tables.owns(row.receiver, node: d.node) && d.node >= tables.peer(row.receiver)?.next_handle ?? 0 {
                // (a node id issued before may name a node destroyed since: its owner drops those)
                finding("descriptor.node", "\(at): node \(d.node) is no node of receiver \(row.receiver)"); ok = false
            }
            previous = max(previous, d.ticket)
            if ok { queued.append((index, d)) }
        }
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
