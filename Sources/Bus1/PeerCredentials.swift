/// Who a peer is, as the coordinator saw it when it connected (SO_PEERCRED; pid in the coordinator's pid namespace).
///
/// The coordinator stamps these on what it tells other peers (the announcement
/// of a channel, the grant of a handle, a name listing); the peer they describe
/// never writes them, so it cannot pose as another uid or process. They describe
/// the process that connected: one that forks or passes its connection on is
/// still reported as the process that connected.
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    /// The peer's id on the bus (``Peer/id``).
    public let peer: UInt64
    /// The effective uid of the process when it connected.
    public let uid: UInt32
    /// The process id, in the coordinator's pid namespace (the same as the peer's
    /// own `getpid()` when both share one).
    public let pid: Int32

    /// Credentials as values, for comparing with those the bus reports; making
    /// one gives no authority (the bus never takes credentials from a peer).
    public init(peer: UInt64, uid: UInt32, pid: Int32) {
        self.peer = peer
        self.uid = uid
        self.pid = pid
    }

    public var description: String { "peer \(peer) (uid \(uid), pid \(pid))" }
}

/// A name published on the bus and the peer that published it, as
/// ``Peer/publishedNames()`` reports it (only the bus makes these).
public struct PublishedName: Sendable, Hashable {
    /// The name, as given to ``Peer/publish(_:as:)``.
    public let name: String
    /// The peer that published it, as the coordinator saw it connect.
    public let owner: PeerCredentials
    /// The owner process's command name (`/proc/<pid>/comm`: at most 15 bytes,
    /// the executable's name unless the process changed it), read by the
    /// coordinator when the owner connected; empty if it could not be read.
    public let command: String
}
