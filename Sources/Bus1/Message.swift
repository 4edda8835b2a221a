import Bus1Core
import CBus1Wire

/// A received message: its payload is read in place from the sender's pool, mapped
/// read-only. Dropping the message returns the slice to the sender.
///
/// Notifications come the same way, in the same order (by ticket), with an
/// empty payload: see ``Kind``.
public struct Message: ~Copyable {
    /// What a message is.
    public enum Kind: Sendable, Equatable {
        /// Bytes (and perhaps an ``Attachment``) sent to ``Message/node``.
        case data
        /// The node this peer's handle ``Message/node`` names was destroyed
        /// (``Message/sender``: its owner). Sends to it now fail with
        /// ``Bus1Error/nodeDestroyed(_:)``; its owner drops those already ordered after.
        case nodeDestroyed
        /// No other peer holds a handle to this peer's node ``Message/node`` any
        /// more (``Message/sender``: the peer that released the last one).
        case nodeReleased
    }

    private let channel: InboundChannel
    /// The slice to give back; `.max` for notifications.
    let offset: UInt64
    public let kind: Kind
    /// The bus-wide ticket the sender took for this message.
    public let ticket: UInt64
    /// This peer's node the message was sent to (for ``Kind/nodeDestroyed``: this
    /// peer's handle to the destroyed node).
    public let node: Handle
    /// The sending peer's id.
    public let sender: UInt64
    /// Who sent a data message, as the coordinator stamped it on the channel it
    /// came by (the sender cannot forge it): its peer id, uid and pid. Nil for
    /// notifications, which the coordinator sends. Read from the channel, so a
    /// message carries no copy.
    public var senderCredentials: PeerCredentials? {
        kind == .data ? channel.senderCredentials : nil
    }
    /// Where the payload is mapped (read-only), and its length.
    private let payloadStart: UnsafeRawPointer?
    private let payloadCount: Int
    /// Handles and fds that came with it, if the sender attached any.
    public var attachment: Attachment? { attached?.takeUnretainedValue() }
    /// The attachment, retained by this message and released in `deinit`: a plain
    /// word, so dropping a message without one costs no generic `Optional` destroy.
    private let attached: Unmanaged<Attachment>?

    /// `payload`: where the descriptor's slice is mapped here.
    init(channel: InboundChannel, descriptor: bus1_descriptor, payload: UnsafeRawPointer, attachment: Attachment? = nil) {
        self.channel = channel
        self.offset = descriptor.offset
        self.kind = .data
        self.ticket = descriptor.ticket
        self.node = Handle(id: descriptor.node)
        self.sender = channel.sender
        self.payloadStart = payload
        self.payloadCount = Int(descriptor.length)
        self.attached = attachment.map { Unmanaged.passRetained($0) }
    }

    init(notification kind: Kind, channel: InboundChannel, descriptor: bus1_descriptor) {
        self.channel = channel
        self.offset = .max
        self.kind = kind
        self.ticket = descriptor.ticket
        self.node = Handle(id: descriptor.node)
        self.sender = descriptor.offset
        self.payloadStart = nil
        self.payloadCount = 0
        self.attached = nil
    }

    /// The payload, read in place in the sender's pool: a span that cannot outlive
    /// the message (the slice goes back to the sender when the message is dropped,
    /// so a pointer kept past that would read someone else's next payload).
    /// `payload.bytes` is the same memory as a `RawSpan` for typed loads.
    ///
    /// Honest limit of user space: a hostile sender can still change these bytes
    /// while you read them. Validate what you parse, read each field once.
    public var payload: Span<UInt8> {
        @_lifetime(borrow self)
        get {
            // The mapping is read-only and outlives the message; the lifetime is tied to `self`.
            let bytes = UnsafeBufferPointer(start: payloadStart?.assumingMemoryBound(to: UInt8.self), count: payloadCount)
            return _overrideLifetime(Span(_unsafeElements: bytes), borrowing: self)
        }
    }

    /// The payload as a raw buffer, for C and other code that takes pointers. The
    /// pointer is valid only inside `body`.
    public func withUnsafePayload<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: payloadStart, count: payloadCount))
    }

    /// A copy of the payload, for keeping past the message (the one copy Bus1 makes
    /// only when asked).
    public func copyPayload() -> [UInt8] {
        withUnsafePayload { Array($0) }
    }

    /// The handles that came with it (none if nothing was attached).
    public var handles: [Handle] { attachment?.handles ?? [] }

    deinit {
        if offset != .max { channel.release(offset: offset) }
        attached?.release()
    }
}
