import Bus1Core

extension Peer {
    /// Takes back every slice receivers have released. Returns how many.
    @discardableResult
    public func reclaimCompleted() throws(Bus1Error) -> Int {
        try serviceControl()
        var total = 0
        for channel in outbound.values { total += try drain(channel) }
        return total
    }

    @discardableResult
    func drain(_ channel: OutboundChannel) throws(Bus1Error) -> Int {
        guard channel.closedReason == nil else { return 0 }
        let tag = channel.tag
        do {
            return try channel.producer.drainCompletions { offset in self.pool.reclaim(offset, channelTag: tag) }
        } catch {
            // The receiver returned a slice it was never given, or twice, or moved
            // its completion index wrongly: close the channel, here first, then at
            // the coordinator (which tells the receiver).
            statistics.violationsDetected += 1
            note(.violationDetected(peer: channel.receiver, violation: error))
            closeOutbound(channel, reason: .violation(error))
            do { try request(.channelClose(channel: channel.id)) } catch .refused(.handleUnknown) {
                // The coordinator closed it already (the receiver left or reported first).
            } catch .coordinatorGone {
                // Nothing left to tell.
            }
            return 0
        }
    }

    /// Closes an outbound channel on this side at once: no more sends on it, and
    /// every slice still outstanding on it comes back to the pool (allocator and
    /// ledger): those its receiver released first (unless it broke the protocol),
    /// then the rest, counted in ``PeerStatistics/messagesAbandoned``. Handles to
    /// the receiver's nodes keep only why it closed, so the ring and the
    /// receiver's wake page are unmapped once the last reference in flight (a send
    /// that holds the channel) drops, and its pool tag is free again. The
    /// coordinator's `channelClosed` for it later finds nothing left to do.
    func closeOutbound(_ channel: OutboundChannel, reason: CloseReason) {
        guard channel.closedReason == nil else { return }
        if case .violation = reason {} else {
            // What the receiver released before it left was read: taken back as
            // delivered, so only the rest counts as abandoned. (A ring it broke on
            // the way out ends the drain; the rest is abandoned.)
            let tag = channel.tag
            _ = try? channel.producer.drainCompletions { offset in self.pool.reclaim(offset, channelTag: tag) }
        }
        statistics.messagesAbandoned += channel.producer.outstanding
        channel.closedReason = reason
        outbound.removeValue(forKey: channel.id)
        channel.producer.abandonOutstanding()
        pool.reclaimAll(channelTag: channel.tag)
        channelTags.give(channel.tag)
        for (handle, target) in handles where target.channel === channel {
            handles[handle]?.route = .closed(peer: channel.receiver, reason: reason)
        }
        note(.outboundClosed(peer: channel.receiver, reason: reason))
    }
}
