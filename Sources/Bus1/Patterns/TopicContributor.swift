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
        // The host's completions are taken before the control socket is read: a
        // host that takes the last message and leaves at once (`bus1ctl subscribe
        // --count N`) has taken it, but once its channel's closing is served the
        // slices come back either way and nothing tells which were taken.
        var taken = false
        try peer.waitUntil(mode: .park, deadline: .after(timeout)) { () throws(Bus1Error) -> Bool in
            guard let (_, channel) = try? self.peer.sendTarget(self.topicHandle) else { return true }
            try self.peer.drain(channel)
            if self.peer.pool.slicesInUse == 0 {
                taken = true
                return true
            }
            try self.peer.reclaimCompleted()  // serves the control socket: the host may be found gone here
            return (try? self.peer.sendTarget(self.topicHandle)) == nil
        }
        if !taken { throw .subscriptionEnded(topic: topic, reason: .topicGone) }
    }
}
