/// The 16-byte header every pattern message (``Topic``, ``TopicSubscriber``,
/// ``Service``, ``ServiceClient``) starts with, little-endian:
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | `0x42315000 | kind` (`"\0P1B"` + the kind) |
/// | 4..<8 | `detail`: per kind (a call's "bind" flag, a reply's status) |
/// | 8..<16 | `number`: a topic message's sequence, a call's id |
///
/// The format is written here once, both ways. A frame is read from memory its
/// sender can still change, so ``init(_:)`` reads each field once and checks it;
/// anything that does not parse is not a frame (the pattern counts and drops it).
struct Frame: Equatable {
    enum Kind: UInt8 {
        /// Host → subscriber: a topic message, `number` its sequence.
        case topicData = 1
        /// Subscriber → topic: subscribe the node handle attached.
        case subscribe = 2
        /// Topic → subscriber: you are in; `number` is the first sequence you get.
        case subscribed = 3
        /// Subscriber → topic: leave (the host releases the subscriber's handle).
        case unsubscribe = 4
        /// Any peer → topic: publish the payload (the host copies it into its pool).
        case contribute = 5
        /// Client → service: a call, `number` its id; `detail` ``bindsReply``
        /// when the client's reply handle is attached.
        case call = 6
        /// Service → client: the reply to call `number`; `detail` a ``ReplyStatus``.
        case reply = 7
    }

    /// A reply's `detail`.
    enum ReplyStatus: UInt32 {
        case ok = 0
        /// The service's handler failed; the payload is its message (UTF-8).
        case failed = 1
    }

    static let size = 16
    private static let magic: UInt32 = 0x4231_5000
    /// `detail` of a call that carries the client's reply handle.
    static let bindsReply: UInt32 = 1

    var kind: Kind
    var detail: UInt32 = 0
    var number: UInt64 = 0

    init(_ kind: Kind, detail: UInt32 = 0, number: UInt64 = 0) {
        self.kind = kind
        self.detail = detail
        self.number = number
    }

    /// The frame a payload starts with; nil if it does not start with one.
    init?(_ payload: Span<UInt8>) {
        guard payload.count >= Self.size else { return nil }
        let bytes = payload.bytes
        let tag = UInt32(littleEndian: bytes.unsafeLoadUnaligned(fromByteOffset: 0, as: UInt32.self))
        guard tag & 0xFFFF_FF00 == Self.magic, let kind = Kind(rawValue: UInt8(tag & 0xFF)) else { return nil }
        self.kind = kind
        detail = UInt32(littleEndian: bytes.unsafeLoadUnaligned(fromByteOffset: 4, as: UInt32.self))
        number = UInt64(littleEndian: bytes.unsafeLoadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// Writes the frame into the first 16 bytes of `header`.
    func write(to header: UnsafeMutableRawBufferPointer) {
        precondition(header.count >= Self.size, "a frame needs 16 bytes")
        header.storeBytes(of: (Self.magic | UInt32(kind.rawValue)).littleEndian, toByteOffset: 0, as: UInt32.self)
        header.storeBytes(of: detail.littleEndian, toByteOffset: 4, as: UInt32.self)
        header.storeBytes(of: number.littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// Writes the frame into a loan's headroom (a loan made for a pattern).
    func write(to loan: inout Loan) {
        loan.withUnsafeHeadroom { write(to: $0) }
    }
}

extension Message {
    /// The pattern frame this message's payload starts with, if it is a data
    /// message that starts with one.
    var frame: Frame? {
        kind == .data ? Frame(payload) : nil
    }

    /// The payload after the pattern frame (the pattern user's bytes).
    var framedPayload: Span<UInt8> {
        @_lifetime(borrow self)
        get {
            let whole = payload
            return _overrideLifetime(whole.extracting(droppingFirst: Frame.size), borrowing: self)
        }
    }
}

extension Peer {
    /// A new node of this peer, published under `name`: a pattern's address. If
    /// the name is taken (``Bus1Error/refused(_:)`` with `nameTaken`) or anything
    /// else fails, the node is destroyed again: nothing is left behind.
    func publishNewNode(as name: String) throws(Bus1Error) -> Handle {
        let node = try createNode()
        do {
            try publish(node, as: name)
        } catch {
            _ = try? destroy([node])
            throw error
        }
        return node
    }

    /// A loan for a pattern message to `destination`: `byteCount` bytes after the
    /// frame's headroom, readable by the destination node's owner.
    func patternLoan(_ byteCount: Int, for destination: Handle, wait: WaitMode?, deadline: Deadline) throws(Bus1Error) -> Loan {
        try loan(byteCount, segment: try segment(readableBy: destination), headroom: Frame.size, wait: wait, deadline: deadline)
    }

    /// The first handle attached to `message` if it names a node of the
    /// message's sender: what a pattern accepts as "send to me here". A handle to
    /// anyone else's node (a victim's, the pattern's own) would make the pattern
    /// send where the sender chose, at the pattern's cost: refused (nil).
    func senderOwnNode(attachedTo message: borrowing Message) -> Handle? {
        guard let handle = message.handles.first, handle.isValid,
              credentials(of: handle)?.peer == message.sender else { return nil }
        return handle
    }

    /// Gives back handles that came attached to a message a pattern does not keep
    /// (a handle whose node is gone meanwhile is only forgotten).
    /// `kept`: one reference the pattern keeps (a handle attached twice carries
    /// two references; the other is given back).
    func releaseAttached(_ attached: [Handle], except kept: Handle? = nil) {
        var kept = kept
        for handle in attached where handle.isValid {
            if handle == kept {
                kept = nil
            } else {
                try? release(handle)
            }
        }
    }

    /// Closes this peer's channel to the owner of `handle`'s node (the coordinator
    /// tells the other end): every slice outstanding on it comes back at once,
    /// and nothing more can be sent to that peer's nodes.
    func closeChannel(to handle: Handle) throws(Bus1Error) {
        guard let channel = handles[handle.id]?.channel else { return }
        closeOutbound(channel, reason: .closedByPeer)
        do {
            try request(.channelClose(channel: channel.id))
        } catch .refused(.handleUnknown) {
            // Closed at the coordinator already (the other peer left).
        }
    }
}
