import Bus1Core
import Bus1Linux
import CBus1Wire
import Synchronization

/// One notification for a peer's coordinator ring.
struct Notification {
    let target: PeerRecord
    let kind: bus1_notification
    /// The target's id: its handle (destroyed) or its node (released).
    let id: UInt64
    /// The peer that caused it.
    let cause: UInt64
}

/// The capability lifecycle: node destroy, handle release, reset, and handles and
/// fds attached to messages.
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
    // MARK: Notifications

    /// Publishes `batch` to the targets' coordinator rings under one ticket, as a
    /// sender publishes a multicast: stage every ring, fence, take the ticket,
    /// write, publish, unstage, ring. A target whose ring has no room (it does not
    /// consume its notifications) is disconnected instead. Returns the ticket.
    @discardableResult
    func publish(_ batch: [Notification]) -> UInt64 {
        var rings: [(peer: PeerRecord, notes: [Notification])] = []
        var overflowing: [UInt64] = []
        for note in batch {
            if let i = rings.firstIndex(where: { $0.peer === note.target }) { rings[i].notes.append(note) } else { rings.append((note.target, [note])) }
        }
        rings.removeAll { entry in
            guard peers[entry.peer.id] != nil, let ring = entry.peer.notifications else { return true }
            do { try ring.producer.reclaimConsumed() } catch {
                overflowing.append(entry.peer.id)  // sub_head moved backwards or past the tail
                return true
            }
            guard ring.producer.hasCredit(entry.notes.count) else { overflowing.append(entry.peer.id); return true }
            return false
        }
        let mark = tickets.mark(clock: clock.current())
        for entry in rings {
            entry.peer.notifications!.producer.stage(mark)
            // After the mark, before the ticket: a receiver that sees a ticket above
            // ours sees this bump, and then the mark, so it looks at its ring (it
            // skips the ring while nothing was announced since it found it idle).
            _ = entry.peer.wakePage?.controlSequence.fetchAddReleasing(1)
        }
        atomicMemoryFence(ordering: .sequentiallyConsistent)  // every mark and bump is visible before the ticket exists
        let issued = tickets.issue(taken: clock.next(), mark: mark)
        let ticket = issued.first
        if issued.anomaly {
            // Any peer maps the clock writable: who rewound or jumped it cannot be told.
            counters.clockAnomalies.wrappingAdd(1, ordering: .relaxed)
            throttledLog.log(.warning, "the bus clock was rewound or jumped; order degrades, delivery does not", key: "clock",
                             metadata: ["clock": "\(clock.current())", "issued": "\(ticket)"])
        }
        for entry in rings {
            let ring = entry.peer.notifications!
            for note in entry.notes {
                var descriptor = bus1_descriptor()
                descriptor.ticket = ticket
                descriptor.node = note.id
                descriptor.offset = note.cause
                descriptor.flags = note.kind.rawValue
                ring.producer.write(descriptor)
            }
            ring.producer.publish()
        }
        for entry in rings {
            entry.peer.notifications!.producer.unstage()
            entry.peer.wakePage?.ring()
        }
        for id in overflowing {
            logger.warning("peer does not consume its notifications; disconnecting it", metadata: ["peer": "\(id)"])
            removePeer(id, reason: "coordinator ring overflow")
        }
        return ticket
    }

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

    // MARK: Requests

    /// NODE_DESTROY: the owner destroys up to `BUS1_DESTROY_MAX` nodes atomically;
    /// anyone else is refused before anything changes.
    func destroy(_ handles: [UInt64], by owner: PeerRecord) throws(RequestError) -> Response {
        for handle in handles where !owner.ownedNodes.contains(handle) {
            throw owner.handles[handle] == nil ? .handleUnknown : .notOwner
        }
        var unique: [UInt64] = []
        for handle in handles where !unique.contains(handle) { unique.append(handle) }
        return Response(message: .destroyed(ticket: publish(forgetNodes(unique, of: owner))))
    }

    /// RESET: the peer's nodes destroyed, its handles released (one ticket), its
    /// queue flushed (inbound channels closed, their senders get their slices
    /// back); it stays connected with its pool and rings. Its outbound channels
    /// stay: what it sent before the reset is still delivered.
    func reset(_ peer: PeerRecord) -> Response {
        let ticket = publish(forgetNodes(Array(peer.ownedNodes), of: peer) + forgetHandles(of: peer))
        for channelID in peer.inbound { closeChannel(channelID, reason: BUS1_CLOSE_BY_PEER.rawValue) }
        for channelID in peer.outbound.values { channels[channelID]?.allowedNodes.removeAll() }
        return Response(message: .destroyed(ticket: ticket))
    }

    /// ATTACH: installs `handles` (the sender's) in the receiver's table and queues
    /// them with `descriptors` as the receiver's next attachment on the sender's
    /// channel. The reply waits until the receiver's socket holds the attachment
    /// and every owner of a passed node has the receiver's grant, so the message
    /// the sender publishes next can be taken, and the handles in it used, at once.
    func attach(_ handles: [UInt64], descriptors: [OwnedDescriptor], to destination: UInt64, sequence: UInt64,
                by sender: PeerRecord) throws(RequestError) -> Response {
        guard let target = sender.handles[destination], target.node.owner != sender.id,
              let receiver = peers[target.node.owner], receiver.state == .ready,
              let channelID = sender.outbound[receiver.id], channels[channelID] != nil
        else { throw .handleUnknown }
        for descriptor in descriptors {
            let kind: DescriptorKind
            do { kind = try DescriptorKind.of(descriptor.rawValue) } catch { throw .system(error) }
            switch kind {
            case .unixSocket: throw .descriptorRefused(BUS1_FD_UNIX_SOCKET.rawValue)
            case .memfd(let name) where name.hasPrefix("bus1-"): throw .descriptorRefused(BUS1_FD_BUS_OBJECT.rawValue)
            default: break
            }
        }
        // A handle the sender had once but not any more (its node was destroyed, or
        // it released it) travels as invalid; one it never had is refused.
        var keys: [NodeKey?] = []
        for handle in handles {
            guard let record = sender.handles[handle] else {
                guard handle < sender.nextHandle else { throw .handleUnknown }
                keys.append(nil)
                continue
            }
            keys.append(record.node)
        }
        try chargeFairShare(of: sender.uid, at: receiver, messages: 1 + keys.count, descriptors: descriptors.count)
        let newHandles = Set(keys.compactMap { $0 }.filter { $0.owner != receiver.id && receiver.handleByNode[$0] == nil })
        guard receiver.handles.count + newHandles.count <= configuration.maximumHandlesPerPeer else {
            throw .quota(BUS1_QUOTA_HANDLES.rawValue)
        }
        try accounts.check(.handles, newHandles.count, for: sender.uid)
        try chargeHandleShare(of: sender.uid, at: receiver, adding: newHandles.count)

        // Everything that can fail comes first (channels to the passed nodes' owners,
        // undone if one cannot be made); only then are handles installed and
        // announced, so a refused ATTACH leaves nothing behind in the receiver.
        let routes = try routes(to: keys, from: receiver, chargedTo: sender.uid)
        guard peers[receiver.id] != nil else { throw .handleUnknown }  // it went away meanwhile
        var ids: [UInt64] = []
        var waits: [(peer: UInt64, position: UInt64)] = []
        var owners: [AnyObject] = [receiver]
        for route in routes {
            switch route {
            case .invalid: ids.append(BUS1_INVALID_ID)  // destroyed before the message could carry it
            case .ownNode(let node): ids.append(node)   // the receiver's own node: its own id
            case .channel(let key, let owner, let channel):
                let handle = receiver.handleByNode[key] ?? {
                    defer { receiver.nextHandle += 1 }
                    return receiver.nextHandle
                }()
                addHandleReference(handle, for: key, to: receiver, chargedTo: sender.uid)
                owners.append(channel)
                owners.append(owner)
                if peers[owner.id] != nil, owner !== sender { waits.append((owner.id, owner.messagesAccepted)) }
                // The channel's fds always travel with an arrived handle: the channel may
                // exist while the receiver has not heard of it yet (its own lookup of the
                // owner made it, and that reply is still held for the owner), and this
                // event can overtake that reply. A receiver that knows the channel closes them.
                let grant = ControlMessage.HandleGrant(handle: handle, node: key.node, owner: owner.id, channel: channel.id,
                                                       capacity: UInt32(channel.capacity), newChannel: true, ownerUID: owner.uid)
                send(receiver, .handleArrived(grant), requestID: 0,
                     fds: [channel.memory.rawValue, owner.memory!.wake.rawValue], chargedTo: sender.uid)
                ids.append(handle)
            }
        }
        attachmentsInFlight.add(.init(channel: channelID, sequence: sequence, descriptors: descriptors.count), for: sender.uid)
        notify(receiver, .attachment(channel: channelID, handles: ids, fdCount: UInt32(descriptors.count), sequence: sequence),
               fds: descriptors.map(\.rawValue), chargedTo: sender.uid)
        guard peers[receiver.id] != nil else { throw .handleUnknown }
        waits.append((receiver.id, receiver.messagesAccepted))
        return Response(message: .ok, owners: owners + descriptors, after: waits)
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
                let (channel, isNew) = try self.channel(from: receiver, to: owner, node: key.node, chargedTo: uid)
                if isNew { made.append(channel.id) }
                // Announcing the channel to the owner can fail and remove the owner (it
                // died meanwhile): its nodes are destroyed and the channel is closed, and
                // the receiver has already been told so. Granting the handle now would
                // hand it a channel nobody will ever close again, and every slice it sent
                // there would stay lost (the crash-cleanup test's dead-receiver leak).
                guard peers[owner.id] === owner, channels[channel.id] === channel else { routes.append(.invalid); continue }
                routes.append(.channel(key, owner: owner, channel))
            }
        } catch {
            for id in made { closeChannel(id, reason: BUS1_CLOSE_BY_PEER.rawValue) }
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
        guard (mine + count) * 2 <= limit - others else { throw .quota(BUS1_QUOTA_HANDLES_SHARE.rawValue) }
    }

    /// The fair share of a receiver's control queue (as dbus-broker shares a
    /// receiver's buffers between users): a uid may add to what waits for one
    /// receiver only while it holds less than half of what the other uids leave
    /// free, so a flooding uid can take at most half, a second one half the rest,
    /// and the queue's limit is never reached through requests; and it may have at
    /// most ``CoordinatorConfiguration/maximumQueuedDescriptorsPerUID`` fds waiting.
    func chargeFairShare(of uid: UInt32, at receiver: PeerRecord, messages: Int, descriptors: Int) throws(RequestError) {
        let mine = receiver.queuedByUID[uid] ?? 0
        let others = receiver.outbox.count - mine
        let free = configuration.maximumQueuedControlMessages - others
        guard receiver.outbox.isEmpty || (mine + messages) * 2 <= free else { throw .quota(BUS1_QUOTA_MESSAGES.rawValue) }
        guard descriptors > 0 else { return }
        let inFlight = attachmentsInFlight.descriptors(of: uid) { entry in
            channels[entry.channel]?.hasTaken(entry.sequence) ?? true
        }
        guard (queuedDescriptorsByUID[uid] ?? 0) + inFlight + descriptors <= configuration.maximumQueuedDescriptorsPerUID else {
            throw .quota(BUS1_QUOTA_FDS.rawValue)
        }
    }
}
