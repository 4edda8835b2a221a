import Bus1Core
import CBus1Wire
import Synchronization

/// Notifications on the peers' coordinator rings: the coordinator publishes them
/// as a sender publishes a multicast, so they are ordered with data by ticket.
extension Coordinator {
    /// Publishes `batch` to the targets' coordinator rings under one ticket, as a
    /// sender publishes a multicast: stage every ring, fence, take the ticket,
    /// write, publish, unstage, ring. A target whose ring has no room (it does not
    /// consume its notifications) is disconnected instead. Returns the ticket.
    @discardableResult
    func publish(_ batch: [Notification]) -> UInt64 {
        var rings: [(peer: PeerRecord, notes: [Notification])] = []
        var overflowing: [UInt64] = []
        for note in batch {
            if let i = rings.firstIndex(where: { $0.peer === note.target }) { rings[i].notes.append(note) } else { rings.append((note.target, [note])) }
        }
        rings.removeAll { entry in
            guard peers[entry.peer.id] != nil, let ring = entry.peer.notifications else { return true }
            do { try ring.producer.reclaimConsumed() } catch {
                overflowing.append(entry.peer.id)  // sub_head moved backwards or past the tail
                return true
            }
            guard ring.producer.hasCredit(entry.notes.count) else { overflowing.append(entry.peer.id); return true }
            return false
        }
        let mark = tickets.mark(clock: clock.current())
        for entry in rings {
            entry.peer.notifications!.producer.stage(mark)
            // After the mark, before the ticket: a receiver that sees a ticket above
            // ours sees this bump, and then the mark, so it looks at its ring (it
            // skips the ring while nothing was announced since it found it idle).
            _ = entry.peer.wakePage?.controlSequence.fetchAddReleasing(1)
        }
        atomicMemoryFence(ordering: .sequentiallyConsistent)  // every mark and bump is visible before the ticket exists
        let issued = tickets.issue(taken: clock.next(), mark: mark)
        let ticket = issued.first
        if issued.anomaly {
            // Any peer maps the clock writable: who rewound or jumped it cannot be told.
            counters.clockAnomalies.wrappingAdd(1, ordering: .relaxed)
            throttledLog.log(.warning, "the bus clock was rewound or jumped; order degrades, delivery does not", key: "clock",
                             metadata: ["clock": "\(clock.current())", "issued": "\(ticket)"])
        }
        for entry in rings {
            let ring = entry.peer.notifications!
            for note in entry.notes {
                var descriptor = bus1_descriptor()
                descriptor.ticket = ticket
                descriptor.node = note.id
                descriptor.offset = note.cause
                descriptor.flags = note.kind.rawValue
                ring.producer.write(descriptor)
            }
            ring.producer.publish()
        }
        for entry in rings {
            entry.peer.notifications!.producer.unstage()
            entry.peer.wakePage?.ring()
        }
        for id in overflowing {
            logger.warning("peer does not consume its notifications; disconnecting it", metadata: ["peer": "\(id)"])
            removePeer(id, reason: "coordinator ring overflow")
        }
        return ticket
    }
}
