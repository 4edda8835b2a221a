import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc
import Logging

/// A connection to a bus: owns nodes, holds handles, sends and receives.
///
/// Use one `Peer` from one isolation domain at a time: a thread, a task or an actor
/// (it is not `Sendable`; see <doc:Threading>). Its hot properties are
/// `@exclusivity(unchecked)`: that contract, not a runtime check, keeps their
/// accesses exclusive (the check cost ~20% of a busy-poll round trip). Payloads are
/// written once into this peer's pool (``loan(_:wait:timeout:)``) and read in place by
/// receivers (``Message/payload``); nothing is copied.
public final class Peer {
    /// This peer's id on the bus.
    public let id: UInt64
    /// This peer's own credentials, as the coordinator saw it connect (WELCOME):
    /// what other peers are told about it.
    public let credentials: PeerCredentials
    /// The parking mechanism in use, and why it is not io_uring if it is not.
    public let parkMechanism: String
    public let parkFallbackReason: String?
    /// The bus's ordering: global causal order, or per-channel FIFO only.
    public let ordering: BusOrdering
    /// ``PeerOptions/orderingStallTimeout`` in nanoseconds, for the merge.
    let stallTimeoutNanoseconds: UInt64

    /// The control socket: requests, replies, events.
    let control: ControlConnection
    let options: PeerOptions
    /// This peer's pool: segment 0 for its own uid, more for other audiences.
    let pool: SegmentedPool
    /// This peer's wake page, kept mapped by the peer and its interrupter.
    let wakeMapping: WakeMapping
    /// The view of it (a copy, so the hot path reads no extra pointer).
    let wake: WakePage
    let clockMapping: Mapping
    let clock: ClockPage
    let waiter: DoorbellWaiter
    /// Ends this peer's waits from any thread (see ``PeerInterrupter``).
    public let interrupter: PeerInterrupter
    /// The readiness descriptor's io_uring (``readinessDescriptor()``), made on first use.
    var readiness: (any DoorbellReadiness)?
    /// Whether ``armReadiness()`` left the descriptor armed (`sleeping` set):
    /// ``tryReceive()`` and every wait disarm it, so senders stop ringing once the
    /// owner is awake.
    @exclusivity(unchecked) var readinessArmed = false
    /// A disarm found the control socket readable or hung up: the next
    /// ``armReadiness()`` (or ``tryReceive()``) serves it or reports the hang-up.
    var coordinatorCheckDue = false
    /// Metrics, if ``PeerOptions/metrics`` asked for them.
    var metrics: PeerMetrics?
    var logger: Logger { options.logger }
    /// How long each step of this peer's connect took.
    public let connectTimings: ConnectTimings

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
    @exclusivity(unchecked) var handles: [UInt64: HandleTarget] = [:] {
        didSet { lastSendRoute = nil }  // any change (a close, a destroy, a release) drops it
    }
    /// Where the last send's handle led: a stream of sends to one handle hashes
    /// once and copies no `HandleTarget`. Cleared whenever `handles` changes.
    @exclusivity(unchecked) var lastSendRoute: SendRoute?
    @exclusivity(unchecked) var events: [PeerEvent] = []
    /// This peer's nodes it destroyed, with the destruction's ticket: messages to
    /// them with a later ticket are dropped (checked only while it is not empty).
    @exclusivity(unchecked) var destroyedNodes: [UInt64: UInt64] = [:]
    /// Handles the library must give back (attachments of messages that were
    /// dropped); released at the next top-level call, never inside a request.
    @exclusivity(unchecked) var pendingReleases: [UInt64] = []
    let violationInbox = ViolationInbox()
    @exclusivity(unchecked) var statistics = PeerStatistics()
    /// The wake page's `control_seq` when this peer last served its events.
    @exclusivity(unchecked) var seenControlSequence: UInt64 = 0
    /// FIFO-only buses: where the next round-robin receive starts.
    @exclusivity(unchecked) var nextInbound = 0
    /// The send protocol: staging, tickets (never below this peer's last,
    /// whatever the shared clock says), wake-ups.
    @exclusivity(unchecked) var publisher: Publisher
    /// Scratch space of a multicast: the lanes it publishes on, reused.
    @exclusivity(unchecked) var lanes: [PublishLane] = []
    /// Where a waiting ``receive(mode:timeout:)`` parks the message it found (a
    /// stored slot, not a captured local: no box, no metadata lookups), and where
    /// ``armReadiness()`` keeps the message it found for the next receive.
    @exclusivity(unchecked) var received: Message?
    /// Scratch space of ``sendBatch(to:count:sliceSize:wait:fill:)``, reused.
    @exclusivity(unchecked) var batchOffsets: [UInt64] = []

    /// What a send needs of an open handle: its node, who must be able to read the
    /// payload, and the channel to the node's owner. Plain values and one
    /// reference, so the send path copies no `HandleTarget` (its credentials and
    /// route enum cost a generic copy per send).
    struct SendRoute {
        let handle: UInt64
        let node: UInt64
        let ownerUID: UInt32
        let channel: OutboundChannel
    }

    /// Where a handle leads.
    struct HandleTarget {
        let node: UInt64
        /// The node's owner as the coordinator stamped it on the grant (this
        /// peer's own ``Peer/credentials`` for its own nodes).
        let ownerCredentials: PeerCredentials
        var owner: UInt64 { ownerCredentials.peer }
        /// The owner's uid: who must be able to read what is sent to the node.
        var ownerUID: UInt32 { ownerCredentials.uid }
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
        stallTimeoutNanoseconds = options.orderingStallTimeout.clampedNanoseconds
        var timings = ConnectTimings()
        let started = monotonicNanoseconds()
        control = try ControlConnection(address: options.address ?? Self.defaultAddress(), timeout: options.connectTimeout)
        var stamp = monotonicNanoseconds()
        timings.socket = stamp - started
        do {
            let (parker, fallback) = try options.parkBackend.makeParker()
            timings.parker = Self.lap(&stamp)
            parkMechanism = parker.mechanism
            parkFallbackReason = fallback

            // HELLO -> WELCOME(pool, wake page, clock page, coordinator ring)
            var reply = try control.handshake(.hello(poolSize: UInt64(options.poolSize), ringCapacity: UInt32(options.ringCapacity)),
                                              requestID: 1)
            timings.welcome = Self.lap(&stamp)
            guard case .welcome(let welcome) = reply.message else { throw Bus1Error.protocolViolation("expected WELCOME, got \(reply.message)") }
            ordering = welcome.flags & BUS1_WELCOME_FIFO_ONLY != 0 ? .fifo : .global
            let pool = reply.fds.take(0), wakeFD = reply.fds.take(1), clockFD = reply.fds.take(2), ringFD = reply.fds.take(3)
            guard try pool.size() == Int(welcome.poolSize), let layout = bus1_pool_layout(poolSize: Int(welcome.poolSize)) else {
                throw Bus1Error.protocolViolation("pool size does not match WELCOME or is not a valid pool layout")
            }
            id = welcome.peer
            credentials = PeerCredentials(peer: welcome.peer, uid: welcome.uid, pid: welcome.pid)
            // Segment 0's audience is the uid the coordinator saw connect (SO_PEERCRED: the effective uid).
            self.pool = SegmentedPool(pool: try Mapping(pool, count: Int(welcome.poolSize), writable: true), layout: layout, ownerUID: welcome.uid)
            wakeMapping = try WakeMapping(try Mapping(wakeFD, count: Int(BUS1_PAGE_SIZE), writable: true))
            wake = wakeMapping.page
            interrupter = PeerInterrupter(wake: wakeMapping)
            clockMapping = try Mapping(clockFD, count: Int(BUS1_PAGE_SIZE), writable: true)
            clock = try ClockPage(clockMapping)
            publisher = Publisher(ordering: ordering, clock: clock)
            waiter = DoorbellWaiter(page: wake, parker: parker)
            seenControlSequence = wake.controlSequence.loadAcquiring()
            coordinatorRing = try Self.coordinatorRing(ringFD, welcome, violations: violationInbox)

            timings.mapping = Self.lap(&stamp)

            try Self.sealPool(pool, over: control)
            timings.sealing = Self.lap(&stamp)
            timings.total = stamp - started
            connectTimings = timings
            metrics = options.metrics.map { PeerMetrics($0, peer: welcome.peer) }
            options.logger.debug("connected", metadata: ["peer": "\(welcome.peer)", "address": "\(control.address)",
                                                        "park": "\(parker.mechanism)", "ordering": "\(ordering)"])
        } catch let error as Bus1Error {
            throw error
        } catch let error as LinuxError {
            throw .system(error)
        } catch let error as ParkerUnavailable {
            throw .system(LinuxError(error.reason, code: ENOSYS))
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    /// POOL_MAPPED -> OK: from now on nobody else can map the pool writable. The
    /// seals are checked on the memfd, not taken on the coordinator's word.
    private static func sealPool(_ pool: borrowing FileDescriptor, over control: ControlConnection) throws {
        let sealed = try control.handshake(.poolMapped, requestID: 2).message
        guard sealed == .ok else { throw Bus1Error.protocolViolation("pool sealing failed: \(sealed)") }
        guard try MemFD.seals(of: pool).isSuperset(of: [.shrink, .grow, .futureWrite]) else {
            throw Bus1Error.protocolViolation("pool not sealed against future writes")
        }
        try control.handshakeDone()
    }

    /// Nanoseconds since `stamp`, which moves to now.
    private static func lap(_ stamp: inout UInt64) -> UInt64 {
        let now = monotonicNanoseconds()
        defer { stamp = now }
        return now - stamp
    }

    /// The coordinator ring of WELCOME, mapped: notifications, merged with data by ticket.
    private static func coordinatorRing(_ fd: consuming FileDescriptor, _ welcome: ControlMessage.Welcome,
                                        violations: ViolationInbox) throws -> InboundChannel {
        let capacity = Int(welcome.coordinatorRingCapacity)
        guard ChannelGeometry.isValid(capacity: capacity) else { throw Bus1Error.protocolViolation("coordinator ring capacity \(capacity)") }
        let memory = try ChannelMemory(try Mapping(fd, count: ChannelGeometry(capacity: capacity).size, writable: true),
                                       channel: welcome.coordinatorRing, capacity: capacity)
        let notes: Set<UInt32> = [BUS1_NOTE_NODE_DESTROYED.rawValue, BUS1_NOTE_NODE_RELEASED.rawValue]
        return InboundChannel(id: welcome.coordinatorRing, sender: UInt64(BUS1_COORDINATOR_PEER), senderCredentials: nil,
                              consumer: SubmissionConsumer(memory, acceptedFlags: notes),
                              memory: nil, senderWake: nil, firstNode: nil, violations: violations)
    }

    /// The default bus address (see ``PeerOptions/address``).
    public static func defaultAddress() -> String { BusAddress.fromEnvironment() }

    /// Counters, current when read: completions receivers posted are taken back
    /// first, so the pool figures count only slices still loaned or unreleased.
    public var currentStatistics: PeerStatistics {
        _ = try? reclaimCompleted()  // a receiver that corrupted its completions has its channel closed here, and evented
        return statisticsNow
    }

    /// The counters and the pool figures as they stand, without taking completions
    /// back first (for the metrics recorded in the middle of a wait).
    var statisticsNow: PeerStatistics {
        var s = statistics
        s.poolBytesInUse = pool.bytesInUse
        s.slicesInUse = pool.slicesInUse
        return s
    }

    /// Records the statistics into the metrics now (``PeerOptions/metrics``; without
    /// them it does nothing). Parks, awaits and disconnect record by themselves; a
    /// peer that never waits (busy polling) calls this from its loop now and then.
    public func recordMetrics() {
        metrics?.record(currentStatistics)
    }

    /// Records the metrics at a park (no completions taken back: no I/O in a wait).
    func recordMetricsAtPark() {
        metrics?.record(statisticsNow)
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
        guard !control.isClosed else { return }
        metrics?.record(currentStatistics)
        control.close()
        logger.debug("disconnected", metadata: ["peer": "\(id)"])
    }
}
