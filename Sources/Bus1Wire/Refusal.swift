import CBus1Wire

/// A coordinator refusal (`enum bus1_error_code`).
public enum Refusal: Sendable, Equatable, CustomStringConvertible {
    case protocolError, versionMismatch, nameTaken, nameUnknown, nameInvalid
    case handleUnknown, notOwner, permissionDenied, invalidState
    case quotaExceeded(Quota)
    /// A pool segment was refused or is not to be had (`enum bus1_segment_refusal`).
    case segment(SegmentRefusal)
    /// An attached fd may not travel on the bus.
    case descriptorRefused(DescriptorRefusal)
    /// The request waited for another peer that did not read its socket in time
    /// (a lookup whose owner hangs); it was undone.
    case timedOut
    case internalError(errno: Int32)
    case unknown(code: UInt32, detail: UInt32)

    public enum Quota: UInt32, Sendable {
        /// `peers`: connections (peers, inspectors, handshakes) of this uid; the
        /// others: per peer.
        case peers = 1, nodes = 2, handles = 3, channels = 4, poolBytes = 5
        /// Fds in attachments one uid has in flight (not yet taken by their receivers).
        case fileDescriptors = 6
        /// The sending uid's fair share of a receiver's control queue.
        case messages = 7
        /// Connections still in their handshake: of this uid, or on the whole bus.
        case handshakes = 8
        /// Totals of every peer of this uid together.
        case uidPoolBytes = 9, uidNodes = 10, uidHandles = 11, uidChannels = 12
        /// This uid's fair share of the bus's connections (other uids hold the rest).
        case connectionsShare = 13
        /// This uid's fair share of the receiver's handle table (handles attached by other uids).
        case handlesShare = 14
        /// This uid's fair share of the bus's channels (other uids hold the rest).
        case channelsShare = 15
        /// Pool segments of this peer (16, the first included).
        case segments = 16
    }

    /// Why the coordinator refused a pool segment (`enum bus1_segment_refusal`).
    public enum SegmentRefusal: UInt32, Sendable {
        /// No such channel or segment (or not sealed yet).
        case unknown = 1
        /// This peer's uid is not in the segment's audience.
        case notInAudience = 2
        /// No pool of the size asked for fits the bus's limits.
        case badSize = 3
    }

    /// Why an attached fd was refused (`enum bus1_fd_refusal`).
    public enum DescriptorRefusal: UInt32, Sendable {
        /// A Unix socket (could form reference cycles of sockets in flight).
        case unixSocket = 1
        /// One of the bus's own memfds (pool, ring, wake or clock page).
        case busObject = 2
    }

    /// The refusal a `BUS1_MSG_ERROR` carries (its `code` and `detail`).
    public init(code: UInt32, detail: UInt32) {
        switch code {
        case BUS1_ERR_PROTOCOL.rawValue: self = .protocolError
        case BUS1_ERR_VERSION.rawValue: self = .versionMismatch
        case BUS1_ERR_NAME_TAKEN.rawValue: self = .nameTaken
        case BUS1_ERR_NAME_UNKNOWN.rawValue: self = .nameUnknown
        case BUS1_ERR_NAME_INVALID.rawValue: self = .nameInvalid
        case BUS1_ERR_HANDLE_UNKNOWN.rawValue: self = .handleUnknown
        case BUS1_ERR_NOT_OWNER.rawValue: self = .notOwner
        case BUS1_ERR_PERMISSION.rawValue: self = .permissionDenied
        case BUS1_ERR_STATE.rawValue: self = .invalidState
        case BUS1_ERR_QUOTA.rawValue:
            self = Quota(rawValue: detail).map { .quotaExceeded($0) } ?? .unknown(code: code, detail: detail)
        case BUS1_ERR_INTERNAL.rawValue: self = .internalError(errno: Int32(bitPattern: detail))
        case BUS1_ERR_TIMEOUT.rawValue: self = .timedOut
        case BUS1_ERR_SEGMENT.rawValue:
            self = SegmentRefusal(rawValue: detail).map { .segment($0) } ?? .unknown(code: code, detail: detail)
        case BUS1_ERR_FD_REFUSED.rawValue:
            self = DescriptorRefusal(rawValue: detail).map { .descriptorRefused($0) } ?? .unknown(code: code, detail: detail)
        default: self = .unknown(code: code, detail: detail)
        }
    }

    /// The `BUS1_MSG_ERROR` this refusal is: its code (`enum bus1_error`) and detail.
    public var wire: (code: UInt32, detail: UInt32) {
        switch self {
        case .protocolError: (BUS1_ERR_PROTOCOL.rawValue, 0)
        case .versionMismatch: (BUS1_ERR_VERSION.rawValue, 0)
        case .nameTaken: (BUS1_ERR_NAME_TAKEN.rawValue, 0)
        case .nameUnknown: (BUS1_ERR_NAME_UNKNOWN.rawValue, 0)
        case .nameInvalid: (BUS1_ERR_NAME_INVALID.rawValue, 0)
        case .handleUnknown: (BUS1_ERR_HANDLE_UNKNOWN.rawValue, 0)
        case .notOwner: (BUS1_ERR_NOT_OWNER.rawValue, 0)
        case .permissionDenied: (BUS1_ERR_PERMISSION.rawValue, 0)
        case .invalidState: (BUS1_ERR_STATE.rawValue, 0)
        case .quotaExceeded(let quota): (BUS1_ERR_QUOTA.rawValue, quota.rawValue)
        case .internalError(let errno): (BUS1_ERR_INTERNAL.rawValue, UInt32(bitPattern: errno))
        case .timedOut: (BUS1_ERR_TIMEOUT.rawValue, 0)
        case .segment(let why): (BUS1_ERR_SEGMENT.rawValue, why.rawValue)
        case .descriptorRefused(let why): (BUS1_ERR_FD_REFUSED.rawValue, why.rawValue)
        case .unknown(let code, let detail): (code, detail)
        }
    }

    public var description: String {
        switch self {
        case .protocolError: "malformed request"
        case .versionMismatch: "wire version mismatch"
        case .nameTaken: "name already published"
        case .nameUnknown: "no such name"
        case .nameInvalid: "invalid name"
        case .handleUnknown: "unknown handle"
        case .notOwner: "not the node's owner"
        case .permissionDenied: "permission denied by policy"
        case .invalidState: "request not valid now"
        case .quotaExceeded(let q): "quota exceeded: \(q)"
        case .descriptorRefused(let why): "fd refused: \(why)"
        case .segment(let why): "pool segment refused: \(why)"
        case .timedOut: "timed out waiting for a peer that does not read its socket"
        case .internalError(let e): "coordinator internal error (errno \(e))"
        case .unknown(let c, let d): "error \(c)/\(d)"
        }
    }
}

extension ControlMessage {
    /// The `BUS1_MSG_ERROR` that carries `refusal`.
    public static func refused(_ refusal: Refusal) -> ControlMessage {
        .error(code: refusal.wire.code, detail: refusal.wire.detail)
    }
}
