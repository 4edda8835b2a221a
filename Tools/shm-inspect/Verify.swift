import Bus1Linux
import CBus1Wire
import Glibc

extension BusView {
    /// Every invariant the tool can check from outside, on memory read now.
    ///
    /// Rings and ledgers move while they are read. Each ring check is sound on its
    /// own (see ``ChannelState``). A ledger's reference counts are compared with its
    /// channels' rings only for a sender that did not move while both were read
    /// (``quiescentSenders``), and even then it may sit between its two stores, so
    /// ``stableFindings(rounds:)`` keeps only what every round reports.
    func findings() -> [Finding] {
        let live = Set(tables.peers.map(\.peer_id))
        var found = clockFindings()
        for peer in tables.peers {
            found += peerObjectFindings(peer)
            if let pool = pools[peer.peer_id] { found += poolFindings(peer: peer, pool: pool, live: live) }
        }
        found += segmentTableFindings()
        for channel in channels {
            let place = "channel \(channel.row.channel_id)"
            for end in [channel.row.sender, channel.row.receiver] where !live.contains(end) {
                found.append(Finding(check: "peer.dead", place: place, problem: "peer \(end) is not connected"))
            }
            found += channel.findings
        }
        return found
    }

    /// The clock page: present, the right magic and version, a next ticket of at least 1.
    private func clockFindings() -> [Finding] {
        func finding(_ check: String, _ problem: String) -> [Finding] { [Finding(check: check, place: "clock page", problem: problem)] }
        guard let clock = attachment.object(0), let page = clock.load(bus1_clock_page.self, at: 0) else {
            return finding("object.missing", "missing or too small")
        }
        if page.magic != BUS1_MAGIC_CLOCK || page.version != BUS1_WIRE_VERSION {
            return finding("clock.header", "bad magic 0x\(String(page.magic, radix: 16)) or version \(page.version)")
        }
        if let ticket = clockTicket(clock), ticket == 0 { return finding("clock.header", "next ticket is 0 (tickets start at 1)") }
        return []
    }

    /// A peer's own objects: a ready peer has a pool and a wake page, and its wake
    /// page's header names it.
    private func peerObjectFindings(_ peer: bus1_snapshot_peer) -> [Finding] {
        var found: [Finding] = []
        let place = "peer \(peer.peer_id)"
        if peer.state == BUS1_PEER_READY.rawValue && (attachment.object(peer.pool_object) == nil || attachment.object(peer.wake_object) == nil) {
            found.append(Finding(check: "object.missing", place: place, problem: "ready without a pool or wake page"))
        }
        guard let wake = attachment.object(peer.wake_object) else { return found }
        if let page = wake.load(bus1_wake_page.self, at: 0) {
            if page.magic != BUS1_MAGIC_WAKE || page.version != BUS1_WIRE_VERSION || page.peer_id != peer.peer_id {
                found.append(Finding(check: "wake.header", place: "\(place) wake page",
                                     problem: "magic 0x\(String(page.magic, radix: 16)), version \(page.version), peer \(page.peer_id)"))
            }
        } else {
            found.append(Finding(check: "wake.header", place: "\(place) wake page", problem: "smaller than a wake page"))
        }
        return found
    }

    /// A peer's pool, segment by segment (size, header, ledger), then the reference
    /// counts of all its ledgers against its channels, if every ledger was read.
    private func poolFindings(peer: bus1_snapshot_peer, pool: PeerPool, live: Set<UInt64>) -> [Finding] {
        var found: [Finding] = []
        var pending: UInt64 = 0
        var everyLedgerRead = pool.segments.count >= pool.listed  // a listed segment not mapped: its ledger is unread
        for segment in pool.segments {
            found += segmentHeaderFindings(peer: peer, segment: segment)
            guard let layout = segment.state.layout else { everyLedgerRead = false; continue }
            let (ledger, segmentPending) = ledgerFindings(peer: peer, segment: segment, layout: layout, live: live)
            found += ledger
            pending = pending.addingSaturated(segmentPending)
        }
        // (a ledger that could not be read counts nothing: no total to compare)
        if everyLedgerRead { found += refcountFindings(peer: peer, pending: pending) }
        return found
    }

    /// One segment's memfd against the coordinator's record of its size, and its
    /// header against the layout that size gives (none: its ledger is unread).
    private func segmentHeaderFindings(peer: bus1_snapshot_peer, segment: SegmentState) -> [Finding] {
        var found: [Finding] = []
        // Segment 0 keeps the places it had before segments: "peer N pool", "peer N ledger".
        let place = segment.index == 0 ? "peer \(peer.peer_id) pool" : "peer \(peer.peer_id) segment \(segment.index)"
        func finding(_ problem: String) { found.append(Finding(check: "pool.header", place: place, problem: problem)) }
        let memory = segment.memory
        if UInt64(memory.size) != segment.recordedSize {
            finding("memfd has \(memory.size) bytes, coordinator says \(segment.recordedSize)")
        }
        guard let layout = segment.state.layout else {
            finding("\(memory.size) bytes is no valid pool layout")
            return found
        }
        if let h = segment.state.header, h.magic != BUS1_MAGIC_POOL || h.version != BUS1_WIRE_VERSION || h.peer_id != peer.peer_id
            || h.size != UInt64(memory.size) || h.data_offset != layout.data_offset {
            finding("header (magic 0x\(String(h.magic, radix: 16)), peer \(h.peer_id), size \(h.size), data at \(h.data_offset)) disagrees")
        }
        return found
    }

    /// The ledger of one segment: records well-formed, inside the payload area,
    /// not overlapping, held by live peers. Returns its findings and the receivers
    /// its sent slices still count as pending (``refcountFindings(peer:pending:)``
    /// compares the total over every segment with the peer's rings).
    private func ledgerFindings(peer: bus1_snapshot_peer, segment: SegmentState, layout: bus1_pool_layout,
                                live: Set<UInt64>) -> (findings: [Finding], pending: UInt64) {
        var found: [Finding] = []
        let place = segment.index == 0 ? "peer \(peer.peer_id) ledger" : "peer \(peer.peer_id) segment \(segment.index) ledger"
        func finding(_ check: String, _ problem: String) { found.append(Finding(check: check, place: place, problem: problem)) }
        var end: UInt64 = 0
        var pending: UInt64 = 0
        let issued = globalOrder ? clockTicket(attachment.object(0)) : nil
        for entry in segment.state.entries {
            let r = entry.record, at = "slice \(slicePlace(segment: UInt64(segment.index), offset: entry.offset))"
            let block = UInt64(r.block_bytes)
            guard block >= UInt64(BUS1_POOL_UNIT), block & (block - 1) == 0, block <= layout.data_size,
                  (entry.offset - layout.data_offset) % block == 0, entry.offset + block <= layout.data_offset + layout.data_size
            else { finding("slice.bounds", "\(at): block of \(block) bytes is not a buddy block of the payload area"); continue }
            if entry.offset < end { finding("slice.overlap", "\(at) overlaps the slice before it (which ends at \(end))") }
            end = max(end, entry.offset + block)
            if UInt64(r.length) > block { finding("slice.bounds", "\(at): length \(r.length) exceeds its block of \(block)") }
            switch UInt32(r.state) {
            case BUS1_SLICE_LOANED.rawValue:
                if r.pending != 0 { finding("slice.state", "\(at): loaned with \(r.pending) receivers") }
            case BUS1_SLICE_SENT.rawValue:
                pending = pending.addingSaturated(UInt64(r.pending))
                if r.pending == 0 { finding("slice.state", "\(at): sent with no receiver pending") }
                if r.ticket == 0 { finding("ticket.future", "\(at): sent with ticket 0") }
                if let issued, r.ticket >= issued { finding("ticket.future", "\(at): ticket \(r.ticket) not yet issued (clock \(issued))") }
                if r.receiver != BUS1_INVALID_ID && !live.contains(r.receiver) {
                    finding("slice.dead-receiver", "\(at): held by peer \(r.receiver), which is gone (the sender reclaims it at its next call)")
                }
            default:
                finding("slice.state", "\(at): state \(r.state)")
            }
        }
        return (found, pending)
    }

    /// The reference counts of all of a peer's ledgers (`pending`, summed over its
    /// segments: a channel's rings carry slices of every segment, so only totals
    /// compare) against the slices outstanding on its channels.
    private func refcountFindings(peer: bus1_snapshot_peer, pending: UInt64) -> [Finding] {
        // A channel with more outstanding than its credit already has a ring.credit
        // finding and its count means nothing: summing such counts once overflowed
        // (two channels at sub_tail = 2^63). Only credit-sized counts are added.
        // A sender with a descriptor in a segment the snapshot does not list has
        // ledgers this view cannot see: nothing to compare.
        let outbound = channels.filter { $0.row.sender == peer.peer_id }
        let countable = outbound.allSatisfy { $0.outstanding <= $0.capacity && !$0.namesUnlistedSegment }
        let outstanding = outbound.reduce(UInt64(0)) { $0.addingSaturated(min($1.outstanding, $1.capacity)) }
        guard countable && quiescentSenders.contains(peer.peer_id) && pending != outstanding else { return [] }
        return [Finding(check: "slice.refcount", place: "peer \(peer.peer_id) ledger",
                        problem: "ledgers count \(pending) descriptors pending, its channels have \(outstanding) slices outstanding (a sender that has not yet seen a channel close still counts its slices)")]
    }

    /// The snapshot's segment rows: each names a peer of the snapshot, an index
    /// below `BUS1_SEGMENTS_MAX`, once per peer, with no index skipped (segments
    /// are opened in order and never closed), an object that could be mapped,
    /// and segment 0 is the peer's pool object.
    private func segmentTableFindings() -> [Finding] {
        var found: [Finding] = []
        var indices: [UInt64: Set<UInt32>] = [:]
        for row in tables.segments {
            let place = "peer \(row.owner) segment \(row.index)"
            func finding(_ check: String, _ problem: String) { found.append(Finding(check: check, place: place, problem: problem)) }
            guard let peer = tables.peer(row.owner) else { finding("segment.table", "no such peer in the snapshot"); continue }
            guard row.index < BUS1_SEGMENTS_MAX else { finding("segment.table", "index \(row.index) is not below \(BUS1_SEGMENTS_MAX)"); continue }
            guard indices[row.owner, default: []].insert(row.index).inserted else { finding("segment.table", "listed twice"); continue }
            if row.uid_count == 0 || row.uid_count > BUS1_SEGMENT_AUDIENCE_MAX { finding("segment.table", "\(row.uid_count) uids in its audience") }
            if row.index == 0 {
                if row.object != peer.pool_object { finding("segment.table", "object \(row.object) is not the pool object \(peer.pool_object)") }
            } else if attachment.object(row.object) == nil {
                finding("object.missing", "no segment memory (object \(row.object))")
            }
        }
        for (owner, listed) in indices.sorted(by: { $0.key < $1.key }) where listed.count != Int(listed.max()!) + 1 {
            found.append(Finding(check: "segment.table", place: "peer \(owner)",
                                 problem: "segments \(listed.sorted().map(String.init).joined(separator: ",")) skip an index"))
        }
        return found
    }

    /// Findings that every one of `rounds` fresh reads (2 ms apart) reports, by
    /// check and place: a sender caught between two stores shows up once, a
    /// broken segment every time.
    func stableFindings(rounds: Int = 3) throws(InspectError) -> [Finding] {
        var view = self
        var latest = view.findings()
        for _ in 1..<max(1, rounds) where !latest.isEmpty {
            usleep(2000)
            view = try view.reread()
            let before = Set(latest.map { "\($0.check)|\($0.place)" })
            latest = view.findings().filter { before.contains("\($0.check)|\($0.place)") }
        }
        return latest
    }
}
