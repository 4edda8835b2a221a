import Bus1Core

/// A topic this peer hosts: publish/subscribe on capabilities.
///
/// The host owns the topic's node and publishes it under the topic's name. A
/// ``TopicSubscriber`` subscribes by sending the topic a handle to a node of its
/// own (one coordinator round trip per subscription); the host sends each message
/// to every subscriber's node, zero-copy, as one slice of its pool (no
/// coordinator on the way). The subscriber set keeps itself: a subscriber that
/// unsubscribes, exits or crashes is gone from it (by its message, its node's
/// destruction, or its channel closing), never failing a publish to the others.
///
/// A subscriber whose ring is full meets the ``FullRingPolicy``: the publisher
/// waits for it (back-pressure), skips it (it sees the gap in the sequence
/// numbers: ``TopicMessage/missedBefore``), or drops it from the set. With
/// ``Options/history`` N, the host keeps its last N slices and sends them to a
/// new subscriber before anything live, zero-copy (the slices stay in its pool).
///
/// Other peers may publish through the host (``TopicContributor``): the host
/// copies each such message into its pool once. Messages are numbered by the
/// host in the order it publishes them, from 1.
///
/// The topic owns its peer: everything the peer receives is the topic's (use
/// ``peer`` for statistics, not for receiving). Call ``publish(_:timeout:)``,
/// ``serve()`` or ``run()`` often enough to take subscriptions in.
public final class Topic {
    /// What a publish does about a subscriber whose ring is full.
    public enum FullRingPolicy: Sendable, Equatable {
        /// Wait until it has room (back-pressure: the slowest subscriber sets the pace).
        case block
        /// Leave it out of this message; it counts what it missed from the sequence numbers.
        case skip
        /// Drop it from the set (its ``TopicSubscriber`` ends with ``Bus1Error/SubscriptionEnd/dropped``).
        case disconnect
    }

    public struct Options: Sendable {
        public var whenFull: FullRingPolicy
        /// How many of its last messages the host keeps for late subscribers (0...1024).
        public var history: Int
        public init(whenFull: FullRingPolicy = .block, history: Int = 0) {
            self.whenFull = whenFull
            self.history = history
        }
    }

    /// What the host has done so far.
    public struct Statistics: Sendable, Equatable {
        /// Messages published (contributions included).
        public var published: UInt64 = 0
        /// Deliveries: one per message per subscriber that got it.
        public var delivered: UInt64 = 0
        /// Deliveries skipped (``FullRingPolicy/skip``, or a history message a new
        /// subscriber had no room for).
        public var skipped: UInt64 = 0
        /// Times a publish waited for a full subscriber (``FullRingPolicy/block``):
        /// the back-pressure the slowest subscriber puts on the publisher.
        public var waits: UInt64 = 0
        /// Subscribers dropped by ``FullRingPolicy/disconnect``.
        public var dropped: UInt64 = 0
        /// Subscribers that unsubscribed, exited or crashed.
        public var left: UInt64 = 0
        /// Messages from other peers published through this host.
        public var contributions: UInt64 = 0
        /// Contributions dropped: too large for this host's pool, or no room in it.
        public var contributionsDropped: UInt64 = 0
        /// Messages to the topic that were not topic frames (dropped).
        public var malformed: UInt64 = 0
    }

    /// What one publish did.
    public struct Receipt: Sendable, Equatable {
        /// The message's sequence number.
        public var sequence: UInt64
        public var delivered = 0
        public var skipped = 0
        public var dropped = 0
    }

    /// One subscriber: the peer it is and the handle to its node. The first
    /// message it may get is `firstSequence` (what its `subscribed` frame said).
    private struct Subscriber {
        let peer: UInt64
        let handle: Handle
        let firstSequence: UInt64
    }

    public let name: String
    public let peer: Peer
    public let options: Options
    public private(set) var statistics = Statistics()
    /// The topic's node, published under ``name``.
    let node: Handle
    private var subscribers: [Subscriber] = []
    private var nextSequence: UInt64 = 1
    /// The last `options.history` messages, oldest first.
    private var history: [(sequence: UInt64, slice: KeptSlice)] = []
    /// Contributions taken in and not published yet (while a publish was under
    /// way), oldest first. Kept as the
    /// messages themselves: each holds its slot in its contributor's ring, so a
    /// flood of contributions is held back by the rings, not buffered here.
    private var contributions: [MessageBox] = []
    private var publishing = false

    /// Hosts the topic `name` on `peer` (which becomes the topic's): creates its
    /// node and publishes it. A name someone else publishes is ``Bus1Error/refused(_:)``
    /// with `nameTaken` (and the node is destroyed again).
    public init(hosting name: String, on peer: Peer, options: Options = Options()) throws(Bus1Error) {
        guard (0...1024).contains(options.history) else { throw .batchTooLarge(options.history, maximum: 1024) }
        self.name = name
        self.peer = peer
        self.options = options
        node = try peer.publishNewNode(as: name)
    }

    /// Hosts `name` on a new peer connected with `peerOptions`.
    public convenience init(hosting name: String, connecting peerOptions: PeerOptions = PeerOptions(),
                            options: Options = Options()) throws(Bus1Error) {
        try self.init(hosting: name, on: try Peer.connect(options: peerOptions), options: options)
    }

    deinit {
        for kept in history { peer.letGo(kept.slice) }
        _ = try? peer.destroy([node])  // the subscribers learn the topic is gone, even if the peer lives on
    }

    /// Subscribers now (after the last ``serve()``).
    public var subscriberCount: Int { subscribers.count }

    // MARK: Publishing

    /// A loan for one message of `byteCount` bytes, readable by every current
    /// subscriber (a subscriber of another uid that joins later may not read it:
    /// it misses that message). Fill it and ``publish(_:timeout:)`` it.
    /// A pool that is full while the topic keeps history gives up the oldest
    /// history slices first. `wait`: how to wait for room (nil: the peer's wait
    /// mode; a topic loan always waits, until `timeout`).
    public func loan(_ byteCount: Int, wait: WaitMode? = nil, timeout: Duration? = nil) throws(Bus1Error) -> Loan {
        try serve()
        return try loan(byteCount, wait: wait ?? peer.options.waitMode, deadline: .after(timeout))
    }

    /// A loan for a topic message, readable by the current subscribers.
    private func loan(_ byteCount: Int, wait: WaitMode?, deadline: Deadline) throws(Bus1Error) -> Loan {
        let segment = subscribers.isEmpty ? 0 : try peer.segment(readableBy: subscribers.map(\.handle))
        while true {
            if let loan = try peer.loanNow(byteCount, segment: segment, headroom: Frame.size) { return loan }
            guard !history.isEmpty else { break }
            peer.letGo(history.removeFirst().slice)  // history must not starve the live stream
        }
        return try peer.loan(byteCount, segment: segment, headroom: Frame.size, wait: wait, deadline: deadline)
    }

    /// Publishes a loan from ``loan(_:wait:timeout:)`` to every subscriber, by the
    /// topic's ``FullRingPolicy``. Under ``FullRingPolicy/block`` it waits (until
    /// `timeout`, then ``Bus1Error/timedOut``; the subscribers with room got it).
    /// Contributions taken in meanwhile are published by the next call that serves
    /// the topic, so nothing can fail after this message went out.
    @discardableResult
    public func publish(_ loan: consuming Loan, timeout: Duration? = nil) throws(Bus1Error) -> Receipt {
        precondition(loan.headroom == Frame.size, "publish a loan from Topic.loan(_:)")
        try serve()
        return try publishNow(loan, deadline: .after(timeout))
    }

    /// Copies `bytes` into a loan and publishes it (`timeout` covers both).
    @discardableResult
    public func publish(copying bytes: some Collection<UInt8>, timeout: Duration? = nil) throws(Bus1Error) -> Receipt {
        let deadline = Deadline.after(timeout)
        try serve()
        var loan = try loan(bytes.count, wait: peer.options.waitMode, deadline: deadline)
        loan.write(bytes)
        return try publishNow(loan, deadline: deadline)
    }

    /// Numbers, keeps and fans out one message.
    private func publishNow(_ loan: consuming Loan, deadline: Deadline) throws(Bus1Error) -> Receipt {
        publishing = true
        defer { publishing = false }
        let sequence = nextSequence
        nextSequence += 1
        Frame(.topicData, number: sequence).write(to: &loan)
        let slice = peer.keep(loan)
        statistics.published += 1
        // Into the history before the fan-out: a subscriber that joins while this
        // publish waits gets it from the history, and is not in this fan-out.
        if options.history > 0 {
            history.append((sequence, slice))
            if history.count > options.history { peer.letGo(history.removeFirst().slice) }
        } else {
            defer { peer.letGo(slice) }
            return try fanOut(slice, sequence: sequence, deadline: deadline)
        }
        return try fanOut(slice, sequence: sequence, deadline: deadline)
    }

    /// Sends `slice` to every subscriber that may get `sequence`, by the policy.
    private func fanOut(_ slice: KeptSlice, sequence: UInt64, deadline: Deadline) throws(Bus1Error) -> Receipt {
        var receipt = Receipt(sequence: sequence)
        var waiting = subscribers.filter { $0.firstSequence <= sequence }.map(\.handle)
        while true {
            let (ready, full) = try classify(waiting, for: slice, receipt: &receipt)
            send(slice, to: ready, receipt: &receipt)
            waiting = full
            if waiting.isEmpty { return receipt }
            switch options.whenFull {
            case .skip:
                receipt.skipped += waiting.count
                statistics.skipped += UInt64(waiting.count)
                return receipt
            case .disconnect:
                for handle in waiting { try drop(handle) }
                receipt.dropped += waiting.count
                return receipt
            case .block:
                statistics.waits += 1
                try peer.waitUntil(mode: peer.options.waitMode, deadline: deadline) { () throws(Bus1Error) -> Bool in
                    try self.serveInbox(taking: { () throws(Bus1Error) in try self.peer.nextMessage() })
                    return self.anyReady(waiting)
                }
            }
        }
    }

    /// Splits `handles` into those ready for `slice` now and those whose ring is
    /// full; forgets subscribers that are gone, skips those that cannot read it.
    private func classify(_ handles: [Handle], for slice: KeptSlice,
                          receipt: inout Receipt) throws(Bus1Error) -> (ready: [Handle], full: [Handle]) {
        var ready: [Handle] = []
        var full: [Handle] = []
        for handle in handles where subscribers.contains(where: { $0.handle == handle }) {
            let route: Peer.SendRoute
            let hasRoom: Bool
            do {
                route = try peer.sendTarget(handle)
                hasRoom = try peer.hasCredit(route.channel)  // closes the channel if its completions are corrupt
            } catch {
                try forget(handle)  // its peer left or broke its channel: not an error of this publish
                statistics.left += 1
                continue
            }
            if !peer.pool.isReadable(slice.offset, by: route.ownerUID) {
                receipt.skipped += 1
                statistics.skipped += 1
            } else if hasRoom {
                ready.append(handle)
            } else {
                full.append(handle)
            }
        }
        return (ready, full)
    }

    /// Whether any of `handles` has room now or is gone (a blocked publish goes on).
    private func anyReady(_ handles: [Handle]) -> Bool {
        for handle in handles {
            guard subscribers.contains(where: { $0.handle == handle }),
                  let channel = try? peer.sendTarget(handle).channel,
                  let hasRoom = try? peer.hasCredit(channel) else { return true }  // gone: the next round forgets it
            if hasRoom { return true }
        }
        return false
    }

    /// Sends `slice` to `handles` (each found ready), as few multicasts as the peer
    /// allows. One whose channel closed since (a control event served on the way)
    /// is left out: the next publish forgets it.
    private func send(_ slice: KeptSlice, to handles: [Handle], receipt: inout Receipt) {
        var plan = Peer.MulticastPlan(capacity: min(handles.count, peer.options.maximumMulticast))
        for handle in handles {
            guard let route = try? peer.sendTarget(handle), route.channel.closedReason == nil,
                  route.channel.producer.hasCredit(plan.needed(on: route.channel) + 1) else { continue }
            plan.add(handle, node: route.node, on: route.channel)
            if plan.destinations.count == peer.options.maximumMulticast {
                flush(&plan, slice, &receipt)
            }
        }
        flush(&plan, slice, &receipt)
    }

    /// Sends `slice` as `plan` says (if it has destinations) and empties it.
    private func flush(_ plan: inout Peer.MulticastPlan, _ slice: KeptSlice, _ receipt: inout Receipt) {
        guard !plan.destinations.isEmpty else { return }
        peer.send(slice, as: plan)
        receipt.delivered += plan.destinations.count
        statistics.delivered += UInt64(plan.destinations.count)
        plan = Peer.MulticastPlan(capacity: plan.destinations.count)
    }

    // MARK: Serving subscriptions

    /// Takes in what subscribers and contributors sent: subscriptions,
    /// unsubscriptions, the notifications of subscribers that left, and
    /// contributions, which it publishes (under ``FullRingPolicy/block`` that
    /// waits for room, as any publish does).
    public func serve() throws(Bus1Error) {
        try serveInbox(taking: { () throws(Bus1Error) in try self.peer.tryReceive() })
        while try publishContribution() != nil {}
    }

    /// Serves the topic until ``Peer/interrupter`` interrupts it
    /// (``Bus1Error/interrupted``) or the bus goes away: for a host that only
    /// relays (its publishers are contributors).
    public func run() throws(Bus1Error) -> Never {
        while true { try relay { _, _ throws(Bus1Error) in true } }
    }

    /// Serves the topic, and after publishing each contribution hands it to
    /// `body` (its sequence number and bytes), until `body` returns false: for a
    /// host that also watches what others publish (`bus1ctl subscribe` when
    /// nobody hosts the topic yet).
    public func relay(_ body: (_ sequence: UInt64, _ payload: Span<UInt8>) throws(Bus1Error) -> Bool) throws(Bus1Error) {
        while true {
            try serveInbox(taking: { () throws(Bus1Error) in try self.peer.tryReceive() })
            while let (sequence, contribution) = try publishContribution() {
                let keepGoing = try contribution.withFramedPayload { (raw) throws(Bus1Error) -> Bool in
                    try body(sequence, Span(_unsafeElements: raw.assumingMemoryBound(to: UInt8.self)))
                }
                if !keepGoing { return }
            }
            try peer.waitUntil(mode: .park, deadline: .never) { () throws(Bus1Error) -> Bool in
                try self.serveInbox(taking: { () throws(Bus1Error) in try self.peer.nextMessage() })
                return !self.contributions.isEmpty
            }
        }
    }

    /// Waits until at least `count` subscribers are in (for a publisher that must
    /// not start before its audience: tests, one-shot tools).
    public func waitForSubscribers(_ count: Int, timeout: Duration) throws(Bus1Error) {
        try serve()
        guard subscribers.count < count else { return }
        try peer.waitUntil(mode: .park, deadline: .after(timeout)) { () throws(Bus1Error) -> Bool in
            try self.serveInbox(taking: { () throws(Bus1Error) in try self.peer.nextMessage() })
            return self.subscribers.count >= count
        }
    }

    /// Waits until every subscriber released every message sent so far (all but
    /// the history's slices came back), serving the topic meanwhile: a host
    /// that leaves takes its undelivered messages with it, so a producer whose
    /// last messages matter flushes before it leaves.
    public func flush(timeout: Duration? = nil) throws(Bus1Error) {
        try serve()
        try peer.waitUntil(mode: .park, deadline: .after(timeout)) { () throws(Bus1Error) -> Bool in
            try self.serveInbox(taking: { () throws(Bus1Error) in try self.peer.nextMessage() })
            try self.peer.reclaimCompleted()
            return self.peer.pool.slicesInUse <= self.history.count
        }
    }

    /// Handles every message `next` yields until it yields none.
    private func serveInbox(taking next: () throws(Bus1Error) -> Message?) throws(Bus1Error) {
        while let message = try next() { try handle(message) }
    }

    private func handle(_ message: consuming Message) throws(Bus1Error) {
        switch message.kind {
        case .nodeDestroyed:
            // A subscriber's node is gone (it left or crashed): not an error of anyone's publish.
            if try forget(message.node) { statistics.left += 1 }
            return
        case .nodeReleased:
            return  // nobody holds the topic's node any more: nothing to do
        case .data:
            break
        }
        var keep: Handle?
        let attached = message.handles
        defer { peer.releaseAttached(attached, except: keep) }
        guard message.node == node, let frame = message.frame else {
            statistics.malformed += 1
            return
        }
        switch frame.kind {
        case .subscribe:
            guard let inbox = peer.senderOwnNode(attachedTo: message) else {
                statistics.malformed += 1  // no handle, or one to a node not the subscriber's
                return
            }
            if try subscribe(peer: message.sender, inbox: inbox) { keep = inbox }
        case .unsubscribe:
            if let subscriber = subscribers.first(where: { $0.peer == message.sender }), try forget(subscriber.handle) {
                statistics.left += 1
            }
        case .contribute:
            if attached.isEmpty { contributions.append(MessageBox(message)) } else { statistics.malformed += 1 }
        default:
            statistics.malformed += 1
        }
    }

    /// Adds a subscriber (replacing its peer's earlier one): tells it the first
    /// sequence it gets, then sends it the history (skipping what has no room).
    /// False if the welcome could not be sent (no room in its ring or in the
    /// pool, a closed channel): the handle is not kept, and the subscriber learns
    /// from its node's release that it is not in (``Bus1Error/SubscriptionEnd/dropped``).
    private func subscribe(peer sender: UInt64, inbox: Handle) throws(Bus1Error) -> Bool {
        if let earlier = subscribers.first(where: { $0.peer == sender }) { try forget(earlier.handle) }
        let first = history.first?.sequence ?? nextSequence
        do {
            var welcome = try peer.patternLoan(0, for: inbox, wait: nil, deadline: .never)
            Frame(.subscribed, number: first).write(to: &welcome)
            guard try peer.trySend(welcome, to: inbox) == nil else { return false }
        } catch .coordinatorGone {
            throw .coordinatorGone
        } catch {
            return false
        }
        subscribers.append(Subscriber(peer: sender, handle: inbox, firstSequence: first))
        for kept in history {
            var receipt = Receipt(sequence: kept.sequence)
            let (ready, full) = try classify([inbox], for: kept.slice, receipt: &receipt)
            send(kept.slice, to: ready, receipt: &receipt)
            statistics.skipped += UInt64(full.count)
        }
        return true
    }

    /// Drops a subscriber whose ring stayed full: closes the channel to it, so
    /// every slice it holds comes back at once (a subscriber that holds messages
    /// without reading cannot pin the pool), and gives its handle back, so its
    /// node's last reference is gone and it learns it was dropped.
    private func drop(_ handle: Handle) throws(Bus1Error) {
        guard subscribers.contains(where: { $0.handle == handle }) else { return }
        try peer.closeChannel(to: handle)
        if try forget(handle) { statistics.dropped += 1 }
    }

    /// Takes a subscriber out of the set and gives its handle back; false if it
    /// was not in the set.
    @discardableResult
    private func forget(_ handle: Handle) throws(Bus1Error) -> Bool {
        guard let index = subscribers.firstIndex(where: { $0.handle == handle }) else { return false }
        subscribers.remove(at: index)
        try release(handle)
        return true
    }

    /// Gives a handle back, whatever happened to its node or channel meanwhile.
    private func release(_ handle: Handle) throws(Bus1Error) {
        do {
            try peer.release(handle)
        } catch .unknownHandle {
            // Forgotten already (its node was destroyed).
        }
    }

    /// Publishes the oldest contribution, taken off the queue first: a copy into
    /// this host's pool, if the pool has room now (one that does not fit is
    /// dropped, counted in ``Statistics/contributionsDropped``, and the next is
    /// tried; none is ever published twice). Returns its sequence number and the
    /// contribution; nil when none is left, or while a publish is under way (the
    /// next call that serves the topic publishes them).
    private func publishContribution() throws(Bus1Error) -> (UInt64, MessageBox)? {
        while !publishing, !contributions.isEmpty {
            let contribution = contributions.removeFirst()
            let count = contribution.withFramedPayload { $0.count }
            var copy: Loan
            do {
                copy = try loan(count, wait: nil, deadline: .never)
            } catch .payloadTooLarge, .wouldBlock {
                statistics.contributionsDropped += 1
                continue
            }
            copy.withUnsafeMutableBytes { target in contribution.withFramedPayload { target.copyMemory(from: $0) } }
            copy.count = count
            statistics.contributions += 1
            return (try publishNow(copy, deadline: .never).sequence, contribution)
        }
        return nil
    }
}

/// A message in a class box, so a queue can hold it (a `Message` is not copyable).
final class MessageBox {
    let message: Message
    init(_ message: consuming Message) { self.message = message }

    /// The bytes after the pattern frame, as a raw buffer valid only inside `body`.
    func withFramedPayload<Result, Failure: Error>(_ body: (UnsafeRawBufferPointer) throws(Failure) -> Result) throws(Failure) -> Result {
        try message.withUnsafePayload { (raw) throws(Failure) -> Result in try body(UnsafeRawBufferPointer(rebasing: raw[Frame.size...])) }
    }
}

extension Array where Element == UInt8 {
    /// A copy of `span`'s bytes.
    init(copying span: Span<UInt8>) {
        self.init(unsafeUninitializedCapacity: span.count) { buffer, count in
            span.withUnsafeBufferPointer { source in _ = buffer.initialize(fromContentsOf: source) }
            count = span.count
        }
    }
}
