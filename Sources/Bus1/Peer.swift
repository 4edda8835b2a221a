import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// Options for ``Peer/connect(options:)``.
public struct PeerOptions: Sendable {
    /// Bus socket path; nil: `$BUS1_ADDRESS`, else `$XDG_RUNTIME_DIR/bus1/bus`, else `/tmp/bus1-<uid>/bus`.
    public var address: String?
    /// Bytes of this peer's pool, header included; 0: the coordinator's default (64 MiB).
    public var poolSize: Int = 0
    /// Entries per inbound ring (a power of two); 0: the coordinator's default (256).
    public var ringCapacity: Int = 0
    /// How this peer parks when it waits.
    public var parkBackend: ParkBackend = .automatic
    /// The wait mode of ``Peer/receive(mode:timeoutNanoseconds:)`` when it is given none.
    public var waitMode: WaitMode = .default
    /// How long a receiver waits for a sender that marked a channel as staging
    /// (it took or is taking a ticket) before it delivers later tickets anyway and
    /// reports the stall. Liveness wins over order past this point.
    public var orderingStallTimeoutNanoseconds: UInt64 = 250_000_000
    /// Most destinations of one multicast.
    public var maximumMulticast: Int = 256

    /// How long ``Peer/connect(options:)`` may take, from connect to a sealed pool,
    /// before it fails with ``Bus1Error/timedOut`` (a coordinator at its fd limit
    /// leaves connections waiting in its backlog).
    public var connectTimeout: Duration = .seconds(30)
    public init(address: String? = nil) { self.address = address }
}

/// Counters of one peer.
public struct PeerStatistics: Sendable, Equatable {
    public var messagesSent = 0
    public var messagesReceived = 0
    /// Bytes of this peer's pool in loaned or sent slices.
    public var poolBytesInUse = 0
    /// Loaned or sent slices of this peer's pool.
    public var slicesInUse = 0
    /// Inbound channels closed because their sender broke the protocol.
    public var violationsDetected = 0
    /// Times a staged sender stalled past the timeout and later tickets were
    /// delivered before its message (reported to the coordinator each time).
    public var orderingStalls = 0
    /// Times this peer parked (slept on its doorbell).
    public var parks = 0
    /// Times the bus clock handed this peer a value no honest clock could: below a
    /// ticket it had already used (another peer rewound or wrapped it; one per
    /// incident) or far beyond honest reach (jumped). Its tickets kept rising
    /// anyway (see `MonotonicTickets`).
    public var clockAnomalies = 0
}

/// A connection to a bus: owns nodes, holds handles, sends and receives.
///
/// Use one `Peer` from one thread at a time (it is not `Sendable`). Its hot
/// properties are `@exclusivity(unchecked)`: that contract, not a runtime check,
/// keeps their accesses exclusive (the check cost ~20% of a busy-poll round trip). Payloads are
/// written once into this peer's pool (``loan(_:wait:)``) and read in place by
/// receivers (``Message/payload``); nothing is copied.
public final class Peer {
    /// This peer's id on the bus.
    public let id: UInt64
    /// The parking mechanism in use, and why it is not io_uring if it is not.
    public let parkMechanism: String
    public let parkFallbackReason: String?
    /// The bus's ordering: global causal order, or per-channel FIFO only.
    public let ordering: BusOrdering

    let socket: FileDescriptor
    let options: PeerOptions
    /// This peer's pool: segment 0 for its own uid, more for other audiences.
    @exclusivity(unchecked) var pool: SegmentedPool
    let wakeMapping: Mapping
    let wake: WakePage
    let clockMapping: Mapping
    let clock: ClockPage
    let waiter: DoorbellWaiter

    @exclusivity(unchecked) var outbound: [UInt64: OutboundChannel] = [:]
    /// Pool tags of the open outbound channels; a closed channel's tag is reused
    /// (its slices were all reclaimed when it closed).
    var channelTags = ChannelTags()
    @exclusivity(unchecked) var inbound: [InboundChannel] = []
    /// The coordinator ring: notifications, merged with `inbound` by ticket
    /// (kept apart so a peer with one data channel keeps its single-channel path).
    let coordinatorRing: InboundChannel
    /// Whether the coordinator ring may hold or be staging a notification: set
    /// whenever `control_seq` moves (the coordinator bumps it after staging the
    /// ring), cleared when the ring is seen empty and unstaged.
    @exclusivity(unchecked) var ringMayHoldNotifications = true
    @exclusivity(unchecked) var handles: [UInt64: HandleTarget] = [:]
    @exclusivity(unchecked) var events: [PeerEvent] = []
    /// This peer's nodes it destroyed, with the destruction's ticket: messages to
    /// them with a later ticket are dropped (checked only while it is not empty).
    @exclusivity(unchecked) var destroyedNodes: [UInt64: UInt64] = [:]
    /// Handles the library must give back (attachments of messages that were
    /// dropped); released at the next top-level call, never inside a request.
    var pendingReleases: [UInt64] = []
    let violationInbox = ViolationInbox()
    @exclusivity(unchecked) var statistics = PeerStatistics()
    private var seenControlSequence: UInt64 = 0
    /// FIFO-only buses: where the next round-robin receive starts.
    @exclusivity(unchecked) var nextInbound = 0
    /// The send protocol: staging, tickets (never below this peer's last,
    /// whatever the shared clock says), wake-ups.
    @exclusivity(unchecked) var publisher: Publisher
    /// Scratch space of a multicast: the lanes it publishes on, reused.
    @exclusivity(unchecked) var lanes: [PublishLane] = []
    /// Where a waiting ``receive(mode:timeoutNanoseconds:)`` parks the message it
    /// found (a stored slot, not a captured local: no box, no metadata lookups).
    @exclusivity(unchecked) var received: Message?
    /// Scratch space of ``sendBatch(to:count:sliceSize:wait:fill:)``, reused.
    @exclusivity(unchecked) var batchOffsets: [UInt64] = []

    private var nextRequestID: UInt32 = 1
    private var isDisconnected = false
    /// One control datagram; a byte larger than the largest valid one, so oversize shows.
    private let controlBuffer = ControlBuffer()
    private var receiveBuffer: UnsafeMutableRawBufferPointer { controlBuffer.bytes }

    /// Where a handle leads.
    struct HandleTarget {
        let node: UInt64
        let owner: UInt64
        /// The owner's uid: who must be able to read what is sent to the node.
        let ownerUID: UInt32
        var route: Route
        /// The node was destroyed (this peer saw the notification, or destroyed its own node).
        var isDestroyed = false

        /// How a send to the node travels.
        enum Route {
            /// One of this peer's own nodes: nothing to send on.
            case own
            case open(OutboundChannel)
            /// The channel to the owner closed (and is unmapped): sends fail with why.
            case closed(peer: UInt64, reason: CloseReason)
        }

        /// The open channel to the node's owner, if there is one.
        var channel: OutboundChannel? {
            if case .open(let channel) = route { return channel }
            return nil
        }
    }

    /// Connects to a bus: HELLO, maps the pool, wake page and clock the
    /// coordinator made, and waits until the pool is sealed against other writers.
    public static func connect(options: PeerOptions = PeerOptions()) throws(Bus1Error) -> Peer {
        try Peer(options: options)
    }

    private init(options: PeerOptions) throws(Bus1Error) {
        self.options = options
        let address = options.address ?? Self.defaultAddress()
        do {
            let (seconds, attoseconds) = options.connectTimeout.components
            socket = try SeqPacket.connect(path: address, timeoutNanoseconds: max(1, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        } catch {
            switch error.code {
            case ENOENT, ECONNREFUSED: throw .noBus(address: address, cause: error)
            case EAGAIN: throw .timedOut
            default: throw .system(error)
            }
        }
        do {
            let (parker, fallback) = try options.parkBackend.makeParker()
            parkMechanism = parker.mechanism
            parkFallbackReason = fallback

            // HELLO -> WELCOME(pool, wake page, clock page, coordinator ring)
            var (reply, fds) = try Self.roundTrip(socket.rawValue, .hello(poolSize: UInt64(options.poolSize), ringCapacity: UInt32(options.ringCapacity)),
                                                  requestID: 1, buffer: controlBuffer.bytes)
            defer { for fd in fds { close(fd) } }
            guard case .welcome(let welcome) = reply else {
                if case .error(let code, let detail) = reply { throw Bus1Error.refused(Refusal(code: code, detail: detail)) }
                throw Bus1Error.protocolViolation("expected WELCOME, got \(reply)")
            }
            let peerID = welcome.peer, poolSize = welcome.poolSize
            ordering = welcome.flags & BUS1_WELCOME_FIFO_ONLY != 0 ? .fifo : .global
            let pool = FileDescriptor(adopting: fds[0]), wakeFD = FileDescriptor(adopting: fds[1]), clockFD = FileDescriptor(adopting: fds[2])
            let ringFD = FileDescriptor(adopting: fds[3])
            fds = []
            guard try pool.size() == Int(poolSize), let layout = bus1_pool_layout(poolSize: Int(poolSize)) else {
                throw Bus1Error.protocolViolation("pool size does not match WELCOME or is not a valid pool layout")
            }
            id = peerID
            // Segment 0's audience is the uid the coordinator saw connect (SO_PEERCRED: the effective uid).
            self.pool = SegmentedPool(pool: try Mapping(pool, count: Int(poolSize), writable: true), layout: layout, ownerUID: geteuid())
            wakeMapping = try Mapping(wakeFD, count: Int(BUS1_PAGE_SIZE), writable: true)
            clockMapping = try Mapping(clockFD, count: Int(BUS1_PAGE_SIZE), writable: true)
            wake = try WakePage(wakeMapping)
            clock = try ClockPage(clockMapping)
            publisher = Publisher(ordering: ordering, clock: clock)
            waiter = DoorbellWaiter(page: wake, parker: parker)
            seenControlSequence = wake.controlSequence.loadAcquiring()

            // The coordinator ring: notifications, merged with data by ticket.
            let ringCapacity = Int(welcome.coordinatorRingCapacity)
            guard ChannelGeometry.isValid(capacity: ringCapacity) else {
                throw Bus1Error.protocolViolation("coordinator ring capacity \(ringCapacity)")
            }
            let ringMemory = try ChannelMemory(try Mapping(ringFD, count: ChannelGeometry(capacity: ringCapacity).size, writable: true),
                                               channel: welcome.coordinatorRing, capacity: ringCapacity)
            coordinatorRing = InboundChannel(id: welcome.coordinatorRing, sender: UInt64(BUS1_COORDINATOR_PEER),
                                          consumer: SubmissionConsumer(ringMemory, acceptedFlags: [BUS1_NOTE_NODE_DESTROYED.rawValue, BUS1_NOTE_NODE_RELEASED.rawValue]),
                                          memory: nil, senderWake: nil, firstNode: nil, violations: violationInbox)

            // POOL_MAPPED -> OK: from now on nobody else can map the pool writable.
            let (sealed, _) = try Self.roundTrip(socket.rawValue, .poolMapped, requestID: 2, buffer: controlBuffer.bytes)
            if case .error(let code, let detail) = sealed { throw Bus1Error.refused(Refusal(code: code, detail: detail)) }
            guard sealed == .ok else { throw Bus1Error.protocolViolation("pool sealing failed: \(sealed)") }
            guard try MemFD.seals(of: pool).isSuperset(of: [.shrink, .grow, .futureWrite]) else {
                throw Bus1Error.protocolViolation("pool not sealed against future writes")
            }
            nextRequestID = 3
            try SeqPacket.setTimeouts(socket.rawValue, nanoseconds: nil)  // requests from now on wait as their callers ask
        } catch let error as Bus1Error {
            throw error
        } catch let error as LinuxError {
            throw .system(error)
        } catch let error as WireError {
            throw .protocolViolation("\(error)")
        } catch let error as ParkerUnavailable {
            throw .system(LinuxError(error.reason, code: ENOSYS))
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    /// The default bus address (see ``PeerOptions/address``).
    public static func defaultAddress() -> String { BusAddress.fromEnvironment() }

    /// Counters, with the pool figures as of now.
    public var currentStatistics: PeerStatistics {
        var s = statistics
        s.poolBytesInUse = pool.bytesInUse
        s.slicesInUse = pool.slicesInUse
        return s
    }

    /// The largest payload one message can carry.
    public var maximumPayload: Int { min(pool.largestSlice, Int(UInt32.max)) }

    /// Events since the last call, oldest first.
    public func takeEvents() -> [PeerEvent] {
        defer { events.removeAll() }
        return events
    }

    /// Leaves the bus: closes the socket (the coordinator destroys this peer's
    /// nodes and releases its handles in one step, and tears down its channels and
    /// names). Messages and loans still alive stay readable.
    public func disconnect() {
        guard !isDisconnected else { return }
        isDisconnected = true
        shutdown(socket.rawValue, Int32(SHUT_RDWR))
    }

    // MARK: Nodes, names, handles

    /// Creates a node owned by this peer; the returned handle names it.
    public func createNode() throws(Bus1Error) -> Handle {
        guard case .nodeCreated(let handle) = try request(.nodeCreate).message else { throw .protocolViolation("expected NODE_CREATED") }
        handles[handle] = HandleTarget(node: handle, owner: id, ownerUID: pool.ownerUID, route: .own)
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
        var (reply, fds) = try request(.nameLookup(name: name))
        defer { for fd in fds { close(fd) } }
        guard case .handleGranted(let grant) = reply else { throw .protocolViolation("expected HANDLE_GRANTED") }
        try install(grant, fds: &fds)
        return Handle(id: grant.handle)
    }

    /// Records a handle the coordinator granted (by lookup or in an attachment),
    /// mapping the channel to the node's owner if it is new (`fds`: its channel
    /// and the owner's wake page, taken).
    private func install(_ grant: ControlMessage.HandleGrant, fds: inout [Int32]) throws(Bus1Error) {
        if grant.owner == id {
            handles[grant.handle] = HandleTarget(node: grant.node, owner: id, ownerUID: pool.ownerUID, route: .own)
            return
        }
        let channel: OutboundChannel
        if let existing = outbound[grant.channel] {
            channel = existing  // fds that came along anyway close with the event
        } else if grant.newChannel {
            let channelFD = FileDescriptor(adopting: fds[0]), wakeFD = FileDescriptor(adopting: fds[1])
            fds = []
            channel = try openOutbound(grant, channelFD: channelFD, receiverWakeFD: wakeFD)
        } else {
            throw .protocolViolation("a handle grant names an unknown channel")
        }
        handles[grant.handle] = HandleTarget(node: grant.node, owner: grant.owner, ownerUID: grant.ownerUID, route: .open(channel))
    }

    /// ``lookup(_:)``, retrying every millisecond while the name is not published
    /// yet, for up to `waitingUpToNanoseconds` (for peers that start together).
    public func lookup(_ name: String, waitingUpToNanoseconds timeout: UInt64) throws(Bus1Error) -> Handle {
        let deadline = monotonicNanoseconds() &+ timeout
        while true {
            do {
                return try lookup(name)
            } catch .refused(.nameUnknown) where monotonicNanoseconds() < deadline {
                usleep(1000)
            }
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

    private func openOutbound(_ grant: ControlMessage.HandleGrant, channelFD: consuming FileDescriptor,
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

    // MARK: Control socket

    /// Sends a request and reads until its reply, serving events that arrive first.
    @discardableResult
    func request(_ message: ControlMessage, fds attached: [Int32] = []) throws(Bus1Error) -> (message: ControlMessage, fds: [Int32]) {
        guard !isDisconnected else { throw .coordinatorGone }
        let requestID = nextRequestID
        nextRequestID = nextRequestID == .max ? 3 : nextRequestID + 1
        do {
            try SeqPacket.send(socket.rawValue, message.encode(requestID: requestID), fds: attached)
        } catch {
            throw error.code == EPIPE || error.code == ECONNRESET ? .coordinatorGone : .system(error)
        }
        while true {
            let (reply, replyID, fds) = try receiveControl(blocking: true)!
            if replyID == requestID {
                if case .error(let code, let detail) = reply {
                    for fd in fds { close(fd) }
                    throw .refused(Refusal(code: code, detail: detail))
                }
                return (reply, fds)
            }
            try handleEvent(reply, fds: fds)
        }
    }

    /// Serves queued control events if the coordinator announced any, and reports
    /// violations found while releasing messages. Cheap when there is nothing: one
    /// atomic load.
    @inline(__always)
    func serviceControl() throws(Bus1Error) {
        let sequence = wake.controlSequence.loadAcquiring()  // pairs with the coordinator's bump after queuing
        if sequence != seenControlSequence {
            seenControlSequence = sequence
            ringMayHoldNotifications = true
            while let (event, _, fds) = try receiveControl(blocking: false) {
                try handleEvent(event, fds: fds)
            }
        }
        if !violationInbox.channels.isEmpty {
            let found = violationInbox.channels
            violationInbox.channels.removeAll()
            for channel in found {
                if let violation = channel.pendingViolation { try reportViolation(channel, violation) }
            }
        }
        if !pendingReleases.isEmpty { try flushPendingReleases() }
    }

    /// Whether the coordinator announced events this peer has not served yet.
    @inline(__always)
    func controlEventsPending() -> Bool {
        wake.controlSequence.loadAcquiring() != seenControlSequence  // pairs with the coordinator's bump after queuing
    }

    /// Fails with ``Bus1Error/coordinatorGone`` if the coordinator's socket hung up.
    func checkCoordinatorAlive() throws(Bus1Error) {
        if isDisconnected { throw .coordinatorGone }
        let state = pollNow(socket.rawValue)
        if state.hangUp { throw .coordinatorGone }
        if state.readable {
            while let (event, _, fds) = try receiveControl(blocking: false) { try handleEvent(event, fds: fds) }
        }
    }

    private func receiveControl(blocking: Bool) throws(Bus1Error) -> (ControlMessage, UInt32, [Int32])? {
        var datagram: SeqPacket.Datagram
        do {
            guard let d = try SeqPacket.receive(socket.rawValue, into: receiveBuffer, maxDescriptors: Int(BUS1_MSG_MAX_FDS), dontWait: !blocking)
            else { return nil }
            datagram = d
        } catch {
            throw error.code == ECONNRESET ? .coordinatorGone : .system(error)
        }
        if datagram.isHangUp { throw .coordinatorGone }
        do {
            if datagram.truncated { throw ProtocolError.cutByKernel }
            let (message, requestID) = try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: receiveBuffer[..<datagram.count]),
                                                                 descriptorCount: datagram.fds.count)
            return (message, requestID, datagram.takeDescriptors())
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    /// One request and its reply during the handshake. A coordinator that refuses
    /// the connection (policy, a quota) sends its reason and closes: a send or
    /// receive that then fails with `EPIPE`/`ECONNRESET` looks for that reason
    /// before calling the coordinator gone.
    private static func roundTrip(_ socket: Int32, _ message: ControlMessage, requestID: UInt32,
                                  buffer: UnsafeMutableRawBufferPointer) throws -> (ControlMessage, [Int32]) {
        do {
            try SeqPacket.send(socket, message.encode(requestID: requestID))
        } catch {
            guard error.code == EPIPE || error.code == ECONNRESET else { throw Bus1Error.system(error) }
            throw pendingRefusal(socket, buffer: buffer).map(Bus1Error.refused) ?? .coordinatorGone
        }
        let received: SeqPacket.Datagram?
        do {
            received = try SeqPacket.receive(socket, into: buffer, maxDescriptors: Int(BUS1_MSG_MAX_FDS))
        } catch {
            if error.code == EAGAIN { throw Bus1Error.timedOut }  // the connect timeout passed
            guard error.code == ECONNRESET else { throw Bus1Error.system(error) }
            throw pendingRefusal(socket, buffer: buffer).map(Bus1Error.refused) ?? .coordinatorGone
        }
        guard var datagram = received else { throw Bus1Error.coordinatorGone }
        if datagram.isHangUp { throw Bus1Error.coordinatorGone }
        let (reply, replyID) = try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[..<datagram.count]),
                                                         descriptorCount: datagram.fds.count)
        guard replyID == requestID || replyID == 0 else { throw Bus1Error.protocolViolation("reply to another request") }
        return (reply, datagram.takeDescriptors())
    }

    /// The refusal the coordinator left in the socket before closing it, if any.
    private static func pendingRefusal(_ socket: Int32, buffer: UnsafeMutableRawBufferPointer) -> Refusal? {
        guard let datagram = try? SeqPacket.receive(socket, into: buffer, dontWait: true), !datagram.isHangUp,
              let (message, _) = try? ControlMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[..<datagram.count]),
                                                            descriptorCount: datagram.fds.count),
              case .error(let code, let detail) = message
        else { return nil }
        return Refusal(code: code, detail: detail)
    }

    private func handleEvent(_ event: ControlMessage, fds: [Int32]) throws(Bus1Error) {
        var fds = fds
        defer { for fd in fds { close(fd) } }
        switch event {
        case .channelOpened(let opening):
            let channelFD = FileDescriptor(adopting: fds[0])
            let wakeFD = FileDescriptor(adopting: fds[1])
            fds = []
            try openInbound(opening, channelFD: channelFD, senderWakeFD: wakeFD)
        case .channelGrant(let channelID, let node):
            inbound.first { $0.id == channelID }?.allowedNodes.insert(node)
        case .handleArrived(let grant):
            try install(grant, fds: &fds)
        case .attachment(let channelID, let ids, _, let sequence):
            let attachment = Attachment(handles: ids.map { Handle(id: $0) }, descriptors: fds, sequence: sequence)
            fds = []
            if let channel = inbound.first(where: { $0.id == channelID }) {
                // A sender attaches again for an index only if it never sent what it
                // attached before: those attachments are superseded, let them go now.
                while let last = channel.attachments.last, last.sequence &- sequence <= UInt64.max / 2 {
                    dropAttachment(channel.attachments.removeLast())
                }
                // An honest sender attaches only with credit, so its index lies within
                // a ring's capacity ahead of what this peer has taken; one behind it or
                // further ahead can never be taken: drop it rather than hold its fds.
                if sequence &- channel.consumer.index < UInt64(channel.consumer.memory.geometry.capacity) {
                    channel.attachments.append(attachment)
                } else {
                    dropAttachment(attachment)
                }
            } else {
                dropAttachment(attachment)  // the channel closed meanwhile: no message will take it
            }
        case .channelClosed(let channelID, let other, let rawReason):
            let reason = CloseReason(rawReason)
            if let channel = outbound[channelID] { closeOutbound(channel, reason: reason) }
            if let index = inbound.firstIndex(where: { $0.id == channelID }) {
                inbound[index].isClosed = true
                for attachment in inbound[index].attachments { dropAttachment(attachment) }
                inbound[index].attachments.removeAll()
                inbound.remove(at: index)
                events.append(.inboundClosed(peer: other, reason: reason))
            }
        case .error(let code, let detail):
            // An unsolicited error answers a datagram the coordinator could not parse.
            throw .refused(Refusal(code: code, detail: detail))
        default:
            throw .protocolViolation("unexpected event \(event)")
        }
    }

    /// Gives back the handles of an attachment no message will deliver (its fds
    /// close with it).
    func dropAttachment(_ attachment: Attachment) {
        for handle in attachment.handles where handle.isValid && handles[handle.id]?.owner != id { pendingReleases.append(handle.id) }
    }

    /// Maps a new inbound channel after checking everything about it: the channel
    /// header and the sender's wake page. The sender's pool segments come later,
    /// each on the first descriptor that names it (``mapSegment(_:of:)``).
    private func openInbound(_ opening: ControlMessage.ChannelOpening, channelFD: consuming FileDescriptor,
                             senderWakeFD: consuming FileDescriptor) throws(Bus1Error) {
        do {
            let capacity = Int(opening.capacity)
            guard ChannelGeometry.isValid(capacity: capacity) else { throw WireError.mismatch("channel capacity") }
            let geometry = ChannelGeometry(capacity: capacity)
            let memory = try ChannelMemory(try Mapping(channelFD, count: geometry.size, writable: true),
                                           channel: opening.channel, capacity: capacity)
            let wakeMapping = try Mapping(senderWakeFD, count: Int(BUS1_PAGE_SIZE), writable: true)
            let page = try WakePage(wakeMapping)
            inbound.append(InboundChannel(id: opening.channel, sender: opening.sender, consumer: SubmissionConsumer(memory),
                                          memory: SenderMemory(wake: wakeMapping),
                                          senderWake: page, firstNode: opening.node, violations: violationInbox))
        } catch let error as LinuxError {
            throw .system(error)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    /// Closes an inbound channel whose sender broke the protocol and tells the
    /// coordinator, which closes it for the sender too. Nothing else is affected.
    func reportViolation(_ channel: InboundChannel, _ violation: ChannelViolation) throws(Bus1Error) {
        guard !channel.isClosed else { return }
        channel.isClosed = true
        inbound.removeAll { $0 === channel }
        for attachment in channel.attachments { dropAttachment(attachment) }
        channel.attachments.removeAll()
        statistics.violationsDetected += 1
        events.append(.violationDetected(peer: channel.sender, violation: violation))
        do {
            try request(.violation(channel: channel.id, reason: violation.rawValue))
        } catch .refused(.handleUnknown) {
            // The coordinator closed it already (the sender left): nothing to report.
        }
    }
}

/// The buffer control datagrams are read into, freed with its owner. A class, so
/// a `Peer` whose initializer throws at any point frees it exactly once (a raw
/// buffer freed by hand in the initializer's error path and again in `deinit` was
/// freed twice when the throw came after every property was set).
private final class ControlBuffer {
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(BUS1_MSG_MAX) + 1, alignment: 8)
    deinit { bytes.deallocate() }
}
