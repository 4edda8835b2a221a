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
    /// ``ControlOutbox/expireHeldReplies(waitingOn:now:)``). A reply that moves on
    /// to wait for another peer starts a new wait.
    let deadline: ContinuousClock.Instant
}
