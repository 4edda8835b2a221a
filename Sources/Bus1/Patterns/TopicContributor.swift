/// Publishes into a ``Topic`` another peer hosts: each message goes to the host,
/// which copies it into its own pool once and publishes it to the subscribers
/// (host the topic to publish zero-copy). For occasional publishers: tools,
/// scripts, a second source of a stream.
public final class TopicContributor {
    public let topic: String
    public let peer: Peer
    /// This peer's handle to the topic's node.
    let topicHandle: Handle

    /// Finds the topic `name`'s host with `peer` (which becomes the
    /// contributor's), waiting up to `timeout` for it to be published.
    public init(topic name: String, on peer: Peer, timeout: Duration = .seconds(5)) throws(Bus1Error) {
        topic = name
        self.peer = peer
        topicHandle = try peer.lookup(name, timeout: timeout)
    }

    /// Finds the topic's host with a new peer connected with `peerOptions`.
    public convenience init(topic name: String, connecting peerOptions: PeerOptions = PeerOptions(),
                            timeout: Duration = .seconds(5)) throws(Bus1Error) {
        try self.init(topic: name, on: try Peer.connect(options: peerOptions), timeout: timeout)
    }

    /// Sends `bytes` to the host for publishing, waiting for room in its ring
    /// (until `timeout`).
    public func publish(copying bytes: some Collection<UInt8>, timeout: Duration? = nil) throws(Bus1Error) {
        let deadline = Deadline.after(timeout)
        var loan = try peer.patternLoan(bytes.count, for: topicHandle, wait: peer.options.waitMode, deadline: deadline)
        loan.write(bytes)
        Frame(.contribute).write(to: &loan)
        do {
            try peer.send(loan, to: topicHandle, wait: peer.options.waitMode, timeout: deadline.remaining)
        } catch .nodeDestroyed, .channelClosed {
            throw .subscriptionEnded(topic: topic, reason: .topicGone)
        }
    }

    /// Waits until the host has taken every message sent so far (so this peer may
    /// leave without taking them with it); throws ``Bus1Error/subscriptionEnded(topic:reason:)``
    /// if the host left first.
    public func flush(timeout: Duration? = nil) throws(Bus1Error) {
        let abandonedBefore = peer.statistics.messagesAbandoned
        try peer.waitUntil(mode: .park, deadline: .after(timeout)) { () throws(Bus1Error) -> Bool in
            try self.peer.reclaimCompleted()  // a host that left: what it released counts, the rest is abandoned
            return self.peer.pool.slicesInUse == 0
        }
        if peer.statistics.messagesAbandoned != abandonedBefore { throw .subscriptionEnded(topic: topic, reason: .topicGone) }
    }
}
