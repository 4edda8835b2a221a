import CBus1Wire

/// The fair share of a receiver's control queue between uids.
extension ControlOutbox {
    /// The fair share of a receiver's control queue (as dbus-broker shares a
    /// receiver's buffers between users): a uid may add to what waits for one
    /// receiver only while it holds less than half of what the other uids leave
    /// free, so a flooding uid can take at most half, a second one half the rest,
    /// and the queue's limit is never reached through requests; and it may have at
    /// most ``CoordinatorConfiguration/maximumQueuedDescriptorsPerUID`` fds waiting.
    func chargeFairShare(of uid: UInt32, at receiver: PeerRecord, messages: Int, descriptors: Int) throws(RequestError) {
        let mine = receiver.queuedByUID[uid] ?? 0
        let others = receiver.outbox.count - mine
        let free = configuration.maximumQueuedControlMessages - others
        guard receiver.outbox.isEmpty || (mine + messages) * 2 <= free else { throw .quota(.messages) }
        guard descriptors > 0 else { return }
        let inFlight = attachmentsInFlight.descriptors(of: uid) { entry in
            tables.channels[entry.channel]?.hasTaken(entry.sequence) ?? true
        }
        guard (queuedDescriptorsByUID[uid] ?? 0) + inFlight + descriptors <= configuration.maximumQueuedDescriptorsPerUID else {
            throw .quota(.fileDescriptors)
        }
    }
}
