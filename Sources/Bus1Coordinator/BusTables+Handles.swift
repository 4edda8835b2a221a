import CBus1Wire

/// Handles and nodes in the tables: one handle per (peer, node), reference
/// counted, each charged to the uid that made it. These only change the tables
/// and return the notifications a change causes; publishing them is the
/// caller's (``Coordinator/publish(_:)``), so one step publishes under one ticket.
extension BusTables {
    /// Removes `nodes` of `owner` from every table (handles, names, channel grants)
    /// and returns the destroy notifications for their holders.
    func forgetNodes(_ nodes: [UInt64], of owner: PeerRecord) -> [Notification] {
        var notes: [Notification] = []
        for node in nodes {
            let key = NodeKey(owner: owner.id, node: node)
            for holder in peers.values where holder !== owner {
                guard let handle = holder.handleByNode[key] else { continue }
                forgetHandle(handle, of: holder)
                if let channelID = holder.outbound[owner.id] { channels[channelID]?.allowedNodes.remove(node) }
                notes.append(Notification(target: holder, kind: BUS1_NOTE_NODE_DESTROYED, id: handle, cause: owner.id))
            }
            if owner.ownedNodes.remove(node) != nil { accounts.uncharge(.nodes, from: owner.uid) }
            forgetHandle(node, of: owner)
        }
        let gone = Set(nodes)
        for (name, key) in names where key.owner == owner.id && gone.contains(key.node) {
            names[name] = nil
        }
        return notes
    }

    /// Drops every handle `peer` holds to other peers' nodes and returns the release
    /// notifications of the nodes left without holders.
    func forgetHandles(of peer: PeerRecord) -> [Notification] {
        var notes: [Notification] = []
        for (handle, record) in peer.handles where record.node.owner != peer.id {
            forgetHandle(handle, of: peer)
            if let note = releaseNotification(for: record.node, releasedBy: peer) { notes.append(note) }
        }
        return notes
    }

    /// Adds a reference to `peer`'s handle `handle` for `key`, making the handle
    /// (charged to `uid`) if it is new. The caller checked the limits.
    func addHandleReference(_ handle: UInt64, for key: NodeKey, to peer: PeerRecord, chargedTo uid: UInt32) {
        if peer.handles[handle] == nil {
            let payer: UInt32? = key.owner == peer.id ? nil : uid
            if let payer {
                accounts.add(.handles, to: payer)
                peer.handlesChargedTo[payer, default: 0] += 1
            }
            peer.handles[handle] = HandleRecord(node: key, references: 0, chargedTo: payer)
            peer.handleByNode[key] = handle
        }
        peer.handles[handle]!.references += 1
    }

    /// Drops one reference to `peer`'s handle `handle`; the last one removes it
    /// and gives back its charge. Returns whether the handle is gone.
    @discardableResult
    func dropHandleReference(_ handle: UInt64, of peer: PeerRecord) -> Bool {
        guard var record = peer.handles[handle] else { return true }
        record.references -= 1
        guard record.references <= 0 else {
            peer.handles[handle] = record
            return false
        }
        forgetHandle(handle, of: peer)
        return true
    }

    /// Removes `peer`'s handle `handle` whatever its references, and its charge.
    func forgetHandle(_ handle: UInt64, of peer: PeerRecord) {
        guard let record = peer.handles.removeValue(forKey: handle) else { return }
        if peer.handleByNode[record.node] == handle { peer.handleByNode[record.node] = nil }
        if let payer = record.chargedTo {
            accounts.uncharge(.handles, from: payer)
            peer.handlesChargedTo[payer, default: 1] -= 1
            if peer.handlesChargedTo[payer] == 0 { peer.handlesChargedTo[payer] = nil }
        }
    }

    /// The release notification for `key`, if its owner is connected, the node
    /// lives, and no peer but the owner holds a handle to it any more.
    func releaseNotification(for key: NodeKey, releasedBy peer: PeerRecord) -> Notification? {
        guard let owner = peers[key.owner], owner.ownedNodes.contains(key.node),
              !peers.values.contains(where: { $0 !== owner && $0.handleByNode[key] != nil })
        else { return nil }
        return Notification(target: owner, kind: BUS1_NOTE_NODE_RELEASED, id: key.node, cause: peer.id)
    }
}
