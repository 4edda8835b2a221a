import Bus1Core
import CBus1Wire

/// A slice of this peer's pool that it keeps after sending, to send again,
/// zero-copy, later (a topic's history for late subscribers). The pool frees it
/// only once the peer lets go (``Peer/letGo(_:)``) and every receiver released it.
struct KeptSlice {
    let offset: UInt64
    /// Bytes sent (frame header included).
    let count: Int
}

extension Peer {
    /// Takes a filled loan to keep: in the pool it is `sent` with only the owner's
    /// reference (``PoolAllocator/keptTag``), so no receiver's completion frees it.
    func keep(_ loan: consuming Loan) -> KeptSlice {
        let (offset, count) = loan.detach()
        pool.markSent(offset, channelTags: [PoolAllocator.keptTag], ticket: 0, length: count)
        return KeptSlice(offset: offset, count: count)
    }

    /// Drops the owner's reference to a kept slice: it is free once its receivers
    /// released it too.
    func letGo(_ slice: KeptSlice) {
        let dropped = pool.reclaim(slice.offset, channelTag: PoolAllocator.keptTag)
        assert(dropped, "letting go of a slice this peer does not keep")
    }

    /// Sends a kept slice to every target of `plan` (each with credit, checked by
    /// the caller) under one ticket, as a multicast does (`Publisher`).
    func send(_ slice: KeptSlice, as plan: MulticastPlan) {
        lanes.removeAll(keepingCapacity: true)
        defer { lanes.removeAll(keepingCapacity: true) }  // no pointers into rings kept past the send
        for channel in plan.channels { lanes.append(channel.lane) }
        let sent = publisher.send(on: lanes) { ticket in
            pool.addSent(slice.offset, channelTags: plan.targets.map { $0.channel.tag }, ticket: ticket)
            for target in plan.targets {
                target.channel.producer.submit(bus1_descriptor(ticket: ticket, node: target.node, offset: slice.offset,
                                                               length: UInt32(slice.count), flags: 0))
            }
        }
        if let anomaly = sent.anomaly { noteClockAnomaly(anomaly) }
        statistics.messagesSent += 1
    }
}
