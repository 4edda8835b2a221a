import Bus1Core
import CBus1Wire
import Synchronization

/// Notifications on the peers' coordinator rings: the coordinator publishes them
/// as a sender publishes a multicast, so they are ordered with data by ticket.
extension Coordinator {
    /// Publishes `batch` to the targets' coordinator rings under one ticket, by
    /// the send protocol every sender uses (`Publisher`, announcing each publish
    /// in the target's `control_seq`: a receiver skips its ring while nothing was
    /// announced since it found it idle). A target whose ring has no room (it
    /// does not consume its notifications) is disconnected instead. Returns the ticket.
    @discardableResult
    func publish(_ batch: [Notification]) -> UInt64 {
        var rings: [(ring: NotificationRing, wake: WakePage, notes: [Notification])] = []
        var overflowing: [UInt64] = []
        for note in batch {
            if let i = rings.firstIndex(where: { $0.ring === note.target.notifications }) {
                rings[i].notes.append(note)
            } else if !overflowing.contains(note.target.id), peers[note.target.id] != nil,
                      let ring = note.target.notifications, let wake = note.target.wakePage {
                do { try ring.producer.reclaimConsumed() } catch {
                    overflowing.append(note.target.id)  // sub_head moved backwards or past the tail
                    continue
                }
                rings.append((ring, wake, [note]))
            }
        }
        rings.removeAll { entry in
            guard entry.ring.producer.hasCredit(entry.notes.count) else { overflowing.append(entry.notes[0].target.id); return true }
            return false
        }
        let sent = publisher.send(on: rings.map { $0.ring.producer.lane(waking: $0.wake) }, announcing: true) { ticket in
            for entry in rings {
                for note in entry.notes {
                    entry.ring.producer.write(bus1_descriptor(ticket: ticket, node: note.id, offset: note.cause, length: 0, flags: note.kind.rawValue))
                }
                entry.ring.producer.publish()
            }
        }
        if let anomaly = sent.anomaly {
            // Any peer maps the clock writable: who rewound or jumped it cannot be told.
            counters.clockAnomalies.wrappingAdd(1, ordering: .relaxed)
            throttledLog.log(.warning, "the bus clock was rewound or jumped; order degrades, delivery does not", key: "clock",
                             metadata: ["clock": "\(anomaly.taken)", "issued": "\(anomaly.issued)"])
        }
        for id in overflowing {
            logger.warning("peer does not consume its notifications; disconnecting it", metadata: ["peer": "\(id)"])
            removePeer(id, reason: "coordinator ring overflow")
        }
        return sent.first
    }
}
