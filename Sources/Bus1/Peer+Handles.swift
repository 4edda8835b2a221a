import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

extension Peer {
    // MARK: Nodes, names, handles

    /// Creates a node owned by this peer; the returned handle names it.
    public func createNode() throws(Bus1Error) -> Handle {
        guard case .nodeCreated(let handle) = try request(.nodeCreate).message else { throw .protocolViolation("expected NODE_CREATED") }
        handles[handle] = HandleTarget(node: handle, ownerCredentials: credentials, route: .own)
        return Handle(id: handle)
    }

    /// Publishes one of this peer's nodes under `name` (1...255 bytes of UTF-8, no NUL).
    public func publish(_ node: Handle, as name: String) throws(Bus1Error) {
        try Self.checkName(name)
        let reply = try request(.namePublish(handle: node.id, name: name)).message
        guard reply == .ok else { throw .protocolViolation("expected OK") }
    }

    /// Looks a name up and returns this peer's handle to the node (the same handle
    /// each time; the coordinator counts references).
    public func lookup(_ name: String) throws(Bus1Error) -> Handle {
        try Self.checkName(name)
        var reply = try request(.nameLookup(name: name))
        guard case .handleGranted(let grant) = reply.message else { throw .protocolViolation("expected HANDLE_GRANTED") }
        try install(grant, fds: &reply.fds)
        return Handle(id: grant.handle)
    }

    /// Records a handle the coordinator granted (by lookup or in an attachment),
    /// mapping the channel to the node's owner if it is new (`fds`: its channel
    /// and the owner's wake page, taken).
    func install(_ grant: ControlMessage.HandleGrant, fds: inout ReceivedDescriptors) throws(Bus1Error) {
        if grant.owner == id {
            handles[grant.handle] = HandleTarget(node: grant.node, ownerCredentials: credentials, route: .own)
            return
        }
        let channel: OutboundChannel
        if let existing = outbound[grant.channel] {
            channel = existing  // fds that came along anyway close with the event
        } else if grant.newChannel {
            channel = try openOutbound(grant, channelFD: fds.take(0), receiverWakeFD: fds.take(1))
        } else {
            throw .protocolViolation("a handle grant names an unknown channel")
        }
        let owner = PeerCredentials(peer: grant.owner, uid: grant.ownerUID, pid: grant.ownerPID)
        handles[grant.handle] = HandleTarget(node: grant.node, ownerCredentials: owner, route: .open(channel))
    }

    /// Who owns the node `handle` names, as the coordinator stamped it when this
    /// peer got the handle (by lookup, in an attachment, or by creating the node:
    /// then this peer's own ``credentials``); nil for a handle this peer does not
    /// hold. Still answered after the node was destroyed, while the handle is held.
    public func credentials(of handle: Handle) -> PeerCredentials? {
        handles[handle.id]?.ownerCredentials
    }

    /// Every name published on the bus, ascending, each with its owner's
    /// credentials and command, as the coordinator saw them when the owner
    /// connected. Any peer may list, whatever the lookup policy (a lookup still
    /// decides who gets a handle). Asked for in pages (NAME_LIST, up to
    /// `BUS1_NAME_LIST_MAX` names each, each page after the last name of the one
    /// before), so a name published or withdrawn meanwhile may or may not be
    /// listed, but no name that stays published is missed or listed twice.
    public func publishedNames() throws(Bus1Error) -> [PublishedName] {
        var names: [PublishedName] = []
        var after: String? = nil
        while true {
            guard case .names(let page) = try request(.nameList(after: after)).message else { throw .protocolViolation("expected NAMES") }
            // The codec checked each page is ascending; across pages it must move on too, or the loop might not end.
            if let after, let first = page.entries.first, !(after < first.name) { throw .protocolViolation("NAMES went backwards") }
            names += page.entries.map { PublishedName(name: $0.name, owner: PeerCredentials(peer: $0.owner, uid: $0.uid, pid: $0.pid),
                                                      command: $0.command) }
            guard page.remaining > 0 else { return names }
            guard let last = page.entries.last else { throw .protocolViolation("NAMES: more remain, none sent") }
            after = last.name
        }
    }

    /// ``lookup(_:)``, retrying every millisecond while the name is not published
    /// yet, for up to `timeout` (for peers that start together).
    public func lookup(_ name: String, timeout: Duration) throws(Bus1Error) -> Handle {
        let deadline = Deadline.after(timeout)
        while true {
            if let handle = try lookupIfPublished(name) { return handle }
            if deadline.hasPassed { throw .refused(.nameUnknown) }
            usleep(1000)
        }
    }

    /// ``lookup(_:)``, or nil if nothing is published under `name`.
    func lookupIfPublished(_ name: String) throws(Bus1Error) -> Handle? {
        do {
            return try lookup(name)
        } catch .refused(.nameUnknown) {
            return nil
        }
    }

    /// Drops one reference to a handle of another peer's node. A handle whose node
    /// was destroyed is gone at the coordinator already: releasing it only forgets it.
    public func release(_ handle: Handle) throws(Bus1Error) {
        guard let target = handles[handle.id] else { throw .unknownHandle(handle) }
        if target.isDestroyed && target.owner != id {
            handles[handle.id] = nil
            return
        }
        do {
            _ = try request(.handleRelease(handle: handle.id))
        } catch .refused(.handleUnknown) where target.owner != id {
            handles[handle.id] = nil  // destroyed meanwhile; the notification is on its way
        }
    }

    /// Destroys nodes of this peer, atomically (up to 32 at once): every holder
    /// gets a ``Message/Kind/nodeDestroyed`` notification ordered with data, and
    /// messages to these nodes ordered after the destruction are dropped. Returns
    /// the destruction's ticket. Anyone but the owner is refused (`notOwner`).
    @discardableResult
    public func destroy(_ nodes: [Handle]) throws(Bus1Error) -> UInt64 {
        guard nodes.count >= 1, nodes.count <= Int(BUS1_DESTROY_MAX) else { throw .batchTooLarge(nodes.count, maximum: Int(BUS1_DESTROY_MAX)) }
        guard case .destroyed(let ticket) = try request(.nodeDestroy(handles: nodes.map(\.id))).message else {
            throw .protocolViolation("expected DESTROYED")
        }
        for node in nodes {
            destroyedNodes[node.id] = ticket
            handles[node.id]?.isDestroyed = true
        }
        return ticket
    }

    /// Destroys every node of this peer and releases every handle it holds, in one
    /// step (one ticket), and flushes its queue (its inbound channels close); what
    /// it sent before is still delivered. The peer stays connected.
    @discardableResult
    public func reset() throws(Bus1Error) -> UInt64 {
        guard case .destroyed(let ticket) = try request(.reset).message else { throw .protocolViolation("expected DESTROYED") }
        for (handle, target) in handles {
            if target.owner == id {
                destroyedNodes[handle] = ticket
                handles[handle]?.isDestroyed = true
            } else {
                handles[handle] = nil
            }
        }
        return ticket
    }

    /// Gives back handles of attachments the library dropped (outside any request).
    func flushPendingReleases() throws(Bus1Error) {
        while let handle = pendingReleases.popLast() {
            guard let target = handles[handle], !target.isDestroyed else { continue }
            do { _ = try request(.handleRelease(handle: handle)) } catch .refused(.handleUnknown) {}
        }
    }

    private static func checkName(_ name: String) throws(Bus1Error) {
        guard !name.isEmpty, name.utf8.count <= Int(BUS1_NAME_MAX), !name.utf8.contains(0) else { throw .invalidName(name) }
    }

    func openOutbound(_ grant: ControlMessage.HandleGrant, channelFD: consuming FileDescriptor,
                              receiverWakeFD: consuming FileDescriptor) throws(Bus1Error) -> OutboundChannel {
        do {
            let geometry = ChannelGeometry(capacity: Int(grant.capacity))
            let memory = try ChannelMemory(try Mapping(channelFD, count: geometry.size, writable: true),
                                           channel: grant.channel, capacity: Int(grant.capacity))
            let wakeMapping = try Mapping(receiverWakeFD, count: Int(BUS1_PAGE_SIZE), writable: true)
            let page = try WakePage(wakeMapping)
            let channel = OutboundChannel(id: grant.channel, receiver: grant.owner, tag: channelTags.take(),
                                          producer: SubmissionProducer(memory), receiverWakeMapping: wakeMapping, receiverWake: page)
            outbound[grant.channel] = channel
            return channel
        } catch let error as LinuxError {
            throw .system(error)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }
}
