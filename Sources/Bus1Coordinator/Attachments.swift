import Bus1Core
import Bus1Linux
import CBus1Wire

/// Handles and fds attached to messages: ATTACH installs the passed handles in
/// the receiver's table, opens the channels they need, and queues the
/// attachment for the receiver, all checked before anything changes.
extension Coordinator {
    /// ATTACH: installs `handles` (the sender's) in the receiver's table and queues
    /// them with `descriptors` as the receiver's next attachment on the sender's
    /// channel. The reply waits until the receiver's socket holds the attachment
    /// and every owner of a passed node has the receiver's grant, so the message
    /// the sender publishes next can be taken, and the handles in it used, at once.
    func attach(_ handles: [UInt64], descriptors: [OwnedDescriptor], to destination: UInt64, sequence: UInt64,
                by sender: PeerRecord) throws(RequestError) -> Response {
        guard let target = sender.handles[destination], target.node.owner != sender.id,
              let receiver = peers[target.node.owner], receiver.state == .ready,
              let channelID = sender.outbound[receiver.id], tables.channels[channelID] != nil
        else { throw .handleUnknown }
        try refuseUnattachable(descriptors)
        let keys = try attachedNodes(handles, of: sender)
        try chargeAttachment(of: keys, descriptors: descriptors.count, from: sender, to: receiver)

        // Everything that can fail comes first (channels to the passed nodes' owners,
        // undone if one cannot be made); only then are handles installed and
        // announced, so a refused ATTACH leaves nothing behind in the receiver.
        let routes = try routes(to: keys, from: receiver, chargedTo: sender.uid)
        guard peers[receiver.id] != nil else { throw .handleUnknown }  // it went away meanwhile
        var installed = install(routes, at: receiver, from: sender)
        outbox.attachmentsInFlight.add(.init(channel: channelID, sequence: sequence, descriptors: descriptors.count), for: sender.uid)
        outbox.notify(receiver, .attachment(channel: channelID, handles: installed.ids, fdCount: UInt32(descriptors.count), sequence: sequence),
                      fds: descriptors.map(\.rawValue), chargedTo: sender.uid)
        guard peers[receiver.id] != nil else { throw .handleUnknown }
        installed.waits.append((receiver.id, receiver.messagesAccepted))
        return Response(message: .ok, owners: installed.owners + descriptors, after: installed.waits)
    }

    /// Refuses fds that may not travel on the bus: Unix sockets (reference cycles
    /// of sockets in flight) and the bus's own memfds.
    private func refuseUnattachable(_ descriptors: [OwnedDescriptor]) throws(RequestError) {
        for descriptor in descriptors {
            let kind = try RequestError.passingErrno { () throws(LinuxError) in try DescriptorKind.of(descriptor.rawValue) }
            switch kind {
            case .unixSocket: throw .descriptorRefused(.unixSocket)
            case .memfd(let name) where name.hasPrefix("bus1-"): throw .descriptorRefused(.busObject)
            default: break
            }
        }
    }

    /// The node each passed handle names. A handle the sender had once but not any
    /// more (its node was destroyed, or it released it) travels as invalid (nil);
    /// one it never had is refused.
    private func attachedNodes(_ handles: [UInt64], of sender: PeerRecord) throws(RequestError) -> [NodeKey?] {
        var keys: [NodeKey?] = []
        for handle in handles {
            guard let record = sender.handles[handle] else {
                guard handle < sender.nextHandle else { throw .handleUnknown }
                keys.append(nil)
                continue
            }
            keys.append(record.node)
        }
        return keys
    }

    /// Checks every limit an attachment of `keys` and `descriptors` fds meets: the
    /// sender's fair share of the receiver's queue and handle table, the
    /// receiver's handle limit, the sender uid's handle total.
    private func chargeAttachment(of keys: [NodeKey?], descriptors: Int, from sender: PeerRecord,
                                  to receiver: PeerRecord) throws(RequestError) {
        try outbox.chargeFairShare(of: sender.uid, at: receiver, messages: 1 + keys.count, descriptors: descriptors)
        let newHandles = Set(keys.compactMap { $0 }.filter { $0.owner != receiver.id && receiver.handleByNode[$0] == nil })
        guard receiver.handles.count + newHandles.count <= configuration.maximumHandlesPerPeer else {
            throw .quota(.handles)
        }
        try tables.accounts.check(.handles, newHandles.count, for: sender.uid)
        try chargeHandleShare(of: sender.uid, at: receiver, adding: newHandles.count)
    }

    /// What installing an attachment's handles gave: the ids the receiver gets,
    /// the peers the reply waits for, and the objects whose fds travel.
    private struct InstalledHandles {
        var ids: [UInt64] = []
        var waits: [(peer: UInt64, position: UInt64)] = []
        var owners: [AnyObject] = []
    }

    /// Installs each routed handle in the receiver's table (charged to the sender's
    /// uid) and announces it with its channel's fds.
    private func install(_ routes: [AttachedRoute], at receiver: PeerRecord, from sender: PeerRecord) -> InstalledHandles {
        var installed = InstalledHandles(owners: [receiver])
        for route in routes {
            switch route {
            case .invalid: installed.ids.append(BUS1_INVALID_ID)  // destroyed before the message could carry it
            case .ownNode(let node): installed.ids.append(node)   // the receiver's own node: its own id
            case .channel(let key, let owner, let channel):
                let handle = receiver.handleByNode[key] ?? {
                    defer { receiver.nextHandle += 1 }
                    return receiver.nextHandle
                }()
                tables.addHandleReference(handle, for: key, to: receiver, chargedTo: sender.uid)
                installed.owners.append(channel)
                installed.owners.append(owner)
                if peers[owner.id] != nil, owner !== sender { installed.waits.append((owner.id, owner.messagesAccepted)) }
                // The channel's fds always travel with an arrived handle: the channel may
                // exist while the receiver has not heard of it yet (its own lookup of the
                // owner made it, and that reply is still held for the owner), and this
                // event can overtake that reply. A receiver that knows the channel closes them.
                let grant = ControlMessage.HandleGrant(handle: handle, node: key.node, owner: owner, channel: channel.id,
                                                       capacity: UInt32(channel.capacity), newChannel: true)
                outbox.send(receiver, .handleArrived(grant), requestID: 0,
                            fds: [channel.memory.rawValue, owner.memory!.wake.rawValue], chargedTo: sender.uid)
                installed.ids.append(handle)
            }
        }
        return installed
    }

    /// How one passed handle reaches the receiver of an attachment.
    enum AttachedRoute {
        /// Its node is gone (destroyed, or its owner left): it travels as invalid.
        case invalid
        /// One of the receiver's own nodes: it arrives as the receiver's own id.
        case ownNode(UInt64)
        /// A handle to `key`, over the receiver's channel to its owner.
        case channel(NodeKey, owner: PeerRecord, ChannelRecord)
    }

    /// The channel from `receiver` to the owner of each node in `keys`, made if new
    /// (charged to `uid`). If one cannot be made, the channels made so far are
    /// closed again and the error is thrown: nothing is left half done.
    func routes(to keys: [NodeKey?], from receiver: PeerRecord, chargedTo uid: UInt32) throws(RequestError) -> [AttachedRoute] {
        var routes: [AttachedRoute] = []
        var made: [UInt64] = []
        do {
            for key in keys {
                guard let key, let owner = peers[key.owner], owner.ownedNodes.contains(key.node) else {
                    routes.append(.invalid)
                    continue
                }
                if owner === receiver { routes.append(.ownNode(key.node)); continue }
                let (channel, isNew) = try channelBroker.open(from: receiver, to: owner, node: key.node, chargedTo: uid)
                if isNew { made.append(channel.id) }
                // Announcing the channel to the owner can fail and remove the owner (it
                // died meanwhile): its nodes are destroyed and the channel is closed, and
                // the receiver has already been told so. Granting the handle now would
                // hand it a channel nobody will ever close again, and every slice it sent
                // there would stay lost (the crash-cleanup test's dead-receiver leak).
                guard peers[owner.id] === owner, tables.channels[channel.id] === channel else { routes.append(.invalid); continue }
                routes.append(.channel(key, owner: owner, channel))
            }
        } catch {
            for id in made { channelBroker.close(id, reason: BUS1_CLOSE_BY_PEER.rawValue) }
            throw error
        }
        return routes
    }

    /// The fair share of a receiver's handle table for handles other uids put
    /// there by attaching them: a uid may add only while it would hold at most half
    /// of what the others leave free, out of the smaller of the per-peer handle limit
    /// and the receiver's coordinator ring. The ring matters because every such
    /// handle becomes a notification when its node goes: an attacker that attached
    /// thousands of its own nodes and then left used to overflow the victim's ring
    /// and get the victim disconnected. The receiver's own uid is not limited here.
    func chargeHandleShare(of uid: UInt32, at receiver: PeerRecord, adding count: Int) throws(RequestError) {
        guard uid != receiver.uid, count > 0 else { return }
        let mine = receiver.handlesChargedTo[uid] ?? 0
        let others = receiver.handles.count - mine
        let limit = min(configuration.maximumHandlesPerPeer, configuration.coordinatorRingCapacity)
        guard (mine + count) * 2 <= limit - others else { throw .quota(.handlesShare) }
    }
}
