import CBus1Wire

/// One control-socket datagram (`struct bus1_msg_header` + one body), decoded and
/// checked. Encoding and decoding live only here; the layouts live only in the wire
/// header.
public enum ControlMessage: Sendable, Equatable {
    // requests
    case hello(poolSize: UInt64, ringCapacity: UInt32)
    case poolMapped
    case nodeCreate
    case namePublish(handle: UInt64, name: String)
    case nameLookup(name: String)
    case handleRelease(handle: UInt64)
    case violation(channel: UInt64, reason: UInt32)
    case channelClose(channel: UInt64)
    case orderingStall(channel: UInt64)
    case introspect
    case getObjects(first: UInt32)
    case nodeDestroy(handles: [UInt64])
    /// `sequence`: the submission index the attached message will take.
    case attach(destination: UInt64, handles: [UInt64], fdCount: UInt32, sequence: UInt64)
    case reset
    /// A new segment of the caller's pool; `index` and `owner` are 0.
    case segmentOpen(Segment)
    case segmentSeal(index: UInt32)
    case segmentGet(channel: UInt64, index: UInt32)
    /// One page of the published names: those sorted after `after` (nil: from the first).
    case nameList(after: String?)
    // replies
    case ok
    case error(code: UInt32, detail: UInt32)
    case welcome(Welcome)
    case nodeCreated(handle: UInt64)
    case handleGranted(HandleGrant)
    case snapshot(size: UInt64, objectCount: UInt32)
    case objects(first: UInt32, count: UInt32)
    case destroyed(ticket: UInt64)
    /// The reply to ``segmentOpen(_:)`` (the memfd, writable: to its owner only)
    /// and to ``segmentGet(channel:index:)`` (read-only).
    case segmentGranted(Segment)
    /// The reply to ``nameList(after:)``.
    case names(NamePage)
    // events
    case channelOpened(ChannelOpening)
    case channelGrant(channel: UInt64, node: UInt64)
    case channelClosed(channel: UInt64, otherPeer: UInt64, reason: UInt32)
    case handleArrived(HandleGrant)
    /// For the descriptor at submission index `sequence` of `channel`.
    case attachment(channel: UInt64, handles: [UInt64], fdCount: UInt32, sequence: UInt64)

    /// `bus1_msg_welcome`.
    public struct Welcome: Sendable, Equatable {
        public var peer: UInt64, poolSize: UInt64, ringCapacity: UInt32, flags: UInt32
        public var coordinatorRing: UInt64, coordinatorRingCapacity: UInt32
        /// The peer's own uid and pid as the coordinator saw it connect (what other
        /// peers are told about it; the pid in the coordinator's pid namespace).
        public var uid: UInt32, pid: Int32
        public init(peer: UInt64, poolSize: UInt64, ringCapacity: UInt32, flags: UInt32,
                    coordinatorRing: UInt64, coordinatorRingCapacity: UInt32, uid: UInt32, pid: Int32) {
            self.peer = peer; self.poolSize = poolSize; self.ringCapacity = ringCapacity; self.flags = flags
            self.coordinatorRing = coordinatorRing; self.coordinatorRingCapacity = coordinatorRingCapacity
            self.uid = uid; self.pid = pid
        }
    }

    /// `bus1_msg_handle_granted`.
    public struct HandleGrant: Sendable, Equatable {
        public var handle: UInt64, node: UInt64, owner: UInt64, channel: UInt64
        public var capacity: UInt32, newChannel: Bool
        /// The owner's uid: the audience that can read what is sent to the node.
        public var ownerUID: UInt32
        /// The owner's pid (coordinator-stamped, in the coordinator's pid namespace).
        public var ownerPID: Int32
        public init(handle: UInt64, node: UInt64, owner: UInt64, channel: UInt64, capacity: UInt32, newChannel: Bool,
                    ownerUID: UInt32, ownerPID: Int32) {
            self.handle = handle; self.node = node; self.owner = owner; self.channel = channel
            self.capacity = capacity; self.newChannel = newChannel; self.ownerUID = ownerUID; self.ownerPID = ownerPID
        }
    }

    /// `bus1_msg_channel_opened`.
    public struct ChannelOpening: Sendable, Equatable {
        public var channel: UInt64, sender: UInt64, node: UInt64, capacity: UInt32
        /// The sender's uid and pid, stamped by the coordinator (the sender cannot
        /// forge them; the pid in the coordinator's pid namespace).
        public var senderUID: UInt32, senderPID: Int32
        public init(channel: UInt64, sender: UInt64, node: UInt64, capacity: UInt32, senderUID: UInt32, senderPID: Int32) {
            self.channel = channel; self.sender = sender; self.node = node; self.capacity = capacity
            self.senderUID = senderUID; self.senderPID = senderPID
        }
    }

    /// `bus1_msg_names`: up to `BUS1_NAME_LIST_MAX` published names, ascending,
    /// out of `total`, with `remaining` more sorted after the last one.
    public struct NamePage: Sendable, Equatable {
        public var total: UInt32, remaining: UInt32, entries: [NameEntry]
        public init(total: UInt32, remaining: UInt32, entries: [NameEntry]) {
            self.total = total; self.remaining = remaining; self.entries = entries
        }
    }

    /// `bus1_name_entry`: a published name and its owner as the coordinator saw it connect.
    public struct NameEntry: Sendable, Equatable {
        public var name: String, owner: UInt64, uid: UInt32, pid: Int32
        /// The owner's `/proc/<pid>/comm` (at most 15 bytes; empty if unreadable).
        public var command: String
        public init(name: String, owner: UInt64, uid: UInt32, pid: Int32, command: String) {
            self.name = name; self.owner = owner; self.uid = uid; self.pid = pid; self.command = command
        }
    }

    /// `bus1_msg_segment`: segment `index` of `owner`'s pool, `size` bytes,
    /// readable by peers of the uids in `audience` (strictly ascending).
    public struct Segment: Sendable, Equatable {
        public var owner: UInt64, size: UInt64, index: UInt32, audience: [UInt32]
        public init(owner: UInt64 = 0, size: UInt64, index: UInt32 = 0, audience: [UInt32]) {
            self.owner = owner; self.size = size; self.index = index; self.audience = audience
        }
    }

    /// The `bus1_msg_type` of this message.
    public var type: UInt32 {
        switch self {
        case .hello: BUS1_MSG_HELLO.rawValue
        case .poolMapped: BUS1_MSG_POOL_MAPPED.rawValue
        case .nodeCreate: BUS1_MSG_NODE_CREATE.rawValue
        case .namePublish: BUS1_MSG_NAME_PUBLISH.rawValue
        case .nameLookup: BUS1_MSG_NAME_LOOKUP.rawValue
        case .handleRelease: BUS1_MSG_HANDLE_RELEASE.rawValue
        case .violation: BUS1_MSG_VIOLATION.rawValue
        case .channelClose: BUS1_MSG_CHANNEL_CLOSE.rawValue
        case .orderingStall: BUS1_MSG_ORDERING_STALL.rawValue
        case .introspect: BUS1_MSG_INTROSPECT.rawValue
        case .getObjects: BUS1_MSG_GET_OBJECTS.rawValue
        case .nodeDestroy: BUS1_MSG_NODE_DESTROY.rawValue
        case .attach: BUS1_MSG_ATTACH.rawValue
        case .reset: BUS1_MSG_RESET.rawValue
        case .segmentOpen: BUS1_MSG_SEGMENT_OPEN.rawValue
        case .segmentGet: BUS1_MSG_SEGMENT_GET.rawValue
        case .segmentSeal: BUS1_MSG_SEGMENT_SEAL.rawValue
        case .nameList: BUS1_MSG_NAME_LIST.rawValue
        case .names: BUS1_MSG_NAMES.rawValue
        case .segmentGranted: BUS1_MSG_SEGMENT_GRANTED.rawValue
        case .destroyed: BUS1_MSG_DESTROYED.rawValue
        case .handleArrived: BUS1_MSG_HANDLE_ARRIVED.rawValue
        case .attachment: BUS1_MSG_ATTACHMENT.rawValue
        case .ok: BUS1_MSG_OK.rawValue
        case .error: BUS1_MSG_ERROR.rawValue
        case .welcome: BUS1_MSG_WELCOME.rawValue
        case .nodeCreated: BUS1_MSG_NODE_CREATED.rawValue
        case .handleGranted: BUS1_MSG_HANDLE_GRANTED.rawValue
        case .snapshot: BUS1_MSG_SNAPSHOT.rawValue
        case .objects: BUS1_MSG_OBJECTS.rawValue
        case .channelOpened: BUS1_MSG_CHANNEL_OPENED.rawValue
        case .channelGrant: BUS1_MSG_CHANNEL_GRANT.rawValue
        case .channelClosed: BUS1_MSG_CHANNEL_CLOSED.rawValue
        }
    }

    /// How many fds must travel with this message (SCM_RIGHTS).
    public var descriptorCount: Int {
        switch self {
        case .welcome: 4  // pool, wake page, clock page, coordinator ring
        case .handleGranted(let g), .handleArrived(let g): g.newChannel ? 2 : 0  // channel, owner's wake page
        case .attach(_, _, let fdCount, _), .attachment(_, _, let fdCount, _): Int(fdCount)
        case .channelOpened: 2  // channel, sender wake page
        case .segmentGranted: 1  // the segment memfd
        case .snapshot: 1  // the snapshot memfd
        case .objects(_, let count): Int(count)
        default: 0
        }
    }
}
