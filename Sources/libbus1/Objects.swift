import Bus1
import Glibc

// The objects behind bus1.h's opaque pointers, and the one mapping of Bus1Error
// to errno values. Each C object is a retained Swift box: the pointer C holds is
// `Unmanaged.toOpaque()`, taken back (and released) by its free function only.

/// A `bus1_peer`: the peer while connected.
final class PeerObject {
    var peer: Peer?
    init(_ peer: Peer) { self.peer = peer }
}

/// A `bus1_loan`: the loan until a send takes it or it is freed.
final class LoanObject {
    var loan: Loan?
    /// Where the caller writes, and how much fits (read once: the loan does not move).
    let data: UnsafeMutableRawPointer
    let capacity: Int
    /// The peer whose pool it is in: the only one that may send it.
    let owner: ObjectIdentifier

    init(_ loan: consuming Loan, owner: Peer) {
        self.owner = ObjectIdentifier(owner)
        var loan = loan
        (data, capacity) = loan.withUnsafeMutableBytes { ($0.baseAddress!, $0.count) }
        self.loan = consume loan
    }
}

/// A `bus1_message`: what it holds until it is released (a message, a topic
/// message or a request: one of the three), and what C reads of it.
final class MessageObject {
    var message: Message?
    var topicMessage: TopicMessage?
    var request: ServiceRequest?
    let data: UnsafeRawPointer?
    let size: Int
    let kind: Int32
    let ticket: UInt64
    let node: UInt64
    let sender: UInt64
    let credentials: PeerCredentials?
    let handles: [Handle]

    init(_ message: consuming Message) {
        (data, size) = message.withUnsafePayload { ($0.baseAddress, $0.count) }
        switch message.kind {
        case .data: kind = 0
        case .nodeDestroyed: kind = 1
        case .nodeReleased: kind = 2
        }
        ticket = message.ticket
        node = message.node.id
        sender = message.sender
        credentials = message.senderCredentials
        handles = message.handles
        self.message = consume message
    }

    /// A topic message: its payload after the frame, from the host.
    init(topic message: consuming TopicMessage) {
        (data, size) = message.payload.withUnsafeBufferPointer { (UnsafeRawPointer($0.baseAddress), $0.count) }
        kind = 0
        ticket = message.ticket
        node = 0
        sender = message.sender
        credentials = message.senderCredentials
        handles = []
        topicMessage = consume message
    }

    /// A request a service received: its payload after the frame, from the client.
    init(request: consuming ServiceRequest) {
        (data, size) = request.payload.withUnsafeBufferPointer { (UnsafeRawPointer($0.baseAddress), $0.count) }
        kind = 0
        ticket = 0
        node = 0
        sender = request.client
        credentials = request.clientCredentials
        handles = []
        self.request = consume request
    }
}

/// A `bus1_topic`, `bus1_subscription`, `bus1_service` or `bus1_client`: the
/// pattern object (nil once freed by its free function).
final class PatternObject<Pattern> {
    let pattern: Pattern
    init(_ pattern: Pattern) { self.pattern = pattern }
}

extension Unmanaged {
    /// The object a C pointer names (not retained again: C's pointer owns it).
    static func object(_ pointer: OpaquePointer) -> Instance {
        fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}

/// A field of the object behind a C pointer, or `fallback` for NULL (the getters
/// of bus1.h answer NULL with 0, NULL or -EINVAL rather than failing).
func read<Object: AnyObject, Value>(_ pointer: OpaquePointer?, as _: Object.Type, or fallback: Value,
                                    _ field: (Object) -> Value) -> Value {
    guard let pointer else { return fallback }
    return field(Unmanaged<Object>.object(pointer))
}

/// The connected peer behind a `bus1_peer *`: -EINVAL for NULL, -ENOTCONN once disconnected.
func connected(_ pointer: OpaquePointer?) -> Result<Peer, Errno> {
    guard let pointer else { return .failure(Errno(EINVAL)) }
    guard let peer = Unmanaged<PeerObject>.object(pointer).peer else { return .failure(Errno(ENOTCONN)) }
    return .success(peer)
}

/// An errno value (positive), as a Swift error.
struct Errno: Error {
    let code: Int32
    init(_ code: Int32) { self.code = code }
    /// What a C function returns for it.
    var result: Int32 { -code }
}

/// Runs `body` against the connected peer behind `pointer`: 0, or the error's
/// negative errno value.
func withPeer(_ pointer: OpaquePointer?, _ body: (Peer) throws(Bus1Error) -> Void) -> Int32 {
    switch connected(pointer) {
    case .failure(let error): return error.result
    case .success(let peer):
        do throws(Bus1Error) {
            try body(peer)
            return 0
        } catch {
            return errnoResult(error)
        }
    }
}

/// A timeout in nanoseconds from C: nil for BUS1_FOREVER (any negative value).
func timeout(_ nanoseconds: Int64) -> Duration? {
    nanoseconds < 0 ? nil : .nanoseconds(nanoseconds)
}

/// How libbus1's peers wait when a call may wait: they are connected with the
/// default options (spin 20 µs, then park).
let defaultWait = PeerOptions().waitMode

/// The most destinations of one multicast, as libbus1's peers are connected.
let maximumMulticast = PeerOptions().maximumMulticast

/// A wait mode from C's BUS1_WAIT_* (checked to be 0...3 by the caller).
func waitMode(_ mode: Int32, default fallback: WaitMode) -> WaitMode {
    switch mode {
    case 1: .busyPoll
    case 2: .default
    case 3: .park
    default: fallback
    }
}

/// The negative errno value C gets for `error` (bus1.h documents each).
func errnoResult(_ error: Bus1Error) -> Int32 {
    -errnoCode(error)
}

private func errnoCode(_ error: Bus1Error) -> Int32 {
    switch error {
    case .wouldBlock: EAGAIN
    case .timedOut: ETIMEDOUT
    case .interrupted: EINTR
    case .coordinatorGone: ECONNRESET
    case .noBus(_, let cause): cause.code
    case .refused(let refusal): errnoCode(refusal)
    case .channelClosed: EPIPE
    case .unknownHandle: EBADF
    case .ownNode: EINVAL
    case .nodeDestroyed: EIDRM
    case .attachmentTooLarge, .batchTooLarge: E2BIG
    case .notInAudience: EACCES
    case .payloadTooLarge: EMSGSIZE
    case .badDestinationCount, .invalidName: EINVAL
    case .subscriptionEnded, .serviceGone: ESHUTDOWN
    case .callFailed: EREMOTEIO
    case .system(let cause): cause.code
    case .protocolViolation: EPROTO
    }
}

private func errnoCode(_ refusal: Refusal) -> Int32 {
    switch refusal {
    case .protocolError, .versionMismatch: EPROTO
    case .nameTaken: EEXIST
    case .nameUnknown: ENOENT
    case .nameInvalid: EINVAL
    case .handleUnknown: EBADF
    case .notOwner, .permissionDenied: EPERM
    case .invalidState: EINVAL
    case .quotaExceeded: EDQUOT
    case .segment, .descriptorRefused: EACCES
    case .timedOut: ETIMEDOUT
    case .internalError(let code): code > 0 ? code : EIO
    case .unknown: EIO
    }
}
