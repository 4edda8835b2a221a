/// A subscription to a ``Topic`` another peer hosts.
///
/// Subscribing looks the topic's name up, creates a node of this peer's own and
/// sends the host a handle to it (one coordinator round trip); the host answers
/// with the first sequence number this subscriber gets, then sends its history,
/// if it keeps one, then live messages. Each message is read in place in the
/// host's pool (``TopicMessage/payload``).
///
/// Sequence numbers count what this subscriber missed (skipped by the host's
/// ``Topic/FullRingPolicy/skip``, or unreadable for its uid): ``missed`` in all,
/// ``TopicMessage/missedBefore`` per message. A subscription ends with
/// ``Bus1Error/subscriptionEnded(topic:reason:)`` when the host leaves or drops it.
///
/// The subscriber owns its peer: everything the peer receives is the subscription's.
public final class TopicSubscriber {
    public let topic: String
    public let peer: Peer
    /// This peer's handle to the topic's node.
    let topicHandle: Handle
    /// The node the host sends to.
    let inbox: Handle
    /// The host's peer id: topic messages from anyone else are not the topic's.
    let host: UInt64
    /// The sequence the next message should carry.
    private var expected: UInt64 = 0
    /// Messages this subscriber should have had and did not (gaps in the sequence).
    public private(set) var missed: UInt64 = 0
    /// Messages to the subscription that were not topic messages (dropped).
    public private(set) var malformed: UInt64 = 0
    private var ended: Bus1Error.SubscriptionEnd?

    /// Subscribes `peer` (which becomes the subscription's) to the topic `name`,
    /// waiting up to `timeout` for a host to publish it and take the subscription.
    public init(topic name: String, on peer: Peer, timeout: Duration = .seconds(5)) throws(Bus1Error) {
        let deadline = Deadline.after(timeout)
        topic = name
        self.peer = peer
        topicHandle = try peer.lookup(name, timeout: deadline.remaining ?? .seconds(Int64.max))
        host = peer.credentials(of: topicHandle)?.peer ?? 0
        inbox = try peer.createNode()
        var request = try peer.patternLoan(0, for: topicHandle, wait: peer.options.waitMode, deadline: deadline)
        Frame(.subscribe).write(to: &request)
        try peer.send(request, to: topicHandle, attaching: [inbox], wait: peer.options.waitMode, timeout: deadline.remaining)
        expected = try awaitWelcome(deadline: deadline)
    }

    /// Subscribes a new peer connected with `peerOptions`.
    public convenience init(topic name: String, connecting peerOptions: PeerOptions = PeerOptions(),
                            timeout: Duration = .seconds(5)) throws(Bus1Error) {
        try self.init(topic: name, on: try Peer.connect(options: peerOptions), timeout: timeout)
    }

    /// The first sequence this subscriber gets, from the host's `subscribed` frame.
    private func awaitWelcome(deadline: Deadline) throws(Bus1Error) -> UInt64 {
        while true {
            let message = try peer.receive(timeout: deadline.remaining)
            if message.kind == .data, message.node == inbox, message.sender == host, let frame = message.frame,
               frame.kind == .subscribed, frame.number < .max {
                peer.releaseAttached(message.handles)
                return frame.number
            }
            _ = try judge(message)  // the end of the topic, or something malformed
        }
    }

    /// The next message of the topic (until `timeout`, then ``Bus1Error/timedOut``).
    public func receive(timeout: Duration? = nil) throws(Bus1Error) -> TopicMessage {
        let deadline = Deadline.after(timeout)
        while true {
            try checkEnded()
            let message = try peer.receive(timeout: deadline.remaining)
            if let (sequence, gap) = try judge(message) { return TopicMessage(message, sequence: sequence, missedBefore: gap) }
        }
    }

    /// ``receive(timeout:)`` that suspends the task instead of blocking the thread.
    nonisolated(nonsending)
    public func receive(timeout: Duration? = nil) async throws -> TopicMessage {
        let deadline = Deadline.after(timeout)
        while true {
            try checkEnded()
            let message = try await peer.receive(timeout: deadline.remaining)
            if let (sequence, gap) = try judge(message) { return TopicMessage(message, sequence: sequence, missedBefore: gap) }
        }
    }

    /// Leaves the topic: the host takes this subscriber out of its set, and
    /// nothing more is delivered (the inbox node is destroyed).
    public func unsubscribe() throws(Bus1Error) {
        guard ended == nil else { return }
        ended = .unsubscribed
        var request = try peer.patternLoan(0, for: topicHandle, wait: peer.options.waitMode, deadline: .never)
        Frame(.unsubscribe).write(to: &request)
        try peer.send(request, to: topicHandle, wait: peer.options.waitMode)
        try peer.destroy([inbox])
    }

    deinit {
        try? unsubscribe()  // out of the host's set at once, even if the peer lives on
    }

    private func checkEnded() throws(Bus1Error) {
        if let ended { throw .subscriptionEnded(topic: topic, reason: ended) }
    }

    /// A topic message's sequence and the gap before it; nil for anything else
    /// (dropped and counted); throws when the subscription ended.
    private func judge(_ message: borrowing Message) throws(Bus1Error) -> (UInt64, UInt64)? {
        switch message.kind {
        case .nodeDestroyed where message.node == topicHandle:
            ended = .topicGone
        case .nodeReleased where message.node == inbox:
            // The host let go of this subscriber's node: it dropped it. (A host that
            // leaves destroys its node and releases its handles under one ticket,
            // destructions first: that subscriber saw `.nodeDestroyed` above.)
            ended = .dropped
        case .nodeDestroyed, .nodeReleased:
            return nil
        case .data:
            peer.releaseAttached(message.handles)
            guard message.node == inbox, message.sender == host, let frame = message.frame, frame.kind == .topicData,
                  frame.number >= expected, frame.number < .max else {
                malformed += 1  // not from an honest host: a foreign frame, a sequence going backwards or at its end
                return nil
            }
            let gap = frame.number - expected
            missed += gap
            expected = frame.number + 1
            return (frame.number, gap)
        }
        try checkEnded()
        return nil
    }
}

/// One message of a topic: its payload is read in place in the host's pool, and
/// goes back to the host when the message is dropped.
public struct TopicMessage: ~Copyable {
    /// The host's number for it (from 1, rising by one per published message).
    public let sequence: UInt64
    /// How many messages this subscriber missed right before this one.
    public let missedBefore: UInt64
    let message: Message

    init(_ message: consuming Message, sequence: UInt64, missedBefore: UInt64) {
        self.message = message
        self.sequence = sequence
        self.missedBefore = missedBefore
    }

    /// The bytes the publisher published, in place (a span that cannot outlive the message).
    public var payload: Span<UInt8> {
        @_lifetime(borrow self)
        get { _overrideLifetime(message.framedPayload, borrowing: self) }
    }

    /// A copy of the payload, for keeping past the message.
    public func copyPayload() -> [UInt8] { Array(copying: message.framedPayload) }

    /// The bus-wide ticket of the message (its place in the global order).
    public var ticket: UInt64 { message.ticket }
    /// The host's peer id.
    public var sender: UInt64 { message.sender }
    /// The host's uid and pid, as the coordinator stamped them (not forgeable).
    public var senderCredentials: PeerCredentials? { message.senderCredentials }
}
