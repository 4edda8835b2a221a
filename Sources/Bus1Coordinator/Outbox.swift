import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// Sending to peers without ever blocking the loop: the per-peer outbox, replies
/// held until another peer has what they depend on (with their deadline), and
/// the `control_seq` announcement.
extension Coordinator {
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
                removePeer(peer.id, reason: "send failed: \(error)")
                return false
            }
        }
        guard peer.outbox.count < configuration.maximumQueuedControlMessages else {
            logger.warning("peer does not read its control socket; disconnecting it",
                           metadata: ["peer": "\(peer.id)", "queued": "\(peer.outbox.count)"])
            removePeer(peer.id, reason: "control queue overflow")
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
            removePeer(peer.id, reason: "cannot queue a control message: \(error)")
            return false
        }
    }

    /// Sends what the outbox holds until the socket is full again, tells the peer
    /// to look (it reads its socket only when `control_seq` moves), and then lets
    /// out the replies to others that waited for what was just delivered.
    func flushOutbox(of peer: PeerRecord) {
        while let next = peer.outbox.first {
            do {
                try SeqPacket.send(peer.socket.rawValue, next.bytes, fds: next.fds.map(\.rawValue), dontWait: true)
                uncharge(peer.outbox.removeFirst(), at: peer)
                peer.messagesDelivered += 1
            } catch where error.code == EAGAIN {
                do { try readiness.watch(peer.socket.rawValue, token: peer.writableToken, writable: true) } catch {
                    removePeer(peer.id, reason: "cannot watch: \(error)")
                    return
                }
                break
            } catch {
                removePeer(peer.id, reason: "send failed: \(error)")
                return
            }
        }
        announceControl(to: peer)
        while let held = peer.heldReplies.first, held.position <= peer.messagesDelivered {
            peer.heldReplies.removeFirst()
            counters.repliesHeld.wrappingSubtract(1, ordering: .relaxed)
            dispatch(held.response, to: held.requester, requestID: held.requestID)
        }
    }

    /// A queued message left the outbox (sent, or dropped with its peer).
    func uncharge(_ message: QueuedMessage, at peer: PeerRecord) {
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


    /// Undoes and refuses (`BUS1_ERR_TIMEOUT`) the replies held on `peer` past
    /// their deadline: it has not read its socket in
    /// ``CoordinatorConfiguration/heldReplyTimeout``, and the requester must not
    /// wait on it for ever. A lookup is rolled back (its handle, and a channel made
    /// for it alone), so nothing stays granted. An attachment is not pulled back: the
    /// sender never publishes its message, and the receiver drops it (releasing its
    /// handles, closing its fds) as soon as the sender sends something else.
    func expireHeldReplies(waitingOn peer: PeerRecord, now: ContinuousClock.Instant) {
        guard peers[peer.id] === peer, !peer.heldReplies.isEmpty else { return }
        var expired: [HeldReply] = []
        peer.heldReplies.removeAll { held in
            guard held.deadline <= now else { return false }
            expired.append(held)
            return true
        }
        counters.repliesHeld.wrappingSubtract(expired.count, ordering: .relaxed)
        for held in expired {
            counters.heldReplyTimeouts.wrappingAdd(1, ordering: .relaxed)
            logger.notice("a reply waited too long for a peer that does not read its socket; request undone",
                          metadata: ["waiting-on": "\(peer.id)", "requester": "\(held.requester)"])
            held.response.rollback?()
            if let requester = peers[held.requester] { reply(requester, RequestError.timedOut.message, requestID: held.requestID) }
        }
        if let next = peer.heldReplies.map(\.deadline).min() { timers.schedule(next) }
    }
}
