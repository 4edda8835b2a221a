import Bus1Core
import CBus1Wire

/// Nodes and names: a peer creates nodes, publishes them under names, looks
/// names up (which grants a handle and, for another peer's node, opens the
/// channel to its owner) and releases handles.
extension Coordinator {
    /// NODE_CREATE: a new node, named by the owner's handle id for it (charged to
    /// its uid as a node; its owner's handle is not charged as a handle).
    func createNode(for peer: PeerRecord) throws(RequestError) -> Response {
        guard peer.ownedNodes.count < configuration.maximumNodesPerPeer else { throw .quota(.nodes) }
        guard peer.handles.count < configuration.maximumHandlesPerPeer else { throw .quota(.handles) }
        try tables.accounts.charge(.nodes, to: peer.uid)
        let id = peer.nextHandle
        peer.nextHandle += 1
        peer.ownedNodes.insert(id)
        tables.addHandleReference(id, for: NodeKey(owner: peer.id, node: id), to: peer, chargedTo: peer.uid)
        return Response(message: .nodeCreated(handle: id))
    }

    /// NAME_PUBLISH: the owner names one of its nodes. A name stays taken while its
    /// node lives (a name whose owner left is free again).
    func publish(handle: UInt64, name: String, by peer: PeerRecord) throws(RequestError) -> Response {
        guard peer.ownedNodes.contains(handle) else {
            throw peer.handles[handle] == nil ? .handleUnknown : .notOwner
        }
        if let existing = tables.names[name], peers[existing.owner] != nil { throw .nameTaken }
        tables.names[name] = NodeKey(owner: peer.id, node: handle)
        return .ok
    }

    /// NAME_LOOKUP: a handle to the named node, by policy (``CoordinatorConfiguration/nameLookup``).
    /// For another peer's node it opens the channel to the owner (or grants the
    /// node on the one there is), and the reply waits until the owner has heard.
    func lookup(name: String, by peer: PeerRecord) throws(RequestError) -> Response {
        guard let key = tables.names[name], let owner = peers[key.owner], owner.state == .ready else { throw .nameUnknown }
        guard owner.uid == peer.uid || peer.uid == 0 || configuration.nameLookup == .anyAllowedUID else { throw .permission }

        let handle: UInt64
        if let existing = peer.handleByNode[key] {
            handle = existing
        } else {
            guard peer.handles.count < configuration.maximumHandlesPerPeer else { throw .quota(.handles) }
            if owner.id != peer.id { try tables.accounts.check(.handles, for: peer.uid) }
            handle = peer.nextHandle
            peer.nextHandle += 1
        }
        guard owner.id != peer.id else {
            tables.addHandleReference(handle, for: key, to: peer, chargedTo: peer.uid)
            return Response(message: .handleGranted(.init(handle: handle, node: key.node, owner: owner,
                                                          channel: BUS1_INVALID_ID, capacity: 0, newChannel: false)))
        }
        try outbox.chargeFairShare(of: peer.uid, at: owner, messages: 1, descriptors: 0)
        let (channel, isNew) = try channelBroker.open(from: peer, to: owner, node: key.node, chargedTo: peer.uid)
        // Telling the owner about the channel can fail and remove it (it died meanwhile).
        guard peers[owner.id] != nil, tables.channels[channel.id] != nil else { throw .nameUnknown }
        tables.addHandleReference(handle, for: key, to: peer, chargedTo: peer.uid)
        // Undone when the owner leaves or never reads its socket in time: the
        // handle reference goes, and a channel made for this lookup alone closes.
        let rollback = { [weak self, weak peer] in
            guard let self, let peer else { return }
            if self.tables.dropHandleReference(handle, of: peer), isNew, let still = self.tables.channels[channel.id], still.allowedNodes == [key.node] {
                self.channelBroker.close(channel.id, reason: BUS1_CLOSE_BY_PEER.rawValue)
            }
        }
        let grant = ControlMessage.HandleGrant(handle: handle, node: key.node, owner: owner, channel: channel.id,
                                               capacity: UInt32(channel.capacity), newChannel: isNew)
        // The owner must have the grant (and, for a new channel, its announcement) in
        // its socket before the requester can send: else a descriptor could reach it
        // naming a node it has not heard of, or carry a ticket its merge cannot see.
        return Response(message: .handleGranted(grant), fds: isNew ? [channel.memory.rawValue, owner.memory!.wake.rawValue] : [],
                        owners: [channel, owner], after: [(owner.id, owner.messagesAccepted)], rollback: rollback)
    }

    /// NAME_LIST: one page of the published names, those sorted after `after`
    /// (nil: from the first). Open to every ready peer whatever the lookup policy:
    /// it tells who serves what (owner, uid, pid, command), which `/proc` shows any
    /// user anyway; a handle still takes a lookup, which the policy decides.
    func listNames(after: String?) -> Response {
        let published = tables.publishedNames()
        let start = after.map { cursor in published.firstIndex { $0.name > cursor } ?? published.endIndex } ?? 0
        let page = published[start...].prefix(Int(BUS1_NAME_LIST_MAX)).map { name in
            ControlMessage.NameEntry(name: name.name, owner: name.owner.id, uid: name.owner.uid, pid: name.owner.pid,
                                     command: name.owner.command)
        }
        return Response(message: .names(.init(total: UInt32(published.count),
                                              remaining: UInt32(published.count - start - page.count), entries: page)))
    }

    /// HANDLE_RELEASE: drops one reference; the last one, if it was the last
    /// handle anyone but the owner held, tells the owner (one notification).
    func release(handle: UInt64, by peer: PeerRecord) throws(RequestError) -> Response {
        guard let record = peer.handles[handle] else { throw .handleUnknown }
        guard record.node.owner != peer.id else { throw .notOwner }  // an owner destroys its node instead
        if tables.dropHandleReference(handle, of: peer), let note = tables.releaseNotification(for: record.node, releasedBy: peer) {
            publish([note])
        }
        return .ok
    }
}

extension ControlMessage.HandleGrant {
    /// A grant of a handle to a node of `owner`, with the owner's credentials as
    /// the coordinator took them (SO_PEERCRED), never as any peer claims them.
    init(handle: UInt64, node: UInt64, owner: PeerRecord, channel: UInt64, capacity: UInt32, newChannel: Bool) {
        self.init(handle: handle, node: node, owner: owner.id, channel: channel, capacity: capacity, newChannel: newChannel,
                  ownerUID: owner.uid, ownerPID: owner.pid)
    }
}
