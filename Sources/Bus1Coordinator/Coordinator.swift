import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc
import Logging
import Synchronization

/// The bus coordinator: authenticates peers, creates and seals every memfd, owns
/// the node, handle, name and channel tables, and cleans up after dead peers.
///
/// It is on the control path only: data messages go peer to peer through
/// channels. One thread runs ``run()``; ``stop()`` may be called from any thread.
/// Every request gets exactly one reply; a malformed one gets
/// `BUS1_ERR_PROTOCOL` and the coordinator keeps serving.
public final class Coordinator: @unchecked Sendable {
    public let configuration: CoordinatorConfiguration
    let logger: Logger
    private let listener: FileDescriptor
    /// Whether ``shutdown()`` removes the socket path (not when systemd owns it).
    private let ownsAddress: Bool
    private let readiness: any ReadinessSource
    private let stopPipe: (read: Int32, write: Int32)
    let clockFD: FileDescriptor
    var clockDescriptor: Int32 { clockFD.rawValue }
    private let clockMapping: Mapping
    /// The bus clock: notifications take their tickets here like any send.
    let clock: ClockPage

    var peers: [UInt64: PeerRecord] = [:]
    var channels: [UInt64: ChannelRecord] = [:]
    var names: [String: NodeKey] = [:]
    private var nextPeer: UInt64 = 1
    var nextChannel: UInt64 = 1
    /// Fds in attachments waiting in outboxes, by the uid that attached them.
    var queuedDescriptorsByUID: [UInt32: Int] = [:]
    /// One datagram; a byte larger than the largest valid one, so oversize shows as such.
    private let receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(BUS1_MSG_MAX) + 1, alignment: 8)

    private static let listenerToken: UInt64 = 1
    private static let stopToken: UInt64 = 2

    /// Counters, readable from any thread (tests, operators) while the loop runs.
    let counters = Counters()
    /// Malformed control datagrams answered with BUS1_ERR_PROTOCOL.
    public var protocolErrors: Int { counters.protocolErrors.load(ordering: .relaxed) }
    /// Channels closed because a receiver reported its sender breaking the protocol.
    public var violationsReported: Int { counters.violationsReported.load(ordering: .relaxed) }
    /// Stalled senders reported by receivers (BUS1_MSG_ORDERING_STALL).
    public var orderingStalls: Int { counters.orderingStalls.load(ordering: .relaxed) }
    /// Connected peers.
    public var peerCount: Int { counters.peers.load(ordering: .relaxed) }

    final class Counters: Sendable {
        let protocolErrors = Atomic<Int>(0)
        let violationsReported = Atomic<Int>(0)
        let orderingStalls = Atomic<Int>(0)
        let peers = Atomic<Int>(0)
    }

    /// The readiness mechanism in use (`io_uring` or `poll(2)`).
    public var eventMechanism: String { readiness.mechanism }

    /// Checks the configuration (``CoordinatorConfiguration/validate()``), then
    /// binds its address (``BusListener/bind(path:)``): refuses a path a live bus
    /// serves and anything that is not a socket; replaces a stale socket file
    /// nobody listens on.
    public convenience init(configuration: CoordinatorConfiguration, logger: Logger = Logger(label: "bus1d")) throws(CoordinatorError) {
        do { try configuration.validate() } catch { throw .invalidConfiguration(error) }
        try self.init(configuration: configuration, listener: try BusListener.bind(path: configuration.address), logger: logger)
    }

    /// Serves on `listener`, bound here or handed over (socket activation); the
    /// configuration's address becomes the listener's. Removes the socket path at
    /// shutdown only if `listener` owns it.
    public init(configuration: CoordinatorConfiguration, listener: consuming BusListener,
                logger: Logger = Logger(label: "bus1d")) throws(CoordinatorError) {
        var configuration = configuration
        configuration.address = listener.address
        do { try configuration.validate() } catch { throw .invalidConfiguration(error) }
        self.configuration = configuration
        self.logger = logger
        ownsAddress = listener.ownsAddress
        self.listener = listener.socket
        do {
            var fds: [Int32] = [-1, -1]
            try retryingLibcOnInterrupt("pipe") { pipe(&fds) }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC); _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
            stopPipe = (fds[0], fds[1])

            clockFD = try MemFD.create(name: "bus1-clock", size: Int(BUS1_PAGE_SIZE))
            try MemFD.addSeals([.shrink, .grow, .seal], to: clockFD)
            clockMapping = try Mapping(clockFD, count: Int(BUS1_PAGE_SIZE), writable: true)
            ClockPage.initialize(clockMapping)
            clock = try ClockPage(clockMapping)
        } catch let error as CoordinatorError {
            throw error
        } catch let error as LinuxError {
            throw .system(error)
        } catch {
            throw .system(LinuxError("coordinator setup: \(error)", code: EIO))
        }

        switch configuration.eventBackend {
        case .poll:
            readiness = PollReadiness()
        case .ioUring:
            do { readiness = try IOURingReadiness() } catch { throw .system(error) }
        case .automatic:
            do {
                readiness = try IOURingReadiness()
            } catch {
                logger.warning("io_uring unavailable, falling back to poll(2)", metadata: ["error": "\(error)"])
                readiness = PollReadiness()
            }
        }
    }

    deinit {
        receiveBuffer.deallocate()
        close(stopPipe.read)
        close(stopPipe.write)
    }

    /// Called on ``run()``'s thread each time the loop turns, and at least every
    /// `interval` while it waits (the wait times out then): `bus1d` pings systemd's
    /// watchdog from here, so a loop that hangs stops the pings. Set it before
    /// ``run()``; nil (the default) lets the loop wait without a timeout.
    public var onTurn: (interval: Duration, action: () -> Void)?

    /// Asks ``run()`` to return. Safe from any thread and from signal handlers.
    public func stop() {
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
    }

    /// Serves until ``stop()``; then disconnects every peer and removes the socket.
    public func run() throws(CoordinatorError) {
        logger.info("bus1 coordinator listening", metadata: ["address": "\(configuration.address)", "loop": "\(readiness.mechanism)"])
        do {
            try readiness.watch(listener.rawValue, token: Self.listenerToken)
            try readiness.watch(stopPipe.read, token: Self.stopToken)
            loop: while true {
                onTurn?.action()
                let turnTimeout = onTurn.map { Int64($0.interval / .nanoseconds(1)) }
                for token in try readiness.wait(timeoutNanoseconds: turnTimeout) {
                    switch token {
                    case Self.stopToken: break loop
                    case Self.listenerToken:
                        acceptAll()
                        try readiness.watch(listener.rawValue, token: Self.listenerToken)
                    default:
                        try handle(token: token)
                    }
                }
            }
        } catch {
            shutdown()
            throw .system(error)
        }
        shutdown()
    }

    private func shutdown() {
        for id in Array(peers.keys) { removePeer(id, reason: "coordinator stopping") }
        if ownsAddress { unlink(configuration.address) }
        logger.info("bus1 coordinator stopped")
    }

    // MARK: Connections

    private func acceptAll() {
        while true {
            let socket: FileDescriptor
            do {
                guard let s = try SeqPacket.accept(listener) else { return }
                socket = s
            } catch {
                logger.error("accept failed", metadata: ["error": "\(error)"])
                return
            }
            admit(socket)
        }
    }

    private func admit(_ socket: consuming FileDescriptor) {
        let credentials: (pid: Int32, uid: UInt32, gid: UInt32)
        do { credentials = try SeqPacket.peerCredentials(socket) } catch {
            logger.warning("no peer credentials; refusing", metadata: ["error": "\(error)"])
            return
        }
        guard configuration.allowedUIDs.contains(credentials.uid) else {
            logger.warning("refusing peer: uid not allowed", metadata: ["uid": "\(credentials.uid)", "pid": "\(credentials.pid)"])
            sendDirect(socket.rawValue, .error(code: BUS1_ERR_PERMISSION.rawValue, detail: 0), requestID: 0)
            return
        }
        let sameUID = peers.values.count { $0.uid == credentials.uid && $0.state != .inspecting }
        guard sameUID < configuration.maximumPeersPerUID else {
            sendDirect(socket.rawValue, .error(code: BUS1_ERR_QUOTA.rawValue, detail: BUS1_QUOTA_PEERS.rawValue), requestID: 0)
            return
        }
        let pidfd: OwnedDescriptor?
        do { pidfd = OwnedDescriptor(try SeqPacket.peerProcess(socket, pid: credentials.pid)) } catch {
            pidfd = nil  // the socket hang-up still reports the peer's death
            logger.debug("no pidfd for peer", metadata: ["error": "\(error)"])
        }
        let id = nextPeer
        nextPeer += 1
        let peer = PeerRecord(id: id, socket: socket, pidfd: pidfd, pid: credentials.pid, uid: credentials.uid)
        peers[id] = peer
        counters.peers.store(connectedPeers(), ordering: .relaxed)
        do {
            try readiness.watch(peer.socket.rawValue, token: peer.socketToken)
            if let fd = peer.pidfd?.rawValue { try readiness.watch(fd, token: peer.pidfdToken) }
        } catch {
            removePeer(id, reason: "cannot watch: \(error)")
            return
        }
        logger.debug("peer connected", metadata: ["peer": "\(id)", "pid": "\(credentials.pid)", "uid": "\(credentials.uid)"])
    }

    private func handle(token: UInt64) throws(LinuxError) {
        let id = token >> 2
        guard let peer = peers[id] else { return }  // fired after removal
        if token & 3 == 1 {
            removePeer(id, reason: "process exited")
            return
        }
        if token & 3 == 2 {
            flushOutbox(of: peer)
            return
        }
        // Serve every queued datagram, then re-arm.
        while peers[id] != nil {
            guard receiveOne(from: peer) else { break }
        }
        if peers[id] != nil { try readiness.watch(peer.socket.rawValue, token: peer.socketToken) }
    }

    /// Reads and serves one datagram; false when none is queued or the peer went away.
    private func receiveOne(from peer: PeerRecord) -> Bool {
        var datagram: SeqPacket.Datagram
        do {
            guard let received = try SeqPacket.receive(peer.socket.rawValue, into: receiveBuffer,
                                                       maxDescriptors: Int(BUS1_MSG_MAX_FDS), dontWait: true)
            else { return false }
            datagram = received
        } catch {
            removePeer(peer.id, reason: "recvmsg failed: \(error)")
            return false
        }
        if datagram.isHangUp {
            removePeer(peer.id, reason: "disconnected")
            return false
        }
        let decoded: (message: ControlMessage, requestID: UInt32)
        do {
            if datagram.truncated { throw ProtocolError.cutByKernel }
            decoded = try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: receiveBuffer[..<datagram.count]),
                                                descriptorCount: datagram.fds.count)
        } catch {
            counters.protocolErrors.wrappingAdd(1, ordering: .relaxed)
            logger.warning("malformed control message", metadata: ["peer": "\(peer.id)", "error": "\(error)"])
            reply(peer, .error(code: BUS1_ERR_PROTOCOL.rawValue, detail: 0), requestID: 0)
            return true  // the datagram's fds are closed with it
        }
        // Only ATTACH carries fds (the decoder checked the count); they become the coordinator's.
        let attached = datagram.takeDescriptors().map { OwnedDescriptor(FileDescriptor(adopting: $0)) }
        let response = serve(decoded.message, attached: attached, from: peer)
        guard peers[peer.id] != nil else { return true }
        dispatch(response, to: peer.id, requestID: decoded.requestID)
        return true
    }

    /// Sends a reply once every peer in its `after` list that is still connected
    /// has the message it depends on in its socket; until then it waits on the
    /// first such peer (see ``flushOutbox(of:)``).
    func dispatch(_ response: Response, to requester: UInt64, requestID: UInt32) {
        guard let peer = peers[requester] else { return }
        for condition in response.after {
            if let other = peers[condition.peer], other.messagesDelivered < condition.position {
                other.heldReplies.append(HeldReply(position: condition.position, requester: requester, requestID: requestID, response: response))
                return
            }
        }
        reply(peer, response, requestID: requestID)
    }

    // MARK: Sending

    /// Sends without blocking. A socket that is full (the kernel holds only what
    /// fits the coordinator's send buffer: a few hundred small datagrams) parks the
    /// message, and every later one, in the peer's outbox until it has room, so a
    /// peer busy for a moment misses nothing (a burst of grants or channel
    /// closes when many peers come and go overflowed it before); only a peer that lets
    /// more than ``CoordinatorConfiguration/maximumQueuedControlMessages`` pile up
    /// is not reading its socket, and is disconnected rather than allowed to grow
    /// the coordinator without bound.
    /// `chargedTo`: the uid whose request caused the message, when it is not the
    /// peer's own; what waits in the outbox counts against that uid's fair share.
    @discardableResult
    func send(_ peer: PeerRecord, _ message: ControlMessage, requestID: UInt32, fds: [Int32] = [], chargedTo: UInt32? = nil) -> Bool {
        let bytes = message.encode(requestID: requestID)
        if peer.outbox.isEmpty {
            do {
                try SeqPacket.send(peer.socket.rawValue, bytes, fds: fds, dontWait: true)
                peer.messagesAccepted += 1
                peer.messagesDelivered += 1
                return true
            } catch where error.code == EAGAIN {
                // queue below
            } catch {
                if error.code != EPIPE && error.code != ECONNRESET {
                    logger.warning("cannot send to peer; disconnecting it", metadata: ["peer": "\(peer.id)", "error": "\(error)"])
                }
                removePeer(peer.id, reason: "send failed: \(error)")
                return false
            }
        }
        guard peer.outbox.count < configuration.maximumQueuedControlMessages else {
            logger.warning("peer does not read its control socket; disconnecting it",
                           metadata: ["peer": "\(peer.id)", "queued": "\(peer.outbox.count)"])
            removePeer(peer.id, reason: "control queue overflow")
            return false
        }
        do {
            var owned: [OwnedDescriptor] = []
            for fd in fds { owned.append(OwnedDescriptor(try FileDescriptor.duplicating(fd))) }
            peer.outbox.append(QueuedMessage(bytes: bytes, fds: owned, chargedTo: chargedTo))
            if let uid = chargedTo {
                peer.queuedByUID[uid, default: 0] += 1
                queuedDescriptorsByUID[uid, default: 0] += fds.count
            }
            peer.messagesAccepted += 1
            if peer.outbox.count == 1 { try readiness.watch(peer.socket.rawValue, token: peer.writableToken, writable: true) }
            return true
        } catch {
            removePeer(peer.id, reason: "cannot queue a control message: \(error)")
            return false
        }
    }

    /// Sends what the outbox holds until the socket is full again, tells the peer
    /// to look (it reads its socket only when `control_seq` moves), and then lets
    /// out the replies to others that waited for what was just delivered.
    private func flushOutbox(of peer: PeerRecord) {
        while let next = peer.outbox.first {
            do {
                try SeqPacket.send(peer.socket.rawValue, next.bytes, fds: next.fds.map(\.rawValue), dontWait: true)
                uncharge(peer.outbox.removeFirst(), at: peer)
                peer.messagesDelivered += 1
            } catch where error.code == EAGAIN {
                do { try readiness.watch(peer.socket.rawValue, token: peer.writableToken, writable: true) } catch {
                    removePeer(peer.id, reason: "cannot watch: \(error)")
                    return
                }
                break
            } catch {
                removePeer(peer.id, reason: "send failed: \(error)")
                return
            }
        }
        announceControl(to: peer)
        while let held = peer.heldReplies.first, held.position <= peer.messagesDelivered {
            peer.heldReplies.removeFirst()
            dispatch(held.response, to: held.requester, requestID: held.requestID)
        }
    }

    /// A queued message left the outbox (sent, or dropped with its peer).
    private func uncharge(_ message: QueuedMessage, at peer: PeerRecord) {
        guard let uid = message.chargedTo else { return }
        peer.queuedByUID[uid, default: 1] -= 1
        if peer.queuedByUID[uid] == 0 { peer.queuedByUID[uid] = nil }
        queuedDescriptorsByUID[uid, default: message.fds.count] -= message.fds.count
        if queuedDescriptorsByUID[uid] == 0 { queuedDescriptorsByUID[uid] = nil }
    }

    private func sendDirect(_ socket: Int32, _ message: ControlMessage, requestID: UInt32) {
        let bytes = message.encode(requestID: requestID)
        try? SeqPacket.send(socket, bytes, dontWait: true)
    }

    private func reply(_ peer: PeerRecord, _ response: Response, requestID: UInt32) {
        _ = withExtendedLifetime(response.owners) {
            send(peer, response.message, requestID: requestID, fds: response.fds)
        }
    }

    private func reply(_ peer: PeerRecord, _ message: ControlMessage, requestID: UInt32) {
        send(peer, message, requestID: requestID)
    }

    /// Queues an event and makes sure the peer looks: bump `control_seq`, ring.
    func notify(_ peer: PeerRecord, _ message: ControlMessage, fds: [Int32] = [], chargedTo: UInt32? = nil) {
        guard send(peer, message, requestID: 0, fds: fds, chargedTo: chargedTo) else { return }
        if peer.outbox.isEmpty { announceControl(to: peer) }  // else the flush announces it
    }

    /// Bumps `control_seq` and rings: the peer reads its socket when it sees the bump.
    private func announceControl(to peer: PeerRecord) {
        guard let page = peer.wakePage else { return }
        _ = page.controlSequence.fetchAddReleasing(1)  // the events are in the socket before the peer can see the bump
        page.ring()
    }

    // MARK: Peer removal

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
        // Replies that waited for this peer to hear of something never will: a
        // reply that can be undone (a lookup's grant) is undone and refused; any
        // other goes on to its remaining conditions.
        let held = peer.heldReplies
        peer.heldReplies.removeAll()
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
        guard let poolReadOnly = sender.poolReadOnly?.rawValue, let senderWake = sender.memory?.wake.rawValue else { throw .state }
        let id = nextChannel
        nextChannel += 1
        let geometry = ChannelGeometry(capacity: receiver.ringCapacity)
        let record: ChannelRecord
        do {
            let fd = try MemFD.create(name: "bus1-channel-\(id)", size: geometry.size)
            try MemFD.addSeals([.shrink, .grow, .seal], to: fd)
            let mapping = try Mapping(fd, count: geometry.size, writable: true)
            geometry.initialize(mapping, channel: id, sender: sender.id, receiver: receiver.id)
            record = ChannelRecord(id: id, sender: sender.id, receiver: receiver.id, capacity: geometry.capacity, memory: fd)
        } catch {
            throw .system(error)
        }
        record.allowedNodes.insert(node)
        channels[id] = record
        sender.outbound[receiver.id] = id
        receiver.inbound.insert(id)
        // The receiver learns of the channel before the sender can use it.
        notify(receiver, .channelOpened(.init(channel: id, sender: sender.id, node: node,
                                              senderPoolSize: UInt64(sender.poolSize), capacity: UInt32(geometry.capacity))),
               fds: [record.memory.rawValue, poolReadOnly, senderWake], chargedTo: uid)
        return (record, true)
    }
}

/// Why the coordinator could not start or had to stop.
public enum CoordinatorError: Error, CustomStringConvertible, Sendable {
    /// A live bus already serves this socket path.
    case addressInUse(String)
    /// The path exists and is not a socket (a file, a directory, a symlink): left untouched.
    case addressNotASocket(String)
    /// A socket handed over (socket activation) that a bus cannot serve on.
    case unusableListener(String)
    /// A setting out of range (``CoordinatorConfiguration/validate()``).
    case invalidConfiguration(ConfigurationError)
    case system(LinuxError)

    public var description: String {
        switch self {
        case .addressInUse(let path): "a bus is already running at \(path)"
        case .addressNotASocket(let path): "\(path) exists and is not a socket; refusing to replace it"
        case .unusableListener(let why): "cannot serve on the socket handed over: \(why)"
        case .invalidConfiguration(let error): "invalid configuration: \(error)"
        case .system(let error): "\(error)"
        }
    }
}
