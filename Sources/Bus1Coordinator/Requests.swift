import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// A reply and the fds it carries, borrowed from the tables (sendmsg duplicates
/// them). `owners` keeps the objects that own those fds alive until the reply is
/// sent: serving a request can remove a peer (a notification to it failed), and
/// its fds must not close under a reply still to go out.
struct Response {
    var message: ControlMessage
    var fds: [Int32] = []
    var owners: [AnyObject] = []
    /// The reply may go out only once each `peer`'s socket holds its message number
    /// `position` (an event the reply depends on, such as the grant of the node a
    /// new handle names): see ``Coordinator/dispatch(_:to:requestID:)``.
    var after: [(peer: UInt64, position: UInt64)] = []
    /// Undoes the request's effect if the reply can never go out as it is (the
    /// peer in `after` went away first); the requester then gets `nameUnknown`.
    var rollback: (() -> Void)?

    static var ok: Response { Response(message: .ok) }
}

/// Why a request was refused; becomes a `BUS1_MSG_ERROR`.
enum RequestError: Error {
    case protocolError
    case state
    case nameTaken, nameUnknown
    case handleUnknown, notOwner, permission
    case quota(UInt32)
    case descriptorRefused(UInt32)
    /// A pool segment refused (`bus1_segment_refusal`).
    case segment(UInt32)
    /// A held reply's peer did not take what it waited for in time; undone.
    case timedOut
    case system(LinuxError)

    var message: ControlMessage {
        switch self {
        case .protocolError: .error(code: BUS1_ERR_PROTOCOL.rawValue, detail: 0)
        case .state: .error(code: BUS1_ERR_STATE.rawValue, detail: 0)
        case .nameTaken: .error(code: BUS1_ERR_NAME_TAKEN.rawValue, detail: 0)
        case .nameUnknown: .error(code: BUS1_ERR_NAME_UNKNOWN.rawValue, detail: 0)
        case .handleUnknown: .error(code: BUS1_ERR_HANDLE_UNKNOWN.rawValue, detail: 0)
        case .notOwner: .error(code: BUS1_ERR_NOT_OWNER.rawValue, detail: 0)
        case .permission: .error(code: BUS1_ERR_PERMISSION.rawValue, detail: 0)
        case .quota(let which): .error(code: BUS1_ERR_QUOTA.rawValue, detail: which)
        case .descriptorRefused(let why): .error(code: BUS1_ERR_FD_REFUSED.rawValue, detail: why)
        case .segment(let why): .error(code: BUS1_ERR_SEGMENT.rawValue, detail: why)
        case .timedOut: .error(code: BUS1_ERR_TIMEOUT.rawValue, detail: 0)
        case .system(let e): .error(code: BUS1_ERR_INTERNAL.rawValue, detail: UInt32(bitPattern: e.code))
        }
    }
}

extension Coordinator {
    /// Serves one decoded request and returns its reply.
    func serve(_ message: ControlMessage, attached: [OwnedDescriptor] = [], from peer: PeerRecord) -> Response {
        do {
            switch (message, peer.state) {
            case (.introspect, .connected):
                return try beginInspection(peer)
            case (.getObjects(let first), .inspecting):
                return try objects(from: first, for: peer)
            case (.hello(let poolSize, let capacity), .connected):
                return try welcome(peer, poolSize: poolSize, ringCapacity: capacity)
            case (.poolMapped, .welcomed):
                return try sealPool(of: peer)
            case (.nodeCreate, .ready):
                return try createNode(for: peer)
            case (.namePublish(let handle, let name), .ready):
                return try publish(handle: handle, name: name, by: peer)
            case (.nameLookup(let name), .ready):
                return try lookup(name: name, by: peer)
            case (.handleRelease(let handle), .ready):
                return try release(handle: handle, by: peer)
            case (.nodeDestroy(let handles), .ready):
                return try destroy(handles, by: peer)
            case (.reset, .ready):
                return reset(peer)
            case (.segmentOpen(let segment), .ready):
                return try openSegment(segment, for: peer)
            case (.segmentSeal(let index), .ready):
                return try sealSegment(index, of: peer)
            case (.segmentGet(let channelID, let index), .ready):
                return try grantSegment(index, on: channelID, to: peer)
            case (.attach(let destination, let handles, _, let sequence), .ready):
                return try attach(handles, descriptors: attached, to: destination, sequence: sequence, by: peer)
            case (.violation(let channelID, let reason), .ready):
                return try reportViolation(channelID, reason: reason, by: peer)
            case (.channelClose(let channelID), .ready):
                guard let channel = channels[channelID], channel.sender == peer.id || channel.receiver == peer.id
                else { throw RequestError.handleUnknown }
                closeChannel(channelID, reason: BUS1_CLOSE_BY_PEER.rawValue)
                return .ok
            case (.orderingStall(let channelID), .ready):
                guard let channel = channels[channelID], channel.receiver == peer.id else { throw RequestError.handleUnknown }
                counters.orderingStalls.wrappingAdd(1, ordering: .relaxed)
                logger.warning("sender stalled mid-send past the receiver's timeout; order relaxed for liveness",
                               metadata: ["channel": "\(channelID)", "sender": "\(channel.sender)", "receiver": "\(peer.id)"])
                return .ok
            case (.hello, _), (.poolMapped, _), (.nodeCreate, _), (.namePublish, _), (.nameLookup, _),
                 (.handleRelease, _), (.violation, _), (.channelClose, _), (.orderingStall, _), (.introspect, _), (.getObjects, _),
                 (.nodeDestroy, _), (.reset, _), (.attach, _), (.segmentOpen, _), (.segmentSeal, _), (.segmentGet, _):
                throw RequestError.state
            default:
                // Replies and events are the coordinator's to send, never a peer's.
                throw RequestError.protocolError
            }
        } catch let error as RequestError {
            if case .protocolError = error { counters.protocolErrors.wrappingAdd(1, ordering: .relaxed) }
            return Response(message: error.message)
        } catch let error as LinuxError {
            // A memfd, seal or mapping the coordinator could not make (EMFILE at its fd
            // limit, ENOMEM): the peer gets the errno, not a misleading state error.
            return Response(message: RequestError.system(error).message)
        } catch {
            return Response(message: RequestError.state.message)
        }
    }

    private func welcome(_ peer: PeerRecord, poolSize requested: UInt64, ringCapacity requestedCapacity: UInt32) throws -> Response {
        // The payload area: a power of two, such that the whole pool (header, ledger,
        // payload) is at least what was asked for; never traps (see `pool(forRequest:)`).
        guard let (poolSize, layout) = configuration.pool(forRequest: requested) else { throw RequestError.quota(BUS1_QUOTA_POOL_BYTES.rawValue) }
        try accounts.check(.poolBytes, poolSize, for: peer.uid)
        let capacity = requestedCapacity == 0 ? configuration.defaultRingCapacity : Int(requestedCapacity)
        guard CoordinatorConfiguration.isRingCapacity(capacity) else { throw RequestError.protocolError }
        guard CoordinatorConfiguration.isRingCapacity(configuration.coordinatorRingCapacity) else { throw RequestError.state }
        do {
            let pool = try makeSegment(index: 0, size: poolSize, layout: layout, audience: [peer.uid], for: peer)
            let wake = try MemFD.create(name: "bus1-wake-\(peer.id)", size: Int(BUS1_PAGE_SIZE))
            try MemFD.addSeals([.shrink, .grow, .seal], to: wake)
            let wakeMapping = try Mapping(wake, count: Int(BUS1_PAGE_SIZE), writable: true)
            WakePage.initialize(wakeMapping, peer: peer.id)
            let page = try WakePage(wakeMapping)
            peer.memory = PeerMemory(wake: wake, wakeMapping: wakeMapping, wakePage: page)
            peer.segments = [pool]

            let ringID = nextChannel
            nextChannel += 1
            let geometry = ChannelGeometry(capacity: configuration.coordinatorRingCapacity)
            let ring = try MemFD.create(name: "bus1-notes-\(peer.id)", size: geometry.size)
            try MemFD.addSeals([.shrink, .grow, .seal], to: ring)
            let ringMapping = try Mapping(ring, count: geometry.size, writable: true)
            geometry.initialize(ringMapping, channel: ringID, sender: UInt64(BUS1_COORDINATOR_PEER), receiver: peer.id)
            let producer = SubmissionProducer(try ChannelMemory(ringMapping, channel: ringID, capacity: geometry.capacity))
            peer.notifications = NotificationRing(id: ringID, memory: ring, producer: producer)
        }
        peer.poolSize = poolSize
        accounts.add(.poolBytes, poolSize, to: peer.uid)
        peer.ringCapacity = capacity
        peer.state = .welcomed
        let flags = configuration.ordering == .fifo ? BUS1_WELCOME_FIFO_ONLY : 0
        let ring = peer.notifications!
        let welcome = ControlMessage.Welcome(peer: peer.id, poolSize: UInt64(poolSize), ringCapacity: UInt32(capacity), flags: flags,
                                             coordinatorRing: ring.id, coordinatorRingCapacity: UInt32(ring.producer.capacity))
        return Response(message: .welcome(welcome),
                        fds: [peer.segments[0].memory.rawValue, peer.memory!.wake.rawValue, clockDescriptor, ring.memory.rawValue], owners: [peer])
    }

    /// POOL_MAPPED: seals the pool (segment 0) like any segment; the handshake is done.
    private func sealPool(of peer: PeerRecord) throws -> Response {
        guard let pool = peer.segments.first else { throw RequestError.state }
        try pool.seal()
        peer.state = .ready
        finishHandshake(of: peer)
        return .ok
    }

    private func createNode(for peer: PeerRecord) throws(RequestError) -> Response {
        guard peer.ownedNodes.count < configuration.maximumNodesPerPeer else { throw .quota(BUS1_QUOTA_NODES.rawValue) }
        guard peer.handles.count < configuration.maximumHandlesPerPeer else { throw .quota(BUS1_QUOTA_HANDLES.rawValue) }
        try accounts.charge(.nodes, to: peer.uid)
        let id = peer.nextHandle
        peer.nextHandle += 1
        peer.ownedNodes.insert(id)
        addHandleReference(id, for: NodeKey(owner: peer.id, node: id), to: peer, chargedTo: peer.uid)
        return Response(message: .nodeCreated(handle: id))
    }

    private func publish(handle: UInt64, name: String, by peer: PeerRecord) throws(RequestError) -> Response {
        guard peer.ownedNodes.contains(handle) else {
            throw peer.handles[handle] == nil ? .handleUnknown : .notOwner
        }
        if let existing = names[name], peers[existing.owner] != nil { throw .nameTaken }
        names[name] = NodeKey(owner: peer.id, node: handle)
        return .ok
    }

    private func lookup(name: String, by peer: PeerRecord) throws(RequestError) -> Response {
        guard let key = names[name], let owner = peers[key.owner], owner.state == .ready else { throw .nameUnknown }
        guard owner.uid == peer.uid || peer.uid == 0 || configuration.nameLookup == .anyAllowedUID else { throw .permission }

        let handle: UInt64
        if let existing = peer.handleByNode[key] {
            handle = existing
        } else {
            guard peer.handles.count < configuration.maximumHandlesPerPeer else { throw .quota(BUS1_QUOTA_HANDLES.rawValue) }
            if owner.id != peer.id { try accounts.check(.handles, for: peer.uid) }
            handle = peer.nextHandle
            peer.nextHandle += 1
        }
        guard owner.id != peer.id else {
            addHandleReference(handle, for: key, to: peer, chargedTo: peer.uid)
            return Response(message: .handleGranted(.init(handle: handle, node: key.node, owner: owner.id,
                                                          channel: BUS1_INVALID_ID, capacity: 0, newChannel: false, ownerUID: owner.uid)))
        }
        try chargeFairShare(of: peer.uid, at: owner, messages: 1, descriptors: 0)
        let (channel, isNew) = try self.channel(from: peer, to: owner, node: key.node, chargedTo: peer.uid)
        // Telling the owner about the channel can fail and remove it (it died meanwhile).
        guard peers[owner.id] != nil, channels[channel.id] != nil else { throw .nameUnknown }
        addHandleReference(handle, for: key, to: peer, chargedTo: peer.uid)
        // Undone when the owner leaves or never reads its socket in time: the
        // handle reference goes, and a channel made for this lookup alone closes.
        let rollback = { [weak self, weak peer] in
            guard let self, let peer else { return }
            if self.dropHandleReference(handle, of: peer), isNew, let still = self.channels[channel.id], still.allowedNodes == [key.node] {
                self.closeChannel(channel.id, reason: BUS1_CLOSE_BY_PEER.rawValue)
            }
        }
        let grant = ControlMessage.HandleGrant(handle: handle, node: key.node, owner: owner.id, channel: channel.id,
                                               capacity: UInt32(channel.capacity), newChannel: isNew, ownerUID: owner.uid)
        // The owner must have the grant (and, for a new channel, its announcement) in
        // its socket before the requester can send: else a descriptor could reach it
        // naming a node it has not heard of, or carry a ticket its merge cannot see.
        return Response(message: .handleGranted(grant), fds: isNew ? [channel.memory.rawValue, owner.memory!.wake.rawValue] : [],
                        owners: [channel, owner], after: [(owner.id, owner.messagesAccepted)], rollback: rollback)
    }

    private func release(handle: UInt64, by peer: PeerRecord) throws(RequestError) -> Response {
        guard let record = peer.handles[handle] else { throw .handleUnknown }
        guard record.node.owner != peer.id else { throw .notOwner }  // an owner destroys its node instead
        if dropHandleReference(handle, of: peer), let note = releaseNotification(for: record.node, releasedBy: peer) {
            publish([note])
        }
        return .ok
    }

    /// A receiver reports that the sender broke the channel protocol: close the
    /// channel, tell both ends; nothing else is affected.
    private func reportViolation(_ channelID: UInt64, reason: UInt32, by peer: PeerRecord) throws(RequestError) -> Response {
        guard let channel = channels[channelID], channel.receiver == peer.id || channel.sender == peer.id else { throw .handleUnknown }
        counters.violationsReported.wrappingAdd(1, ordering: .relaxed)
        logger.warning("channel protocol violation; closing channel",
                       metadata: ["channel": "\(channelID)", "reporter": "\(peer.id)", "reason": "\(reason)",
                                  "sender": "\(channel.sender)", "receiver": "\(channel.receiver)"])
        closeChannel(channelID, reason: reason)
        return .ok
    }
}
