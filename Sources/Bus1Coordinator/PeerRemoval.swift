import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// Peer removal and channels: what a leaving peer takes with it, and the
/// channels between peers (made on a lookup or attachment, closed by either side
/// or with a peer).
extension Coordinator {
    /// Tears a peer down in one step: destroys its nodes and releases its handles
    /// (notifications under one ticket), closes its channels (telling the other
    /// sides), drops its names and queued messages, closes its fds.
    func removePeer(_ id: UInt64, reason: String) {
        guard let peer = peers.removeValue(forKey: id) else { return }
        counters.peers.store(connectedPeers(), ordering: .relaxed)
        let routine = ["disconnected", "process exited", "coordinator stopping"].contains(reason)
            || reason.contains("Connection reset") || reason.contains("Broken pipe")
        logger.log(level: routine ? .debug : .notice, "peer removed", metadata: ["peer": "\(id)", "reason": "\(reason)"])
        try? readiness.unwatch(peer.socketToken)
        try? readiness.unwatch(peer.pidfdToken)
        try? readiness.unwatch(peer.writableToken)
        publish(forgetNodes(Array(peer.ownedNodes), of: peer) + forgetHandles(of: peer))
        for channelID in Array(peer.outbound.values) + Array(peer.inbound) {
            closeChannel(channelID, reason: BUS1_CLOSE_PEER_GONE.rawValue)
        }
        for message in peer.outbox { uncharge(message, at: peer) }
        peer.outbox.removeAll()
        finishHandshake(of: peer)
        accounts.uncharge(.connections, from: peer.uid)
        unchargeSegments(of: peer)
        // Replies that waited for this peer to hear of something never will: a
        // reply that can be undone (a lookup's grant) is undone and refused; any
        // other goes on to its remaining conditions.
        let held = peer.heldReplies
        peer.heldReplies.removeAll()
        counters.repliesHeld.wrappingSubtract(held.count, ordering: .relaxed)
        for waiting in held {
            if let rollback = waiting.response.rollback {
                rollback()
                if let requester = peers[waiting.requester] { reply(requester, RequestError.nameUnknown.message, requestID: waiting.requestID) }
            } else {
                dispatch(waiting.response, to: waiting.requester, requestID: waiting.requestID)
            }
        }
    }

    /// Removes a channel and tells whichever ends are still connected.
    func closeChannel(_ id: UInt64, reason: UInt32) {
        guard let channel = channels.removeValue(forKey: id) else { return }
        accounts.uncharge(.channels, from: channel.chargedTo)
        let sender = peers[channel.sender], receiver = peers[channel.receiver]
        sender?.outbound[channel.receiver] = nil
        receiver?.inbound.remove(id)
        if let sender { notify(sender, .channelClosed(channel: id, otherPeer: channel.receiver, reason: reason)) }
        if let receiver { notify(receiver, .channelClosed(channel: id, otherPeer: channel.sender, reason: reason)) }
    }

    // MARK: Channels

    /// The channel sender → receiver, created (and announced to the receiver) if new.
    /// `chargedTo`: the uid whose request made it (see ``send(_:_:requestID:fds:chargedTo:)``).
    func channel(from sender: PeerRecord, to receiver: PeerRecord, node: UInt64,
                 chargedTo uid: UInt32? = nil) throws(RequestError) -> (ChannelRecord, isNew: Bool) {
        // Serving a request can remove a peer (a message to it failed): never give a
        // channel to one that is gone, or the channel would outlive both tables.
        guard peers[sender.id] === sender, peers[receiver.id] === receiver else { throw .nameUnknown }
        if let id = sender.outbound[receiver.id], let existing = channels[id] {
            if existing.allowedNodes.insert(node).inserted {
                notify(receiver, .channelGrant(channel: id, node: node), chargedTo: uid)  // before the sender learns of its handle
            }
            return (existing, false)
        }
        guard sender.outbound.count < configuration.maximumChannelsPerPeer,
              receiver.inbound.count < configuration.maximumChannelsPerPeer
        else { throw .quota(BUS1_QUOTA_CHANNELS.rawValue) }
        guard let senderWake = sender.memory?.wake.rawValue else { throw .state }
        let payer = uid ?? sender.uid
        try accounts.check(.channels, for: payer)
        let id = nextChannel
        nextChannel += 1
        let geometry = ChannelGeometry(capacity: receiver.ringCapacity)
        let record: ChannelRecord
        do {
            let fd = try MemFD.create(name: "bus1-channel-\(id)", size: geometry.size)
            try MemFD.addSeals([.shrink, .grow, .seal], to: fd)
            let mapping = try Mapping(fd, count: geometry.size, writable: true)
            geometry.initialize(mapping, channel: id, sender: sender.id, receiver: receiver.id)
            record = ChannelRecord(id: id, sender: sender.id, receiver: receiver.id, capacity: geometry.capacity, memory: fd,
                                   chargedTo: payer, mapping: mapping)
        } catch {
            throw .system(error)
        }
        accounts.add(.channels, to: payer)
        record.allowedNodes.insert(node)
        channels[id] = record
        sender.outbound[receiver.id] = id
        receiver.inbound.insert(id)
        // The receiver learns of the channel before the sender can use it. No pool
        // travels: the receiver asks for each segment it finds named (SEGMENT_GET),
        // and gets only those its uid may read.
        notify(receiver, .channelOpened(.init(channel: id, sender: sender.id, node: node, capacity: UInt32(geometry.capacity))),
               fds: [record.memory.rawValue, senderWake], chargedTo: uid)
        return (record, true)
    }
}

