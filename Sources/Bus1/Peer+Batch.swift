import Bus1Core
import CBus1Wire

extension Peer {
    /// Sends `count` messages to `handle` as one batch: each slice (of
    /// `sliceSize` bytes) is filled in place by `fill(index, slice)`, which returns
    /// the bytes to send. The batch takes one staging mark, `count` consecutive
    /// tickets with one `fetch_add`, one unstage and one wake check (each slot
    /// publishes itself as it is written: the receiver may start early). It needs
    /// credit and pool space for all of them: without `wait` a shortage is
    /// ``Bus1Error/wouldBlock(_:)`` and nothing is sent. `fill` runs in the middle
    /// of the send (the channel is staged): it must not call this peer.
    public func sendBatch(
        to handle: Handle, count: Int, sliceSize: Int, wait: WaitMode? = nil,
        fill: (_ index: Int, _ slice: UnsafeMutableRawBufferPointer) -> Int
    ) throws(Bus1Error) {
        guard count > 0 else { return }
        try serviceControl()
        let route = try sendTarget(handle), channel = route.channel
        let segment = try self.segment(readableBy: handle)
        guard count <= channel.producer.capacity else { throw .batchTooLarge(count, maximum: channel.producer.capacity) }
        guard sliceSize >= 0, sliceSize <= maximumPayload else { throw .payloadTooLarge(requested: sliceSize, maximum: maximumPayload) }

        try acquireBatch(count, of: sliceSize, in: segment, on: channel, for: handle, wait: wait)
        let capacity = PoolAllocator.blockBytes(for: sliceSize)
        let sent = publisher.send(UInt64(count), on: CollectionOfOne(channel.lane)) { first in
            var ticket = first
            for (index, offset) in batchOffsets.enumerated() {
                let used = fill(index, UnsafeMutableRawBufferPointer(start: pool.pointer(at: offset), count: capacity))
                precondition(used >= 0 && used <= capacity, "fill returned more bytes than the slice holds")
                pool.markSent(offset, channelTag: channel.tag, ticket: ticket, receiver: channel.receiver, length: used)
                channel.producer.write(bus1_descriptor(ticket: ticket, node: route.node, offset: offset, length: UInt32(used), flags: 0))
                ticket = MonotonicTickets.ticket(after: ticket)  // saturates: a jumped clock wraps nothing
            }
            channel.producer.publish()
        }
        if let anomaly = sent.anomaly { noteClockAnomaly(anomaly) }
        statistics.messagesSent += count
    }

    /// Takes credit on `channel` and `count` slices of `sliceSize` bytes of
    /// `segment` into ``batchOffsets``, all of them or none: waiting in `wait`
    /// mode if given. Whatever stops it (a shortage without `wait`, a failed wait,
    /// a closed channel), the slices taken so far go back first.
    private func acquireBatch(_ count: Int, of sliceSize: Int, in segment: Int, on channel: OutboundChannel,
                              for handle: Handle, wait: WaitMode?) throws(Bus1Error) {
        batchOffsets.removeAll(keepingCapacity: true)
        var shortOf = Bus1Error.WouldBlock.ringFull(handle)
        func acquire() throws(Bus1Error) -> Bool {
            if channel.closedReason != nil { return true }
            if !channel.producer.hasCredit(count) {
                try drain(channel)
                if !channel.producer.hasCredit(count) { shortOf = .ringFull(handle); return false }
            }
            while batchOffsets.count < count {
                guard let offset = pool.allocate(sliceSize, in: segment) else {
                    try reclaimCompleted()
                    guard let offset = pool.allocate(sliceSize, in: segment) else { shortOf = .poolExhausted(requested: sliceSize); return false }
                    batchOffsets.append(offset)
                    continue
                }
                batchOffsets.append(offset)
            }
            return true
        }
        do throws(Bus1Error) {
            if try !acquire() {
                guard let mode = wait else { throw .wouldBlock(shortOf) }
                if shortOf == .ringFull(handle) { statistics.creditWaits += 1 } else { statistics.loanWaits += 1 }
                try waitUntil(mode: mode, deadline: .never) { () throws(Bus1Error) -> Bool in
                    try self.serviceControl()
                    return try acquire()
                }
            }
            if let reason = channel.closedReason { throw .channelClosed(peer: channel.receiver, reason: reason) }
        } catch {
            for offset in batchOffsets { pool.freeLoan(offset) }
            batchOffsets.removeAll(keepingCapacity: true)
            throw error
        }
    }
}
