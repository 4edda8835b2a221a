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
    let listener: FileDescriptor
    /// Whether ``shutdown()`` removes the socket path (not when systemd owns it).
    private let ownsAddress: Bool
    let readiness: any ReadinessSource
    private let stopPipe: (read: Int32, write: Int32)
    let clockFD: FileDescriptor
    var clockDescriptor: Int32 { clockFD.rawValue }
    private let clockMapping: Mapping
    /// The bus clock: notifications take their tickets here like any send.
    let clock: ClockPage
    /// The coordinator's own tickets (its rings' notifications): never below its
    /// last, whatever a peer wrote into the clock (see `MonotonicTickets`). One
    /// `last` serves every ring, since the coordinator issues all their tickets.
    var tickets = MonotonicTickets()

    var peers: [UInt64: PeerRecord] = [:]
    var channels: [UInt64: ChannelRecord] = [:]
    var names: [String: NodeKey] = [:]
    private var nextPeer: UInt64 = 1
    /// A new peer id: ids are never reused.
    func nextPeerID() -> UInt64 {
        defer { nextPeer += 1 }
        return nextPeer
    }
    var nextChannel: UInt64 = 1
    /// Fds in attachments waiting in outboxes, by the uid that attached them.
    var queuedDescriptorsByUID: [UInt32: Int] = [:]
    /// Fds in attachments their receivers have not taken yet, by attaching uid.
    var attachmentsInFlight = AttachmentsInFlight()
    /// What each uid holds on the bus, against its totals.
    lazy var accounts = UIDAccounts(configuration: configuration)
    /// Handshake and held-reply deadlines, and the accept back-off.
    var timers = LoopTimers()
    /// Repeated failures (accept, loop turns) logged at most once a second each.
    lazy var throttledLog = ThrottledLog(logger: logger)
    /// One datagram; a byte larger than the largest valid one, so oversize shows as such.
    private let receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(BUS1_MSG_MAX) + 1, alignment: 8)

    /// Datagrams served from one peer per loop turn.
    static var datagramsPerTurn: Int { 64 }
    static let listenerToken: UInt64 = 1
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

    /// Connections refused at accept (policy, quotas, handshake limits).
    public var connectionsRefused: Int { counters.connectionsRefused.load(ordering: .relaxed) }
    /// Connections closed for not finishing the handshake in time.
    public var handshakeTimeouts: Int { counters.handshakeTimeouts.load(ordering: .relaxed) }
    /// `accept` failures for lack of fds or memory (accepting pauses briefly after each).
    public var acceptFailures: Int { counters.acceptFailures.load(ordering: .relaxed) }
    /// Loop turns whose readiness wait failed (the loop backs off and goes on).
    public var loopFailures: Int { counters.loopFailures.load(ordering: .relaxed) }
    /// Times the coordinator found the bus clock rewound or jumped when taking a ticket.
    public var clockAnomalies: Int { counters.clockAnomalies.load(ordering: .relaxed) }
    /// Replies waiting right now for another peer to take what they depend on.
    public var repliesHeld: Int { counters.repliesHeld.load(ordering: .relaxed) }
    /// Replies that waited for another peer past the held-reply timeout and were undone.
    public var heldReplyTimeouts: Int { counters.heldReplyTimeouts.load(ordering: .relaxed) }

    final class Counters: Sendable {
        let protocolErrors = Atomic<Int>(0)
        let violationsReported = Atomic<Int>(0)
        let orderingStalls = Atomic<Int>(0)
        let peers = Atomic<Int>(0)
        let connectionsRefused = Atomic<Int>(0)
        let handshakeTimeouts = Atomic<Int>(0)
        let acceptFailures = Atomic<Int>(0)
        let loopFailures = Atomic<Int>(0)
        let heldReplyTimeouts = Atomic<Int>(0)
        let repliesHeld = Atomic<Int>(0)
        let clockAnomalies = Atomic<Int>(0)
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
            // Close-on-exec from birth: an embedded coordinator shares its process with
            // code that spawns children, which must not inherit the stop pipe.
            let fds = try ChildDescriptors.pipe()
            for fd in [fds.read, fds.write] { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
            stopPipe = fds

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
    ///
    /// Nothing a peer or a connection burst does ends it: a failed accept pauses
    /// accepting, a failed readiness wait is counted and retried after a short
    /// back-off, a peer whose fds cannot be watched is removed alone. Only a
    /// failure to watch the stop pipe at start is returned.
    public func run() throws(CoordinatorError) {
        logger.info("bus1 coordinator listening", metadata: ["address": "\(configuration.address)", "loop": "\(readiness.mechanism)"])
        do { try readiness.watch(stopPipe.read, token: Self.stopToken) } catch {
            shutdown()
            throw .system(error)
        }
        let turnInterval = onTurn.map { Int64($0.interval / .nanoseconds(1)) }
        loop: while true {
            onTurn?.action()
            armListenerIfDue()
            let fired: [UInt64]
            do {
                let deadline = timers.nanosecondsUntilNextDeadline()
                fired = try readiness.wait(timeoutNanoseconds: [deadline, turnInterval].compactMap { $0 }.min())
            } catch {
                counters.loopFailures.wrappingAdd(1, ordering: .relaxed)
                throttledLog.log(.error, "event loop wait failed; retrying", key: "loop", error: error)
                var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                nanosleep(&pause, nil)
                continue
            }
            for token in fired {
                switch token {
                case Self.stopToken: break loop
                case Self.listenerToken:
                    timers.listenerArmed = false
                    acceptPending()
                default:
                    handle(token: token)
                }
            }
            expireDeadlines()
        }
        shutdown()
    }

    private func shutdown() {
        for id in Array(peers.keys) { removePeer(id, reason: "coordinator stopping") }
        if ownsAddress { unlink(configuration.address) }
        logger.info("bus1 coordinator stopped")
    }

    private func handle(token: UInt64) {
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
        // Serve what is queued, up to a turn's share (one chatty peer must not hold
        // the loop), then re-arm: more fires again next turn.
        for _ in 0..<Self.datagramsPerTurn where peers[id] != nil {
            guard receiveOne(from: peer) else { break }
        }
        guard peers[id] != nil else { return }
        do { try readiness.watch(peer.socket.rawValue, token: peer.socketToken) } catch {
            removePeer(id, reason: "cannot watch: \(error)")
        }
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
            throttledLog.log(.warning, "malformed control message", key: "malformed", error: error, metadata: ["peer": "\(peer.id)"])
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
                let deadline = ContinuousClock.now + configuration.heldReplyTimeout
                other.heldReplies.append(HeldReply(position: condition.position, requester: requester, requestID: requestID,
                                                   response: response, deadline: deadline))
                timers.schedule(deadline)
                counters.repliesHeld.wrappingAdd(1, ordering: .relaxed)
                return
            }
        }
        reply(peer, response, requestID: requestID)
    }
}

/// Why the coordinator could not start or had to stop.
public enum CoordinatorError: Error, CustomStringConvertible, Sendable {
    /// A live bus already serves this socket path.
    case addressInUse(String)
    /// The path exists and is not a socket (a file, a directory, a symlink): left untouched.
    case addressNotASocket(String)
    /// The socket's directory is not one only its owner (or root) can change: another
    /// user could swap the socket for its own. `reason` says what is wrong.
    case unsafeDirectory(String, reason: String)
    /// A socket handed over (socket activation) that a bus cannot serve on.
    case unusableListener(String)
    /// A setting out of range (``CoordinatorConfiguration/validate()``).
    case invalidConfiguration(ConfigurationError)
    case system(LinuxError)

    public var description: String {
        switch self {
        case .addressInUse(let path): "a bus is already running at \(path)"
        case .addressNotASocket(let path): "\(path) exists and is not a socket; refusing to replace it"
        case .unsafeDirectory(let path, let reason): "refusing to serve in \(path): \(reason)"
        case .unusableListener(let why): "cannot serve on the socket handed over: \(why)"
        case .invalidConfiguration(let error): "invalid configuration: \(error)"
        case .system(let error): "\(error)"
        }
    }
}
