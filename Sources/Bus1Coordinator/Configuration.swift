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
    /// Connections (peers, inspectors, handshakes) one uid may hold at once.
    public var maximumPeersPerUID: Int = 1024
    public var maximumNodesPerPeer: Int = 65536
    public var maximumHandlesPerPeer: Int = 65536
    public var maximumChannelsPerPeer: Int = 4096
    /// Entries of each peer's coordinator ring (notifications not yet consumed);
    /// a peer that lets it fill is disconnected.
    public var coordinatorRingCapacity: Int = 4096
    /// Fds in attachments one uid may have in flight: waiting in the coordinator
    /// or in their receivers until those take the messages (see ``AttachmentsInFlight``).
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

    /// The one ordering enum of the bus (peers read it from WELCOME).
    public typealias Ordering = BusOrdering

    /// Readiness backend of the loop.
    public var eventBackend: EventBackend = .automatic

    public enum EventBackend: String, Sendable, CaseIterable {
        /// io_uring, or poll(2) (logged) where io_uring is refused.
        case automatic
        case ioUring = "io_uring"
        case poll
    }

    // MARK: Totals per uid (every peer of the uid together)

    /// Pool bytes (whole pools: header, ledger and payload) of all peers of one uid.
    public var maximumPoolBytesPerUID: Int = 64 << 30
    /// Nodes owned by all peers of one uid.
    public var maximumNodesPerUID: Int = 1 << 20
    /// Handles charged to one uid: those its peers hold, and those its peers put
    /// in other peers' tables by attaching them to messages.
    public var maximumHandlesPerUID: Int = 1 << 20
    /// Channels made at the request of one uid (its lookups and attachments, and
    /// its peers' pool segments beyond the first: each holds an fd too).
    public var maximumChannelsPerUID: Int = 1 << 18

    /// Connections on the whole bus, shared fairly between uids (see
    /// ``UIDAccounts/check(_:_:for:)``). Each costs the daemon about
    /// ``descriptorsPerConnection`` fds, so `bus1d` lowers it to its part of the fd
    /// limit.
    public var maximumConnections: Int = 8192
    /// Channels on the whole bus, shared fairly between uids like connections: each
    /// holds an fd and a mapping in the coordinator, so `bus1d` lowers it to its
    /// part of the fd limit too.
    public var maximumBusChannels: Int = 65536
    /// Fds the coordinator holds for one connected peer (socket, pidfd, pool — as
    /// created until sealed, then its read-only reopening — wake page, coordinator
    /// ring; one spare), for sizing ``maximumConnections`` to an fd limit; channels
    /// and further pool segments are counted apart (``maximumBusChannels``, one fd each).
    public static var descriptorsPerConnection: Int { 6 }

    // MARK: Connections that have not finished the handshake

    /// Connections still in the handshake (accepted, not yet `ready`) on the whole bus.
    public var maximumHandshakes: Int = 256
    /// Connections still in the handshake from one uid.
    public var maximumHandshakesPerUID: Int = 64
    /// How long a connection may take from accept to a sealed pool (or to its
    /// first INTROSPECT) before it is closed.
    public var handshakeTimeout: Duration = .seconds(5)

    // MARK: Time limits

    /// How long a reply may wait for another peer to take an event it depends on
    /// (a lookup's grant, an attachment) before it is refused with
    /// `BUS1_ERR_TIMEOUT`: a lookup is undone; an attachment is dropped by its
    /// receiver once the sender sends something else (see
    /// ``ControlOutbox/expireHeldReplies(waitingOn:now:)``).
    public var heldReplyTimeout: Duration = .seconds(5)

    /// ``handshakeTimeout`` in whole milliseconds (the configuration file's unit).
    public var handshakeTimeoutMilliseconds: Int {
        get { Self.milliseconds(handshakeTimeout) }
        set { handshakeTimeout = .milliseconds(newValue) }
    }
    /// ``heldReplyTimeout`` in whole milliseconds (the configuration file's unit).
    public var heldReplyTimeoutMilliseconds: Int {
        get { Self.milliseconds(heldReplyTimeout) }
        set { heldReplyTimeout = .milliseconds(newValue) }
    }
    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(clamping: seconds.multipliedReportingOverflow(by: 1000).partialValue + attoseconds / 1_000_000_000_000_000)
    }

    public init(address: String) { self.address = address }

    /// `$BUS1_ADDRESS`, else `$XDG_RUNTIME_DIR/bus1/bus`, else
    /// `/tmp/bus1-<uid>/bus`.
    public static func defaultAddress() -> String { BusAddress.fromEnvironment() }
}
