import Bus1Core
import Logging

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
    /// The wait mode of a receive that is given none (blocking or async), and of the async
    /// loans and sends, which take none. The blocking loans and sends wait only when given a mode.
    public var waitMode: WaitMode = .default
    /// How long a receiver waits for a sender that marked a channel as staging
    /// (it took or is taking a ticket) before it delivers later tickets anyway and
    /// reports the stall. Liveness wins over order past this point.
    public var orderingStallTimeout: Duration = .milliseconds(250)
    /// Most destinations of one multicast.
    public var maximumMulticast: Int = 256

    /// How long ``Peer/connect(options:)`` may take, from connect to a sealed pool,
    /// before it fails with ``Bus1Error/timedOut`` (a coordinator at its fd limit
    /// leaves connections waiting in its backlog).
    public var connectTimeout: Duration = .seconds(30)
    /// Where the peer logs: connects and disconnects (debug), channels closing
    /// (info), violations, ordering stalls and clock anomalies found (warning).
    /// Quiet unless the caller passes a logger: the default discards everything.
    public var logger = Logger(label: "bus1", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Export the peer's counters through swift-metrics under these labels; nil
    /// (the default): no metrics. See ``PeerMetricsOptions``.
    public var metrics: PeerMetricsOptions?
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
    /// Times this peer parked (slept on its doorbell, or awaited its readiness descriptor).
    public var parks = 0
    /// Times a send had to wait for the receiver to release messages (its ring
    /// was full): how often a slow receiver throttled this producer.
    public var creditWaits = 0
    /// Times a loan had to wait for receivers to release slices (the pool was full).
    public var loanWaits = 0
    /// Messages sent whose receiver left (or broke its channel) before it released
    /// them: sent, and never known to be read. A peer that leaves takes what it
    /// did not read with it; this is that loss, seen from the sender.
    public var messagesAbandoned = 0
    /// Times the bus clock handed this peer a value no honest clock could: below a
    /// ticket it had already used (another peer rewound or wrapped it; one per
    /// incident) or far beyond honest reach (jumped). Its tickets kept rising
    /// anyway (see `MonotonicTickets`).
    public var clockAnomalies = 0
}
