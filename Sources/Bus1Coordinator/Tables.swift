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

    init(id: UInt64, socket: consuming FileDescriptor, pidfd: OwnedDescriptor?, pid: Int32, uid: UInt32) {
        self.id = id
        self.socket = socket
        self.pidfd = pidfd
        self.pid = pid
        self.uid = uid
    }

    var socketToken: UInt64 { id << 2 }
    var pidfdToken: UInt64 { id << 2 | 1 }
    /// Fires when the socket has room again (while `outbox` is not empty).
    var writableToken: UInt64 { id << 2 | 2 }
}

/// A datagram waiting for room in a peer's socket, owning duplicates of its fds.
struct QueuedMessage {
    let bytes: [UInt8]
    let fds: [OwnedDescriptor]
    /// The uid whose request caused it, if another peer's.
    let chargedTo: UInt32?
}

/// A reply to `requester` that may go out once the holding peer's
/// `messagesDelivered` reaches `position` (and then its other conditions hold).
struct HeldReply {
    let position: UInt64
    let requester: UInt64
    let requestID: UInt32
    let response: Response
    /// When the request is undone and refused as timed out (see
    /// ``Coordinator/expireHeldReplies(waitingOn:now:)``). A reply that moves on
    /// to wait for another peer starts a new wait.
    let deadline: ContinuousClock.Instant
}

/// A node, named by its owner and the owner's handle id for it.
struct NodeKey: Hashable {
    let owner: UInt64
    let node: UInt64
}

/// A peer's reference-counted handle to a node.
struct HandleRecord {
    let node: NodeKey
    var references: Int
    /// The uid this handle counts against (``UIDAccounts/Resource/handles``): the
    /// holder's for a lookup, the attaching sender's for a handle that arrived in
    /// a message; nil for an owner's handle to its own node (the node is charged).
    var chargedTo: UInt32?
}

/// A channel from `sender` to `receiver`; `allowedNodes` are the receiver's nodes
/// the sender holds handles to (the receiver enforces it on every descriptor).
final class ChannelRecord {
    let id: UInt64
    let sender: UInt64
    let receiver: UInt64
    let capacity: Int
    let memory: FileDescriptor
    var allowedNodes: Set<UInt64> = []
    /// The uid whose request made the channel (``UIDAccounts/Resource/channels``).
    let chargedTo: UInt32
    /// The coordinator's mapping of the channel, kept to read the receiver's
    /// consumer index (see ``takenIndex``).
    private let mapping: Mapping
    private let receiverHead: SharedWord64

    init(id: UInt64, sender: UInt64, receiver: UInt64, capacity: Int, memory: consuming FileDescriptor, chargedTo: UInt32,
         mapping: consuming Mapping) {
        self.chargedTo = chargedTo
        receiverHead = SharedWord64(mapping.base, offset: MemoryLayout<bus1_channel_header>.offset(of: \.sub_head)!)
        self.mapping = mapping
        self.id = id
        self.sender = sender
        self.receiver = receiver
        self.capacity = capacity
        self.memory = memory
    }
}

extension ChannelRecord {
    /// Whether the receiver has taken (or dropped) the message at submission index
    /// `sequence`: its `sub_head` is past it. The receiver writes `sub_head`; a
    /// receiver that lies only keeps its senders' attachments charged longer.
    func hasTaken(_ sequence: UInt64) -> Bool {
        let head = receiverHead.loadAcquiring()  // pairs with the receiver's release of sub_head
        let ahead = head &- sequence
        return ahead != 0 && ahead <= UInt64.max / 2
    }
}

/// The coordinator's producer end of a peer's coordinator ring: it stages,
/// tickets and publishes notifications there like a sender (see
/// ``Coordinator/publish(_:)``), and takes credit from the peer's `sub_head`.
final class NotificationRing {
    let id: UInt64
    let memory: FileDescriptor
    var producer: SubmissionProducer

    init(id: UInt64, memory: consuming FileDescriptor, producer: consuming SubmissionProducer) {
        self.id = id
        self.memory = memory
        self.producer = producer
    }
}

/// A descriptor in a class box, so optional ones can be borrowed from tables.
final class OwnedDescriptor {
    let descriptor: FileDescriptor
    init(_ descriptor: consuming FileDescriptor) { self.descriptor = descriptor }
    var rawValue: Int32 { descriptor.rawValue }
}

/// A peer's wake page, with the coordinator's own mapping of it (it bumps
/// `control_seq` and rings the doorbell).
final class PeerMemory {
    let wake: FileDescriptor
    let wakeMapping: Mapping
    let wakePage: WakePage

    init(wake: consuming FileDescriptor, wakeMapping: consuming Mapping, wakePage: WakePage) {
        self.wake = wake
        self.wakeMapping = wakeMapping
        self.wakePage = wakePage
    }
}
