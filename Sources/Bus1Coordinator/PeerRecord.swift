import Bus1Core
import Bus1Linux
import CBus1Wire

/// One connected peer, as the coordinator sees it.
///
/// States: `connected` (socket accepted, no HELLO yet) → `welcomed` (pool, wake
/// page and clock sent; waiting for POOL_MAPPED) → `ready` (pool sealed against
/// future writes; may create nodes, look up names, get channels). A connection
/// that sends INTROSPECT instead of HELLO is `inspecting`: no peer at all.
final class PeerRecord {
    enum State { case connected, welcomed, ready, inspecting }

    let id: UInt64
    let socket: FileDescriptor
    let pidfd: OwnedDescriptor?
    let pid: Int32
    let uid: UInt32
    /// The process's command name (`/proc/<pid>/comm`; empty if unreadable), read
    /// once when it connected, like `pid` and `uid`: what NAME_LIST reports costs
    /// no file read per listed name on the coordinator's loop, and describes the
    /// process the credentials were taken from (a pid read later could have been
    /// reused, and a comm read later might be a name the process chose since).
    let command: String
    var state: State = .connected

    /// Wake page, made at HELLO.
    var memory: PeerMemory?
    /// The pool's segments by index: segment 0 (the pool) made at HELLO, the
    /// others at the owner's SEGMENT_OPEN.
    var segments: [PoolSegment] = []
    /// Bytes of segment 0, the pool.
    var poolSize: Int = 0
    var wakePage: WakePage? { memory?.wakePage }
    /// The coordinator's end of this peer's coordinator ring (notifications), made at HELLO.
    var notifications: NotificationRing?
    var ringCapacity: Int = 0

    /// Handle id → handle. Ids come from `nextHandle` and are never reused.
    var handles: [UInt64: HandleRecord] = [:]
    /// (owner, node) → this peer's handle id for it: one handle per (peer, node).
    var handleByNode: [NodeKey: UInt64] = [:]
    /// Handles in `handles` by the uid they are charged to (see ``HandleRecord/chargedTo``).
    var handlesChargedTo: [UInt32: Int] = [:]
    var nextHandle: UInt64 = 1
    /// Nodes this peer owns (their ids are the owner's handle ids).
    var ownedNodes: Set<UInt64> = []
    /// Channels where this peer sends, by receiver peer id.
    var outbound: [UInt64: UInt64] = [:]
    /// Channels where this peer receives, by channel id.
    var inbound: Set<UInt64> = []
    /// An inspector's snapshot and objects.
    var inspection: Inspection?
    /// Control messages the socket had no room for, oldest first, with their fds
    /// duplicated (the table entries they came from may close before they go out).
    /// While it is not empty every message to this peer queues behind it.
    var outbox: [QueuedMessage] = []
    /// Messages in `outbox` that other peers' requests caused, by their uid (the
    /// fair share of this peer's control queue is decided on these).
    var queuedByUID: [UInt32: Int] = [:]
    /// Messages handed to `send` for this peer, and how many of them are in its
    /// socket (the difference sits in `outbox`).
    var messagesAccepted: UInt64 = 0
    var messagesDelivered: UInt64 = 0
    /// Replies to other peers that wait until this peer's socket holds a message
    /// they depend on (ordered by position).
    var heldReplies: [HeldReply] = []
    /// While the handshake is not finished (accepted, not yet `ready` nor
    /// inspecting): when the connection is closed if it still is not.
    var handshakeDeadline: ContinuousClock.Instant?

    init(id: UInt64, socket: consuming FileDescriptor, pidfd: OwnedDescriptor?, pid: Int32, uid: UInt32, command: String) {
        self.id = id
        self.socket = socket
        self.pidfd = pidfd
        self.pid = pid
        self.uid = uid
        self.command = command
    }

    var socketToken: UInt64 { id << 2 }
    var pidfdToken: UInt64 { id << 2 | 1 }
    /// Fires when the socket has room again (while `outbox` is not empty).
    var writableToken: UInt64 { id << 2 | 2 }
}

extension PeerRecord.State {
    /// `enum bus1_peer_state`.
    var wireValue: UInt32 {
        switch self {
        case .connected, .inspecting: BUS1_PEER_CONNECTED.rawValue
        case .welcomed: BUS1_PEER_WELCOMED.rawValue
        case .ready: BUS1_PEER_READY.rawValue
        }
    }
}
