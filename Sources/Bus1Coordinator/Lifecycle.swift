import Bus1Core
import CBus1Wire

/// The capability lifecycle: node destroy, handle release, reset, and handles and
/// fds attached to messages (Attachments.swift).
///
/// Invariants the coordinator keeps:
/// - a node lives while its owner has not destroyed it, reset, or left; when it
///   goes, every holder's handle to it goes in the same step, and each holder gets
///   one `BUS1_NOTE_NODE_DESTROYED`, all of a step under one ticket;
/// - a node's owner gets `BUS1_NOTE_NODE_RELEASED` when the last handle another
///   peer held goes (released or its holder left) and the node still lives; a
///   handle attached to a message in flight is held (by the receiver) already;
/// - a handle can be attached only by a peer that holds it, and only to a message
///   for a node whose owner is connected.
extension Coordinator {
    /// NODE_DESTROY: the owner destroys up to `BUS1_DESTROY_MAX` nodes atomically;
    /// anyone else is refused before anything changes.
    func destroy(_ handles: [UInt64], by owner: PeerRecord) throws(RequestError) -> Response {
        for handle in handles where !owner.ownedNodes.contains(handle) {
            throw owner.handles[handle] == nil ? .handleUnknown : .notOwner
        }
        var unique: [UInt64] = []
        for handle in handles where !unique.contains(handle) { unique.append(handle) }
        return Response(message: .destroyed(ticket: publish(tables.forgetNodes(unique, of: owner))))
    }

    /// RESET: the peer's nodes destroyed, its handles released (one ticket), its
    /// queue flushed (inbound channels closed, their senders get their slices
    /// back); it stays connected with its pool and rings. Its outbound channels
    /// stay: what it sent before the reset is still delivered.
    func reset(_ peer: PeerRecord) -> Response {
        let ticket = publish(tables.forgetNodes(Array(peer.ownedNodes), of: peer) + tables.forgetHandles(of: peer))
        for channelID in peer.inbound { channelBroker.close(channelID, reason: BUS1_CLOSE_BY_PEER.rawValue) }
        for channelID in peer.outbound.values { tables.channels[channelID]?.allowedNodes.removeAll() }
        return Response(message: .destroyed(ticket: ticket))
    }
}
