import Bus1Core
import CBus1Wire

/// Peer removal: what a leaving peer takes with it.
extension Coordinator {
    /// Tears a peer down in one step: destroys its nodes and releases its handles
    /// (notifications under one ticket), closes its channels (telling the other
    /// sides), drops its names and queued messages, closes its fds, and settles the
    /// replies that waited for it.
    func removePeer(_ id: UInt64, reason: String) {
        guard let peer = tables.peers.removeValue(forKey: id) else { return }
        counters.peers.store(tables.connectedPeers(), ordering: .relaxed)
        let routine = ["disconnected", "process exited", "coordinator stopping"].contains(reason)
            || reason.contains("Connection reset") || reason.contains("Broken pipe")
        logger.log(level: routine ? .debug : .notice, "peer removed", metadata: ["peer": "\(id)", "reason": "\(reason)"])
        try? readiness.unwatch(peer.socketToken)
        try? readiness.unwatch(peer.pidfdToken)
        try? readiness.unwatch(peer.writableToken)
        publish(tables.forgetNodes(Array(peer.ownedNodes), of: peer) + tables.forgetHandles(of: peer))
        for channelID in Array(peer.outbound.values) + Array(peer.inbound) {
            channelBroker.close(channelID, reason: BUS1_CLOSE_PEER_GONE.rawValue)
        }
        outbox.discard(outboxOf: peer)
        admission.finishHandshake(of: peer)
        tables.accounts.uncharge(.connections, from: peer.uid)
        unchargeSegments(of: peer)
        outbox.resolveHeldReplies(ofLeaving: peer)
    }
}
