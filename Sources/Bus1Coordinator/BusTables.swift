/// The coordinator's authoritative tables: who is connected, which channels
/// exist, which names are published, and what each uid holds.
///
/// Only the loop's thread touches them. Ids (peers, channels and coordinator
/// rings) come from here and are never reused. Invariants: a channel in
/// `channels` is in its sender's `outbound` and its receiver's `inbound` while
/// those peers are in `peers` (``ChannelBroker/close(_:reason:)`` removes all
/// three together); a name is listed only while its node lives (see
/// ``forgetNodes(_:of:)``); `accounts` is what the tables hold, per uid.
final class BusTables {
    var peers: [UInt64: PeerRecord] = [:]
    var channels: [UInt64: ChannelRecord] = [:]
    var names: [String: NodeKey] = [:]
    /// What each uid holds on the bus, against its totals.
    var accounts: UIDAccounts
    private var nextPeer: UInt64 = 1
    private var nextChannel: UInt64 = 1

    init(configuration: CoordinatorConfiguration) {
        accounts = UIDAccounts(configuration: configuration)
    }

    /// A new peer id.
    func nextPeerID() -> UInt64 {
        defer { nextPeer += 1 }
        return nextPeer
    }

    /// A new channel id; a peer's coordinator ring takes its id from here too.
    func nextChannelID() -> UInt64 {
        defer { nextChannel += 1 }
        return nextChannel
    }

    /// The published names whose owner is connected, ascending by name: the order
    /// NAME_LIST pages in and the snapshot lists them in.
    func publishedNames() -> [(name: String, node: NodeKey, owner: PeerRecord)] {
        names.compactMap { name, key in peers[key.owner].map { (name, key, $0) } }.sorted { $0.name < $1.name }
    }

    /// Connected peers, inspectors not counted.
    func connectedPeers() -> Int { peers.values.count { $0.state != .inspecting } }
}
