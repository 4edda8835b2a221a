import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// Limits and policy of one bus. Every limit is per peer unless it says otherwise;
/// exceeding one is a typed `BUS1_ERR_QUOTA` naming it.
public struct CoordinatorConfiguration: Sendable {
    /// Socket path the coordinator listens on.
    public var address: String
    /// Payload bytes of a pool when a peer asks for 0.
    public var defaultPoolDataSize: Int = 64 << 20
    /// Largest payload area a peer may ask for.
    public var maximumPoolDataSize: Int = 1 << 30
    /// Control messages (events and replies) the coordinator holds for one peer
    /// whose socket is full before it disconnects the peer as not reading.
    public var maximumQueuedControlMessages: Int = 1024
    /// Entries per inbound ring when a peer asks for 0.
    public var defaultRingCapacity: Int = 256
    public var maximumPeersPerUID: Int = 1024
    public var maximumNodesPerPeer: Int = 65536
    public var maximumHandlesPerPeer: Int = 65536
    public var maximumChannelsPerPeer: Int = 4096
    /// Entries of each peer's coordinator ring (notifications not yet consumed);
    /// a peer that lets it fill is disconnected.
    public var coordinatorRingCapacity: Int = 4096
    /// Fds in attachments one uid may have waiting in the coordinator (queued for
    /// receivers whose sockets are full).
    public var maximumQueuedDescriptorsPerUID: Int = 256
    /// Who may connect and use names: by default the coordinator's own uid (and root).
    public var allowedUIDs: Set<UInt32> = [getuid(), 0]
    /// Who may look a name up.
    public var nameLookup: NameLookup = .sameUID

    public enum NameLookup: String, Sendable, CaseIterable {
        /// Peers of the name owner's uid, and root.
        case sameUID = "same-uid"
        /// Any peer allowed on the bus (services for several users).
        case anyAllowedUID = "any-allowed-uid"
    }
    /// Global causal order (the default) or per-channel FIFO only, for the whole bus.
    public var ordering: Ordering = .global

    public enum Ordering: String, Sendable, CaseIterable {
        /// Every receiver sees one global order that respects causality.
        case global
        /// Per-channel FIFO only: no staging, no merge (the last nanoseconds).
        case fifo
    }

    /// Readiness backend of the loop.
    public var eventBackend: EventBackend = .automatic

    public enum EventBackend: String, Sendable, CaseIterable {
        /// io_uring, or poll(2) (logged) where io_uring is refused.
        case automatic
        case ioUring = "io_uring"
        case poll
    }

    public init(address: String) { self.address = address }

    /// `$BUS1_ADDRESS`, else `$XDG_RUNTIME_DIR/bus1/bus`, else
    /// `/tmp/bus1-<uid>/bus`.
    public static func defaultAddress() -> String { BusAddress.fromEnvironment() }
}
