/// Replies held until another peer has what they depend on.
///
/// A reply that grants a handle, or acknowledges an attachment, may go out only
/// once the other peers involved have the events it depends on in their sockets
/// (a descriptor must never reach a peer naming a node it has not heard of).
/// Such a reply waits on the first of those peers (``PeerRecord/heldReplies``)
/// until its `messagesDelivered` reaches the event, the peer leaves, or
/// ``CoordinatorConfiguration/heldReplyTimeout`` passes.
extension ControlOutbox {
    /// Sends a reply once every peer in its `after` list that is still connected
    /// has the message it depends on in its socket; until then it waits on the
    /// first such peer (see ``flush(_:)``).
    func dispatch(_ response: Response, to requester: UInt64, requestID: UInt32) {
        guard let peer = tables.peers[requester] else { return }
        for condition in response.after {
            if let other = tables.peers[condition.peer], other.messagesDelivered < condition.position {
                let deadline = ContinuousClock.now + configuration.heldReplyTimeout
                other.heldReplies.append(HeldReply(position: condition.position, requester: requester, requestID: requestID,
                                                   response: response, deadline: deadline))
                timers.schedule(deadline)
                counters.repliesHeld.wrappingAdd(1, ordering: .relaxed)
                return
            }
        }
        reply(peer, response, requestID: requestID)
    }

    /// Lets out the replies that waited for what `peer`'s socket now holds.
    func releaseHeldReplies(deliveredBy peer: PeerRecord) {
        while let held = peer.heldReplies.first, held.position <= peer.messagesDelivered {
            peer.heldReplies.removeFirst()
            counters.repliesHeld.wrappingSubtract(1, ordering: .relaxed)
            dispatch(held.response, to: held.requester, requestID: held.requestID)
        }
    }

    /// Replies that waited for a leaving `peer` to hear of something never will:
    /// a reply that can be undone (a lookup's grant) is undone and refused; any
    /// other goes on to its remaining conditions.
    func resolveHeldReplies(ofLeaving peer: PeerRecord) {
        let held = peer.heldReplies
        peer.heldReplies.removeAll()
        counters.repliesHeld.wrappingSubtract(held.count, ordering: .relaxed)
        for waiting in held {
            if let rollback = waiting.response.rollback {
                rollback()
                if let requester = tables.peers[waiting.requester] {
                    reply(requester, RequestError.nameUnknown.message, requestID: waiting.requestID)
                }
            } else {
                dispatch(waiting.response, to: waiting.requester, requestID: waiting.requestID)
            }
        }
    }

    /// Undoes and refuses (`BUS1_ERR_TIMEOUT`) the replies held on `peer` past
    /// their deadline: it has not read its socket in
    /// ``CoordinatorConfiguration/heldReplyTimeout``, and the requester must not
    /// wait on it for ever. A lookup is rolled back (its handle, and a channel made
    /// for it alone), so nothing stays granted. An attachment is not pulled back: the
    /// sender never publishes its message, and the receiver drops it (releasing its
    /// handles, closing its fds) as soon as the sender sends something else.
    func expireHeldReplies(waitingOn peer: PeerRecord, now: ContinuousClock.Instant) {
        guard tables.peers[peer.id] === peer, !peer.heldReplies.isEmpty else { return }
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
            if let requester = tables.peers[held.requester] { reply(requester, RequestError.timedOut.message, requestID: held.requestID) }
        }
        if let next = peer.heldReplies.map(\.deadline).min() { timers.schedule(next) }
    }
}
