import CBus1Wire

/// One notification for a peer's coordinator ring.
struct Notification {
    let target: PeerRecord
    let kind: bus1_notification
    /// The target's id: its handle (destroyed) or its node (released).
    let id: UInt64
    /// The peer that caused it.
    let cause: UInt64
}
