/// Fds attached to messages whose receiver has not taken them yet, charged to the
/// uid that attached them.
///
/// The coordinator queues an attachment's fds in the receiver's socket, and from
/// there they sit in the receiver's process until it takes the message (or drops
/// the attachment as stale when the sender sends something else instead). Counting
/// them only while they wait in the coordinator let a client push thousands of fds
/// into a service that reads its socket (ATTACH after ATTACH, never a message) until
/// the service's own receives failed. Here they stay charged until the receiver's
/// consumer index (`sub_head`, in the channel) passes the attached message's
/// index, or the channel closes; ``CoordinatorConfiguration/maximumQueuedDescriptorsPerUID``
/// bounds what one uid has in flight to all receivers together.
///
/// Invariant: every entry names a channel that existed when it was added; entries
/// are pruned lazily, when their uid attaches again, so the count is an upper bound
/// that becomes exact at each check.
struct AttachmentsInFlight {
    struct Entry {
        let channel: UInt64
        /// The submission index of the message that carries the attachment.
        let sequence: UInt64
        let descriptors: Int
    }

    private var byUID: [UInt32: [Entry]] = [:]

    /// Fds `uid` has in flight, after dropping the entries whose message was taken
    /// (`isTaken`).
    mutating func descriptors(of uid: UInt32, droppingTaken isTaken: (Entry) -> Bool) -> Int {
        guard var entries = byUID[uid] else { return 0 }
        entries.removeAll(where: isTaken)
        byUID[uid] = entries.isEmpty ? nil : entries
        return entries.reduce(0) { $0 + $1.descriptors }
    }

    mutating func add(_ entry: Entry, for uid: UInt32) {
        guard entry.descriptors > 0 else { return }
        byUID[uid, default: []].append(entry)
    }
}
