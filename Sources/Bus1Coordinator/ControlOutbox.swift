import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc
import Logging

/// Sending to peers without ever blocking the loop: the per-peer outbox
/// (``PeerRecord/outbox``), the `control_seq` announcement, replies held until
/// another peer has what they depend on (ControlOutbox+HeldReplies.swift), and
/// the uids' fair share of each receiver's queue (ControlOutbox+FairShare.swift).
/// A peer whose socket fails or overflows is removed through ``removePeer``.
final class ControlOutbox {
    let tables: BusTables
    let readiness: any ReadinessSource
    let configuration: CoordinatorConfiguration
    let logger: Logger
    let counters: CoordinatorCounters
    let timers: LoopTimers
    /// Removes a peer whose socket failed or overflowed: the coordinator's
    /// ``Coordinator/removePeer(_:reason:)``, wired by the coordinator that owns
    /// this outbox (it may send to others, and so come back here).
    var removePeer: (_ id: UInt64, _ reason: String) -> Void = { _, _ in }
    /// Fds in attachments waiting in outboxes, by the uid that attached them.
    var queuedDescriptorsByUID: [UInt32: Int] = [:]
    /// Fds in attachments their receivers have not taken yet, by attaching uid.
    var attachmentsInFlight = AttachmentsInFlight()

    init(tables: BusTables, readiness: any ReadinessSource, configuration: CoordinatorConfiguration, logger: Logger,
         counters: CoordinatorCounters, timers: LoopTimers) {
        self.tables = tables
        self.readiness = readiness
        self.configuration = configuration
        self.logger = logger
        self.counters = counters
        self.timers = timers
    }

    /// Sends without blocking. A socket that is full (the kernel holds only what
    /// fits the coordinator's send buffer: a few hundred small datagrams) parks the
    /// message, and every later one, in the peer's outbox until it has room, so a
    /// peer busy for a moment misses nothing (a burst of grants or channel
    /// closes when many peers come and go overflowed it before); only a peer that lets
    /// more than ``CoordinatorConfiguration/maximumQueuedControlMessages`` pile up
    /// is not reading its socket, and is disconnected rather than allowed to grow
    /// the coordinator without bound.
    /// `chargedTo`: the uid whose request caused the message, when it is not the
    /// peer's own; what waits in the outbox counts against that uid's fair share.
    @discardableResult
    func send(_ peer: PeerRecord, _ message: ControlMessage, requestID: UInt32, fds: [Int32] = [], chargedTo: UInt32? = nil) -> Bool {
        let bytes = message.encode(requestID: requestID)
        if peer.outbox.isEmpty {
            do {
                try SeqPacket.send(peer.socket.rawValue, bytes, fds: fds, dontWait: true)
                peer.messagesAccepted += 1
                peer.messagesDelivered += 1
                return true
            } catch where error.code == EAGAIN {
                // queue below
            } catch {
                if error.code != EPIPE && error.code != ECONNRESET {
                    logger.warning("cannot send to peer; disconnecting it", metadata: ["peer": "\(peer.id)", "error": "\(error)"])
                }
                removePeer(peer.id, "send failed: \(error)")
                return false
            }
        }
        return enqueue(bytes, fds: fds, for: peer, chargedTo: chargedTo)
    }

    /// Parks a message behind the others in `peer`'s outbox (its fds duplicated)
    /// and watches for room; false when the peer was removed instead.
    private func enqueue(_ bytes: [UInt8], fds: [Int32], for peer: PeerRecord, chargedTo: UInt32?) -> Bool {
        guard peer.outbox.count < configuration.maximumQueuedControlMessages else {
            logger.warning("peer does not read its control socket; disconnecting it",
                           metadata: ["peer": "\(peer.id)", "queued": "\(peer.outbox.count)"])
            removePeer(peer.id, "control queue overflow")
            return false
        }
        do {
            var owned: [OwnedDescriptor] = []
            for fd in fds { owned.append(OwnedDescriptor(try FileDescriptor.duplicating(fd))) }
            peer.outbox.append(QueuedMessage(bytes: bytes, fds: owned, chargedTo: chargedTo))
            if let uid = chargedTo {
                peer.queuedByUID[uid, default: 0] += 1
                queuedDescriptorsByUID[uid, default: 0] += fds.count
            }
            peer.messagesAccepted += 1
            if peer.outbox.count == 1 { try readiness.watch(peer.socket.rawValue, token: peer.writableToken, writable: true) }
            return true
        } catch {
            removePeer(peer.id, "cannot queue a control message: \(error)")
            return false
        }
    }

    /// Sends what the outbox holds until the socket is full again, tells the peer
    /// to look (it reads its socket only when `control_seq` moves), and then lets
    /// out the replies to others that waited for what was just delivered.
    func flush(_ peer: PeerRecord) {
        while let next = peer.outbox.first {
            do {
                try SeqPacket.send(peer.socket.rawValue, next.bytes, fds: next.fds.map(\.rawValue), dontWait: true)
                uncharge(peer.outbox.removeFirst(), at: peer)
                peer.messagesDelivered += 1
            } catch where error.code == EAGAIN {
                do { try readiness.watch(peer.socket.rawValue, token: peer.writableToken, writable: true) } catch {
                    removePeer(peer.id, "cannot watch: \(error)")
                    return
                }
                break
            } catch {
                removePeer(peer.id, "send failed: \(error)")
                return
            }
        }
        announceControl(to: peer)
        releaseHeldReplies(deliveredBy: peer)
    }

    /// Drops what waits in a leaving peer's outbox, giving back its charges.
    func discard(outboxOf peer: PeerRecord) {
        for message in peer.outbox { uncharge(message, at: peer) }
        peer.outbox.removeAll()
    }

    /// A queued message left the outbox (sent, or dropped with its peer).
    private func uncharge(_ message: QueuedMessage, at peer: PeerRecord) {
        guard let uid = message.chargedTo else { return }
        peer.queuedByUID[uid, default: 1] -= 1
        if peer.queuedByUID[uid] == 0 { peer.queuedByUID[uid] = nil }
        queuedDescriptorsByUID[uid, default: message.fds.count] -= message.fds.count
        if queuedDescriptorsByUID[uid] == 0 { queuedDescriptorsByUID[uid] = nil }
    }

    func reply(_ peer: PeerRecord, _ response: Response, requestID: UInt32) {
        _ = withExtendedLifetime(response.owners) {
            send(peer, response.message, requestID: requestID, fds: response.fds)
        }
    }

    func reply(_ peer: PeerRecord, _ message: ControlMessage, requestID: UInt32) {
        send(peer, message, requestID: requestID)
    }

    /// Queues an event and makes sure the peer looks: bump `control_seq`, ring.
    func notify(_ peer: PeerRecord, _ message: ControlMessage, fds: [Int32] = [], chargedTo: UInt32? = nil) {
        guard send(peer, message, requestID: 0, fds: fds, chargedTo: chargedTo) else { return }
        if peer.outbox.isEmpty { announceControl(to: peer) }  // else the flush announces it
    }

    /// Bumps `control_seq` and rings: the peer reads its socket when it sees the bump.
    private func announceControl(to peer: PeerRecord) {
        guard let page = peer.wakePage else { return }
        _ = page.controlSequence.fetchAddReleasing(1)  // the events are in the socket before the peer can see the bump
        page.ring()
    }
}
