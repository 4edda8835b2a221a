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
///
/// The coordinator wires the parts that each do one job and serves the requests
/// with them: ``ConnectionAdmission`` (accept, admit, handshake deadlines),
/// ``ControlReceiver`` (datagrams in), ``ControlOutbox`` (messages out, held
/// replies, fair share), ``ChannelBroker`` (channels between peers),
/// ``SharedObjectFactory`` (every memfd), ``BusTables`` (who holds what). What
/// touches all of them stays here: the loop (CoordinatorLoop.swift), peer removal
/// (PeerRemoval.swift), notifications (NotificationPublishing.swift) and the
/// request handlers (Requests.swift and the files it names).
/// Sendable: after init only the loop's thread touches its state; other threads
/// call only ``stop()`` (a write to the stop pipe), read the counters (atomics)
/// and immutable properties, and arm test hooks (`@_spi(Testing)`, behind a lock).
public final class Coordinator: @unchecked Sendable {
    public let configuration: CoordinatorConfiguration
    let logger: Logger
    /// Whether ``run()`` removes the socket path when it stops (not when systemd owns it).
    let ownsAddress: Bool
    let readiness: any ReadinessSource
    let stopPipe: (read: Int32, write: Int32)
    /// Makes every shared object (and, for tests, fails one on request).
    let sharedObjects = SharedObjectFactory()
    /// The bus clock's memfd (every peer gets it) and the coordinator's mapping of it.
    let clockObject: SharedObject
    /// The bus clock: notifications take their tickets here like any send.
    let clock: ClockPage
    /// The send protocol for the coordinator rings' notifications: tickets never
    /// below its last, whatever a peer wrote into the clock (`MonotonicTickets`);
    /// one publisher serves every ring, since the coordinator issues all their
    /// tickets. Always staged and from the clock, on FIFO buses too: a receiver
    /// merges notifications with data by ticket either way.
    var publisher: Publisher
    let tables: BusTables
    /// The connected peers (and inspectors), by id.
    var peers: [UInt64: PeerRecord] { tables.peers }
    /// Handshake and held-reply deadlines, and the accept back-off.
    let timers = LoopTimers()
    let counters = CoordinatorCounters()
    /// Repeated failures (loop turns, malformed requests, clock anomalies) logged
    /// at most once a second each.
    var throttledLog: ThrottledLog
    let admission: ConnectionAdmission
    let receiver = ControlReceiver()
    let outbox: ControlOutbox
    let channelBroker: ChannelBroker

    static let stopToken: UInt64 = 2

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
        do {
            // Close-on-exec from birth: an embedded coordinator shares its process with
            // code that spawns children, which must not inherit the stop pipe.
            let fds = try ChildDescriptors.pipe()
            for fd in [fds.read, fds.write] { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
            stopPipe = fds
            clockObject = try sharedObjects.makePage("bus1-clock") { ClockPage.initialize($0) }
        } catch {
            throw .system(error)
        }
        do { clock = try ClockPage(clockObject.mapping) } catch {
            throw .system(LinuxError("coordinator setup: \(error)", code: EIO))
        }
        publisher = Publisher(ordering: .global, clock: clock)
        readiness = try Self.readinessSource(configuration.eventBackend, logger: logger)
        tables = BusTables(configuration: configuration)
        throttledLog = ThrottledLog(logger: logger)
        admission = ConnectionAdmission(listener: listener.socket, tables: tables, readiness: readiness, timers: timers,
                                        counters: counters, configuration: configuration, logger: logger)
        outbox = ControlOutbox(tables: tables, readiness: readiness, configuration: configuration, logger: logger,
                               counters: counters, timers: timers)
        channelBroker = ChannelBroker(tables: tables, sharedObjects: sharedObjects, outbox: outbox, configuration: configuration)
        // The parts remove a failing peer through the coordinator, which owns removal
        // (it touches every part); unowned: the coordinator owns them.
        admission.removePeer = { [unowned self] id, reason in removePeer(id, reason: reason) }
        outbox.removePeer = { [unowned self] id, reason in removePeer(id, reason: reason) }
    }

    /// The readiness mechanism `backend` asks for; `automatic` falls back to
    /// poll(2), logged, where io_uring is refused.
    private static func readinessSource(_ backend: CoordinatorConfiguration.EventBackend,
                                        logger: Logger) throws(CoordinatorError) -> any ReadinessSource {
        switch backend {
        case .poll:
            return PollReadiness()
        case .ioUring:
            do { return try IOURingReadiness() } catch { throw .system(error) }
        case .automatic:
            do {
                return try IOURingReadiness()
            } catch {
                logger.warning("io_uring unavailable, falling back to poll(2)", metadata: ["error": "\(error)"])
                return PollReadiness()
            }
        }
    }

    deinit {
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
}
