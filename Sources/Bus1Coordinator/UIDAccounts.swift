import Bus1Wire
import CBus1Wire

/// What each uid holds on the bus, summed over all its peers, and the totals it
/// may not pass.
///
/// Per-peer limits alone bound a uid only by peers × per-peer caps; these totals
/// bound the uid itself, so one user cannot take the coordinator's memory, fds or
/// tables from the others however many peers it connects. A resource is charged to
/// the uid whose request made it (a handle put into another peer's table by an
/// attachment is the attaching uid's, not the receiver's), and uncharged to that
/// same uid when it goes: every owner records the uid it charged.
///
/// Invariant: `usage[uid].x` equals the sum of what the live tables hold charged
/// to `uid`; a uid with nothing charged has no entry.
struct UIDAccounts {
    enum Resource: CaseIterable {
        /// Connections of any state (peers, inspectors, handshakes).
        case connections
        /// Connections accepted that have not reached `ready` (or INTROSPECT).
        case handshakes
        case poolBytes, nodes, handles, channels
    }

    struct Usage: Equatable {
        var connections = 0
        var handshakes = 0
        var poolBytes = 0
        var nodes = 0
        var handles = 0
        var channels = 0

        subscript(resource: Resource) -> Int {
            get {
                switch resource {
                case .connections: connections
                case .handshakes: handshakes
                case .poolBytes: poolBytes
                case .nodes: nodes
                case .handles: handles
                case .channels: channels
                }
            }
            set {
                switch resource {
                case .connections: connections = newValue
                case .handshakes: handshakes = newValue
                case .poolBytes: poolBytes = newValue
                case .nodes: nodes = newValue
                case .handles: handles = newValue
                case .channels: channels = newValue
                }
            }
        }
    }

    private(set) var usage: [UInt32: Usage] = [:]
    /// Handshakes in progress on the whole bus.
    private(set) var handshakesInProgress = 0
    /// Connections on the whole bus (every uid's).
    private(set) var connectionsOnBus = 0
    /// Channels on the whole bus (each costs the coordinator an fd and a mapping).
    private(set) var channelsOnBus = 0
    private let configuration: CoordinatorConfiguration

    init(configuration: CoordinatorConfiguration) { self.configuration = configuration }

    /// The most one uid may hold of `resource`.
    func limit(of resource: Resource) -> Int {
        switch resource {
        case .connections: configuration.maximumPeersPerUID
        case .handshakes: configuration.maximumHandshakesPerUID
        case .poolBytes: configuration.maximumPoolBytesPerUID
        case .nodes: configuration.maximumNodesPerUID
        case .handles: configuration.maximumHandlesPerUID
        case .channels: configuration.maximumChannelsPerUID
        }
    }

    /// The quota a refusal names (`enum bus1_quota`).
    static func quota(of resource: Resource) -> Refusal.Quota {
        switch resource {
        case .connections: .peers
        case .handshakes: .handshakes
        case .poolBytes: .uidPoolBytes
        case .nodes: .uidNodes
        case .handles: .uidHandles
        case .channels: .uidChannels
        }
    }

    /// Whether `uid` may take `amount` more of `resource`: within its own total,
    /// and for what the whole bus shares (handshakes; connections and channels,
    /// which cost the daemon fds), within the bus's total and, for connections and
    /// channels, within its fair share of it.
    ///
    /// The fair share (see ``share(of:on:)``) means a flood of connections or
    /// channels from one user can never lock the others out, however many flood.
    func check(_ resource: Resource, _ amount: Int = 1, for uid: UInt32) throws(RequestError) {
        let held = usage[uid]?[resource] ?? 0
        guard amount <= limit(of: resource) - held else { throw .quota(Self.quota(of: resource)) }
        switch resource {
        case .handshakes:
            guard handshakesInProgress + amount <= configuration.maximumHandshakes else { throw .quota(Self.quota(of: resource)) }
        case .connections:
            let free = configuration.maximumConnections - (connectionsOnBus - held)
            guard held + amount <= Self.share(of: free, on: configuration.maximumConnections) else {
                throw .quota(.connectionsShare)
            }
        case .channels:
            let free = configuration.maximumBusChannels - (channelsOnBus - held)
            guard held + amount <= Self.share(of: free, on: configuration.maximumBusChannels) else {
                throw .quota(.channelsShare)
            }
        default:
            break
        }
    }

    /// What one uid may hold of a bus-wide resource of size `total` when the other
    /// uids leave `free` of it: the larger of half of `free` (dbus-broker's rule, as
    /// the receiver queues use it) and all of `free` but an eighth of `total` kept
    /// for newcomers. One uid alone gets seven eighths of the bus; a second finds at
    /// least a sixteenth; however many arrive, the next one still finds room.
    static func share(of free: Int, on total: Int) -> Int {
        max(free / 2, free - total / 8)
    }

    /// Checks, then charges.
    mutating func charge(_ resource: Resource, _ amount: Int = 1, to uid: UInt32) throws(RequestError) {
        try check(resource, amount, for: uid)
        add(resource, amount, to: uid)
    }

    /// Charges what an earlier ``check(_:_:for:)`` allowed (for requests that
    /// check everything before they change anything).
    mutating func add(_ resource: Resource, _ amount: Int = 1, to uid: UInt32) {
        usage[uid, default: Usage()][resource] += amount
        if resource == .handshakes { handshakesInProgress += amount }
        if resource == .connections { connectionsOnBus += amount }
        if resource == .channels { channelsOnBus += amount }
    }

    /// Gives back what ``charge(_:_:to:)`` or ``add(_:_:to:)`` took. Uncharging
    /// more than was charged is a bug in the coordinator; a debug build stops on
    /// it, a release build clamps at zero rather than take the bus down.
    mutating func uncharge(_ resource: Resource, _ amount: Int = 1, from uid: UInt32) {
        guard amount > 0, var entry = usage[uid] else { return }
        assert(entry[resource] >= amount, "uid \(uid) uncharged more \(resource) than it was charged")
        let taken = min(amount, entry[resource])
        entry[resource] -= taken
        usage[uid] = entry == Usage() ? nil : entry
        if resource == .handshakes { handshakesInProgress -= taken }
        if resource == .connections { connectionsOnBus -= taken }
        if resource == .channels { channelsOnBus -= taken }
    }
}
