import Bus1Core
import Bus1Linux
import CBus1Wire

/// Everything the Bus1 client library can fail with.
public enum Bus1Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// The operation would have to wait and no wait was asked for.
    case wouldBlock(WouldBlock)
    /// A wait reached its deadline.
    case timedOut
    /// Another thread ended the wait (``PeerInterrupter/interrupt()``).
    case interrupted
    /// The coordinator's socket hung up: the bus is gone. Reconnect to a new one.
    case coordinatorGone
    /// Nothing serves a bus at `address` (no socket there, or nobody listening):
    /// `bus1d` is not running there, or the address is wrong.
    case noBus(address: String, cause: LinuxError)
    /// The coordinator refused a request.
    case refused(Refusal)
    /// The channel behind a handle is closed (the node's owner left, or a side
    /// broke the protocol).
    case channelClosed(peer: UInt64, reason: CloseReason)
    /// Not a handle of this peer.
    case unknownHandle(Handle)
    /// A handle to one of this peer's own nodes: Bus1 does not loop messages back.
    case ownNode(Handle)
    /// The node the handle names was destroyed (this peer received the notification).
    case nodeDestroyed(Handle)
    /// More handles (16) or fds (4) attached to one message than fit.
    case attachmentTooLarge(handles: Int, fileDescriptors: Int)
    /// The loan lives in a pool segment the node's owner cannot read: its
    /// audience (the uids that may map it) leaves out the owner's uid `ownerUID`.
    /// Loan for the destinations (``Peer/loan(_:for:wait:timeout:)-(_,[Handle],_,_)``).
    case notInAudience(Handle, ownerUID: UInt32)
    /// A payload larger than one pool slice can be.
    case payloadTooLarge(requested: Int, maximum: Int)
    /// A multicast to more destinations than ``PeerOptions/maximumMulticast`` (or none).
    case badDestinationCount(Int, maximum: Int)
    /// A batch larger than the channel's ring capacity.
    case batchTooLarge(Int, maximum: Int)
    /// A name that is empty, too long, or contains NUL.
    case invalidName(String)
    /// A topic subscription ended (``TopicSubscriber``): the topic's host left
    /// or dropped this subscriber (its ring stayed full under
    /// ``Topic/FullRingPolicy/disconnect``).
    case subscriptionEnded(topic: String, reason: SubscriptionEnd)
    /// The service's node was destroyed (it left or crashed): a call pending on
    /// it fails at once (``ServiceClient``).
    case serviceGone(String)
    /// The service's handler failed the call; the reply carried its message.
    case callFailed(String)
    /// A syscall failed.
    case system(LinuxError)
    /// The coordinator sent something that does not follow the wire format.
    case protocolViolation(String)

    /// Why a topic subscription ended.
    public enum SubscriptionEnd: Sendable, Equatable {
        /// The topic's host left (its node was destroyed).
        case topicGone
        /// The host dropped this subscriber, whose ring stayed full (or had no
        /// room for the welcome when it subscribed).
        case dropped
        /// This subscriber unsubscribed (``TopicSubscriber/unsubscribe()``).
        case unsubscribed
    }

    public enum WouldBlock: Sendable, Equatable {
        /// The channel has `capacity` messages outstanding (credit exhausted).
        case ringFull(Handle)
        /// No free slice of the requested size in this peer's pool.
        case poolExhausted(requested: Int)
    }

    public var description: String {
        switch self {
        case .wouldBlock(.ringFull(let h)): "would block: ring to \(h) is full"
        case .wouldBlock(.poolExhausted(let n)): "would block: no free slice of \(n) bytes in the pool"
        case .timedOut: "timed out"
        case .interrupted: "interrupted by another thread"
        case .coordinatorGone: "the coordinator is gone"
        case .noBus(let address, let cause): "no bus at \(address) (\(cause.description)); is bus1d running there?"
        case .refused(let r): "refused by the coordinator: \(r)"
        case .channelClosed(let peer, let reason): "channel to peer \(peer) closed: \(reason)"
        case .unknownHandle(let h): "unknown handle \(h)"
        case .ownNode(let h): "\(h) names one of this peer's own nodes"
        case .nodeDestroyed(let h): "the node \(h) names was destroyed"
        case .attachmentTooLarge(let h, let f): "attachment of \(h) handles and \(f) fds (at most \(BUS1_ATTACH_MAX_HANDLES) and \(BUS1_MSG_MAX_FDS))"
        case .notInAudience(let h, let uid): "the loan's pool segment is not readable by uid \(uid), the owner of \(h); loan(_:for:) the destinations"
        case .payloadTooLarge(let n, let max): "payload of \(n) bytes exceeds the largest slice (\(max))"
        case .badDestinationCount(let n, let max): "multicast to \(n) destinations (1...\(max) allowed)"
        case .batchTooLarge(let n, let max): "batch of \(n) messages exceeds the ring capacity \(max)"
        case .invalidName(let n): "invalid name \"\(n)\""
        case .subscriptionEnded(let topic, .topicGone): "subscription to \(topic) ended: the topic's host left"
        case .subscriptionEnded(let topic, .dropped): "subscription to \(topic) ended: the host dropped this subscriber (its ring stayed full)"
        case .subscriptionEnded(let topic, .unsubscribed): "subscription to \(topic) ended: unsubscribed"
        case .serviceGone(let name): "the service \(name) is gone"
        case .callFailed(let why): "the service failed the call: \(why)"
        case .system(let e): "\(e)"
        case .protocolViolation(let what): "coordinator protocol violation: \(what)"
        }
    }
}


/// Why the coordinator refused a request (`BUS1_MSG_ERROR`), typed: the wire
/// layer's enum, mapped there once.
public typealias Refusal = Bus1Wire.Refusal

/// Why a channel closed (`enum bus1_close_reason`).
public enum CloseReason: Sendable, Equatable, CustomStringConvertible {
    case closedByPeer, peerGone
    /// The other side broke the channel protocol.
    case violation(ChannelViolation)
    case unknown(UInt32)

    init(_ raw: UInt32) {
        switch raw {
        case BUS1_CLOSE_BY_PEER.rawValue: self = .closedByPeer
        case BUS1_CLOSE_PEER_GONE.rawValue: self = .peerGone
        default: self = ChannelViolation(rawValue: raw).map { .violation($0) } ?? .unknown(raw)
        }
    }

    public var description: String {
        switch self {
        case .closedByPeer: "closed by the other side"
        case .peerGone: "the other peer is gone"
        case .violation(let v): "protocol violation: \(v)"
        case .unknown(let r): "reason \(r)"
        }
    }
}

/// Things that happened to a peer's channels, in the order it learned of them.
public enum PeerEvent: Sendable, Equatable {
    /// A channel this peer sends on closed; its slices in flight came back to the pool.
    case outboundClosed(peer: UInt64, reason: CloseReason)
    /// A channel this peer receives on closed.
    case inboundClosed(peer: UInt64, reason: CloseReason)
    /// This peer found the sender of an inbound channel breaking the protocol and
    /// closed the channel (reported to the coordinator).
    case violationDetected(peer: UInt64, violation: ChannelViolation)
    /// A sender stayed staged past the stall timeout: later tickets were delivered
    /// before whatever it sends next (reported to the coordinator).
    case orderingStall(peer: UInt64)
    /// The bus clock handed this peer `clock`, a value no honest clock could:
    /// below a ticket it had already used (another peer rewound or wrapped the
    /// shared clock; once per incident) or far beyond honest reach (jumped). This
    /// peer sent `issued`, so its tickets kept rising: order across senders is
    /// degraded, delivery is not.
    case clockAnomaly(clock: UInt64, issued: UInt64)
}
