import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc
import Synchronization

/// A slice of the sender's own pool, loaned to be filled in place and then sent.
///
/// Write the payload into ``bytes`` and set ``count`` to the bytes to send (it
/// starts at the size asked for). Sending consumes the loan; dropping it returns
/// the slice to the pool.
public struct Loan: ~Copyable {
    /// Retained while the loan lives: the pool must outlive the slice.
    private let owner: Unmanaged<Peer>
    let offset: UInt64
    /// The whole slice (at least the size asked for), writable.
    public let bytes: UnsafeMutableRawBufferPointer
    /// Bytes to send, `0...bytes.count`.
    public var count: Int {
        didSet { precondition(count >= 0 && count <= bytes.count, "loan count outside the slice") }
    }

    init(owner: Peer, offset: UInt64, bytes: UnsafeMutableRawBufferPointer, count: Int) {
        self.owner = Unmanaged.passRetained(owner)
        self.offset = offset
        self.bytes = bytes
        self.count = count
    }

    /// The payload to send: the first ``count`` bytes.
    public var payload: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: bytes[..<count]) }

    /// Hands the slice over to a send: no free in `deinit`.
    consuming func detach() -> (offset: UInt64, count: Int) {
        let result = (offset, count)
        owner.release()
        discard self
        return result
    }

    deinit {
        owner.takeRetainedValue().pool.freeLoan(offset)
    }
}

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
    /// The payload, valid while the message lives. Honest limit of user space: a
    /// hostile sender can still change these bytes while you read them.
    public let payload: UnsafeRawBufferPointer
    /// Handles and fds that came with it, if the sender attached any.
    public let attachment: Attachment?

    /// `payload`: where the descriptor's slice is mapped here.
    init(channel: InboundChannel, descriptor: bus1_descriptor, payload: UnsafeRawPointer, attachment: Attachment? = nil) {
        self.channel = channel
        self.offset = descriptor.offset
        self.kind = .data
        self.ticket = descriptor.ticket
        self.node = Handle(id: descriptor.node)
        self.sender = channel.sender
        self.payload = UnsafeRawBufferPointer(start: payload, count: Int(descriptor.length))
        self.attachment = attachment
    }

    init(notification kind: Kind, channel: InboundChannel, descriptor: bus1_descriptor) {
        self.channel = channel
        self.offset = .max
        self.kind = kind
        self.ticket = descriptor.ticket
        self.node = Handle(id: descriptor.node)
        self.sender = descriptor.offset
        self.payload = UnsafeRawBufferPointer(start: nil, count: 0)
        self.attachment = nil
    }

    /// The handles that came with it (none if nothing was attached).
    public var handles: [Handle] { attachment?.handles ?? [] }

    deinit {
        if offset != .max { channel.release(offset: offset) }
    }
}

extension Peer {
    // MARK: Sending

    /// Loans a slice of at least `byteCount` bytes of this peer's pool, readable
    /// by peers of this peer's own uid (for peers of other uids:
    /// ``loan(_:for:wait:timeoutNanoseconds:)``). With no `wait`, a full pool is
    /// ``Bus1Error/wouldBlock(_:)``; with one, waits for receivers to release
    /// slices (until `timeoutNanoseconds`, if given).
    public func loan(_ byteCount: Int, wait: WaitMode? = nil, timeoutNanoseconds: UInt64? = nil) throws(Bus1Error) -> Loan {
        try loan(byteCount, segment: 0, wait: wait, timeoutNanoseconds: timeoutNanoseconds)
    }

    /// A loan in pool segment `segment`.
    func loan(_ byteCount: Int, segment: Int, wait: WaitMode?, timeoutNanoseconds: UInt64?) throws(Bus1Error) -> Loan {
        guard byteCount >= 0, byteCount <= maximumPayload else { throw .payloadTooLarge(requested: byteCount, maximum: maximumPayload) }
        if let offset = pool.allocate(byteCount, in: segment) { return makeLoan(offset, byteCount) }
        try reclaimCompleted()
        if let offset = pool.allocate(byteCount, in: segment) { return makeLoan(offset, byteCount) }
        guard let mode = wait else { throw .wouldBlock(.poolExhausted(requested: byteCount)) }
        var found: UInt64?
        try waitUntil(mode: mode, timeoutNanoseconds: timeoutNanoseconds) { () throws(Bus1Error) -> Bool in
            try self.reclaimCompleted()
            found = self.pool.allocate(byteCount, in: segment)
            return found != nil
        }
        return makeLoan(found!, byteCount)
    }

    private func makeLoan(_ offset: UInt64, _ count: Int) -> Loan {
        let capacity = pool.capacity(at: offset)!
        return Loan(owner: self, offset: offset, bytes: UnsafeMutableRawBufferPointer(start: pool.pointer(at: offset), count: capacity),
                    count: count)
    }

    /// Sends a filled loan to the node `handle` names. Returns the loan back,
    /// unsent, if the channel has no credit (the receiver holds `capacity`
    /// messages); throws for everything else (the loan is then freed).
    public func trySend(_ loan: consuming Loan, to handle: Handle) throws(Bus1Error) -> Loan? {
        try serviceControl()
        let (target, channel) = try sendTarget(handle)
        try checkAudience(loan.offset, handle, target)
        if try !hasCredit(channel) { return loan }
        publish(loan, to: target, on: channel, flags: 0)
        return nil
    }

    /// Whether `channel` has credit for `count` more descriptors, taking its
    /// completions back first if it has not. Throws ``Bus1Error/channelClosed(peer:reason:)``
    /// if taking them back closed it (its receiver corrupted the completion ring):
    /// nothing may be published on a closed channel, or the slice would be sent
    /// after the channel's slices were reclaimed, and never come back.
    @inline(__always)
    private func hasCredit(_ channel: OutboundChannel, _ count: Int = 1) throws(Bus1Error) -> Bool {
        if channel.producer.hasCredit(count) { return true }
        try drain(channel)
        if let reason = channel.closedReason { throw .channelClosed(peer: channel.receiver, reason: reason) }
        return channel.producer.hasCredit(count)
    }

    /// Where a send to `handle` goes; throws for an unknown, own, destroyed or closed one.
    @inline(__always)
    private func sendTarget(_ handle: Handle) throws(Bus1Error) -> (HandleTarget, OutboundChannel) {
        guard let target = handles[handle.id] else { throw .unknownHandle(handle) }
        return (target, try channel(of: target, handle))
    }

    /// The open channel a send to `target` takes; throws for an own, destroyed or closed one.
    @inline(__always)
    private func channel(of target: HandleTarget, _ handle: Handle) throws(Bus1Error) -> OutboundChannel {
        if case .own = target.route { throw .ownNode(handle) }
        if target.isDestroyed { throw .nodeDestroyed(handle) }
        switch target.route {
        case .open(let channel):
            if let reason = channel.closedReason { throw .channelClosed(peer: channel.receiver, reason: reason) }
            return channel
        case .closed(let peer, let reason): throw .channelClosed(peer: peer, reason: reason)
        case .own: throw .ownNode(handle)
        }
    }

    /// Throws unless the owner of `handle`'s node can read the slice at `offset`:
    /// a payload never goes where its reader cannot map it, and never into a
    /// segment readers of other uids share.
    @inline(__always)
    private func checkAudience(_ offset: UInt64, _ handle: Handle, _ target: HandleTarget) throws(Bus1Error) {
        guard pool.isReadable(offset, by: target.ownerUID) else { throw .notInAudience(handle, ownerUID: target.ownerUID) }
    }

    /// Publishes one filled loan on `channel` (which has credit), by the send
    /// protocol (`Publisher`): ledger and descriptor between ticket and unstage.
    @inline(__always)
    private func publish(_ loan: consuming Loan, to target: HandleTarget, on channel: OutboundChannel, flags: UInt32) {
        assert(channel.closedReason == nil, "publishing on a closed channel: its slice would never come back")
        let (offset, count) = loan.detach()
        let sent = publisher.send(on: CollectionOfOne(channel.lane)) { ticket in
            pool.markSent(offset, channelTag: channel.tag, ticket: ticket, receiver: channel.receiver, length: count)
            channel.producer.submit(bus1_descriptor(ticket: ticket, node: target.node, offset: offset, length: UInt32(count), flags: flags))
        }
        if let anomaly = sent.anomaly { noteClockAnomaly(anomaly) }
        statistics.messagesSent += 1
    }

    /// Counts and reports one clock anomaly (a rewound, wrapped or jumped clock).
    @inline(never)
    func noteClockAnomaly(_ anomaly: ClockAnomaly) {
        statistics.clockAnomalies += 1
        events.append(.clockAnomaly(clock: anomaly.taken, issued: anomaly.issued))
    }

    /// Sends a filled loan to `handle` with handles and fds attached (up to 16
    /// handles this peer holds, up to 4 fds; Unix sockets and the bus's own
    /// memfds are refused with ``Refusal/descriptorRefused(_:)``). The receiver gets
    /// its own handles (one reference each) and duplicates of the fds in
    /// ``Message/attachment``; the caller keeps its fds. A handle whose node is
    /// destroyed before the message's ticket arrives as ``Handle/invalid``.
    /// Costs a coordinator round trip; the payload still travels zero-copy.
    public func send(_ loan: consuming Loan, to handle: Handle, attaching passed: [Handle], fileDescriptors: [Int32] = [],
                     wait: WaitMode? = nil, timeoutNanoseconds: UInt64? = nil) throws(Bus1Error) {
        guard passed.count <= Int(BUS1_ATTACH_MAX_HANDLES), fileDescriptors.count <= Int(BUS1_MSG_MAX_FDS) else {
            throw .attachmentTooLarge(handles: passed.count, fileDescriptors: fileDescriptors.count)
        }
        try serviceControl()
        var (target, channel) = try sendTarget(handle)
        try checkAudience(loan.offset, handle, target)
        for handle in passed where handles[handle.id] == nil { throw .unknownHandle(handle) }
        if try !hasCredit(channel) {
            guard let mode = wait else { throw .wouldBlock(.ringFull(handle)) }
            try awaitCredit(on: channel, mode: mode, timeoutNanoseconds: timeoutNanoseconds)
        }
        (target, channel) = try sendTarget(handle)  // closed while waiting?
        _ = try request(.attach(destination: handle.id, handles: passed.map(\.id), fdCount: UInt32(fileDescriptors.count),
                                sequence: channel.producer.nextIndex),
                        fds: fileDescriptors)
        (target, channel) = try sendTarget(handle)  // the request served events: still there?
        publish(loan, to: target, on: channel, flags: BUS1_DESC_ATTACHMENT)
    }

    /// Sends one slice to every node in `destinations` (1...``PeerOptions/maximumMulticast``),
    /// atomically: every destination gets it, under one ticket, or none does. A
    /// destination without credit fails the whole send with
    /// ``Bus1Error/wouldBlock(_:)`` naming it (or, with `wait`, waits until all have
    /// credit); a closed or unknown one fails it with the matching error. The slice
    /// returns to the pool when the last receiver releases it.
    public func send(_ loan: consuming Loan, to destinations: [Handle], wait: WaitMode? = nil,
                     timeoutNanoseconds: UInt64? = nil) throws(Bus1Error) {
        guard destinations.count >= 1, destinations.count <= options.maximumMulticast else {
            throw .badDestinationCount(destinations.count, maximum: options.maximumMulticast)
        }
        if destinations.count == 1 { return try send(loan, to: destinations[0], wait: wait, timeoutNanoseconds: timeoutNanoseconds) }
        try serviceControl()
        var targets: [(channel: OutboundChannel, node: UInt64)] = []
        targets.reserveCapacity(destinations.count)
        var channels: [OutboundChannel] = []  // distinct, with how many descriptors each needs
        var needed: [Int] = []
        for handle in destinations {
            let (target, channel) = try sendTarget(handle)
            try checkAudience(loan.offset, handle, target)
            targets.append((channel, target.node))
            if let i = channels.firstIndex(where: { $0 === channel }) { needed[i] += 1 } else { channels.append(channel); needed.append(1) }
        }
        /// The first destination that is closed or short of credit, after taking back completions.
        func firstBlocked() throws(Bus1Error) -> Int? {
            for (i, channel) in channels.enumerated() {
                if let reason = channel.closedReason { throw .channelClosed(peer: channel.receiver, reason: reason) }
                if try !hasCredit(channel, needed[i]) { return i }
            }
            return nil
        }
        if let blocked = try firstBlocked() {
            let handle = destinations[targets.firstIndex { $0.channel === channels[blocked] }!]
            guard let mode = wait else { throw .wouldBlock(.ringFull(handle)) }
            try waitUntil(mode: mode, timeoutNanoseconds: timeoutNanoseconds) { () throws(Bus1Error) -> Bool in
                try self.serviceControl()
                return try firstBlocked() == nil
            }
        }
        let (offset, count) = loan.detach()
        lanes.removeAll(keepingCapacity: true)
        for channel in channels { lanes.append(channel.lane) }
        let sent = publisher.send(on: lanes) { ticket in
            pool.markSent(offset, channelTags: targets.map { $0.channel.tag }, ticket: ticket, length: count)
            for target in targets {
                target.channel.producer.submit(bus1_descriptor(ticket: ticket, node: target.node, offset: offset, length: UInt32(count), flags: 0))
            }
        }
        if let anomaly = sent.anomaly { noteClockAnomaly(anomaly) }
        statistics.messagesSent += 1
    }

    /// Sends a filled loan to `handle`. A channel without credit is
    /// ``Bus1Error/wouldBlock(_:)`` when `wait` is nil; otherwise waits for the
    /// receiver to release messages (until `timeoutNanoseconds`, if given).
    public func send(_ loan: consuming Loan, to handle: Handle, wait: WaitMode? = nil, timeoutNanoseconds: UInt64? = nil) throws(Bus1Error) {
        guard let pending = try trySend(loan, to: handle) else { return }
        guard let mode = wait else { throw .wouldBlock(.ringFull(handle)) }
        try awaitCredit(on: handles[handle.id]!.channel!, mode: mode, timeoutNanoseconds: timeoutNanoseconds)
        // Credit (or a close) arrived; one thread owns this peer, so it cannot vanish again.
        if try trySend(pending, to: handle) != nil { preconditionFailure("credit vanished while waiting") }
    }

    /// Waits until `channel` has credit again (its receiver released messages) or closed.
    private func awaitCredit(on channel: OutboundChannel, mode: WaitMode, timeoutNanoseconds: UInt64?) throws(Bus1Error) {
        try waitUntil(mode: mode, timeoutNanoseconds: timeoutNanoseconds) { () throws(Bus1Error) -> Bool in
            try self.serviceControl()
            if channel.closedReason != nil { return true }
            try self.drain(channel)
            return channel.producer.hasCredit
        }
    }

    /// Convenience: loans (readable by the node's owner), copies `bytes` in, sends.
    /// (The zero-copy path is ``loan(_:for:wait:timeoutNanoseconds:)`` + writing in
    /// place + ``send(_:to:wait:timeoutNanoseconds:)``.)
    public func send(copying bytes: UnsafeRawBufferPointer, to handle: Handle, wait: WaitMode? = nil) throws(Bus1Error) {
        let loan = try self.loan(bytes.count, for: handle, wait: wait)
        if bytes.count > 0 { loan.bytes.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        try send(loan, to: handle, wait: wait)
    }

    /// Takes back every slice receivers have released. Returns how many.
    @discardableResult
    public func reclaimCompleted() throws(Bus1Error) -> Int {
        try serviceControl()
        var total = 0
        for channel in outbound.values { total += try drain(channel) }
        return total
    }

    @discardableResult
    private func drain(_ channel: OutboundChannel) throws(Bus1Error) -> Int {
        guard channel.closedReason == nil else { return 0 }
        let tag = channel.tag
        do {
            return try channel.producer.drainCompletions { offset in self.pool.reclaim(offset, channelTag: tag) }
        } catch {
            // The receiver returned a slice it was never given, or twice, or moved
            // its completion index wrongly: close the channel, here first, then at
            // the coordinator (which tells the receiver).
            statistics.violationsDetected += 1
            events.append(.violationDetected(peer: channel.receiver, violation: error))
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
    /// ledger), whatever its receiver wrote into the completion ring. Handles to
    /// the receiver's nodes keep only why it closed, so the channel and the
    /// receiver's wake page are unmapped now, and its pool tag is free again. The
    /// coordinator's `channelClosed` for it later finds nothing left to do.
    func closeOutbound(_ channel: OutboundChannel, reason: CloseReason) {
        guard channel.closedReason == nil else { return }
        channel.closedReason = reason
        outbound.removeValue(forKey: channel.id)
        channel.producer.abandonOutstanding()
        pool.reclaimAll(channelTag: channel.tag)
        channelTags.give(channel.tag)
        for (handle, target) in handles where target.channel === channel {
            handles[handle]?.route = .closed(peer: channel.receiver, reason: reason)
        }
        events.append(.outboundClosed(peer: channel.receiver, reason: reason))
    }

    // MARK: Receiving

    /// The next message if one is ready now. On a globally ordered bus messages
    /// come in ticket order across all inbound channels (see ``nextInOrder()``); on
    /// a FIFO-only bus, channels take turns. Each channel is FIFO either way.
    public func tryReceive() throws(Bus1Error) -> Message? {
        try serviceControl()
        while true {
            let next: (channel: InboundChannel, descriptor: bus1_descriptor)?
            if inbound.count <= 1 || ordering == .fifo {
                next = try nextInTurn()
            } else {
                next = try nextInOrder()
            }
            if controlEventsPending() {
                // A channel we have not mapped yet may hold a lower ticket: the coordinator
                // announced it before that ticket existed, so this load (after reading the
                // candidate's tail) sees the announcement. So does a notification being
                // staged on the coordinator ring. Learn of them, then merge again.
                try serviceControl()
                continue
            }
            if ringMayHoldNotifications {
                // The coordinator ring is merged last, as pass 2 of the merge reads every
                // other channel: its mark, then its tail, both after the candidate's tail.
                let ringMark = coordinatorRing.consumer.stagingMark()
                let note: bus1_descriptor?
                do { note = try coordinatorRing.consumer.peek() } catch { throw .protocolViolation("coordinator ring: \(error)") }
                if let note, ordering == .fifo || next.map({ note.ticket < $0.descriptor.ticket }) ?? true {
                    coordinatorRing.consumer.advance(ticket: note.ticket)
                    return notification(note)
                }
                if note == nil && ringMark == 0 {
                    ringMayHoldNotifications = false
                } else if let next, note == nil, ordering == .global, ringMark <= next.descriptor.ticket {
                    return nil  // a notification below it is being published
                }
            }
            guard let (channel, descriptor) = next else { return nil }
            if !destroyedNodes.isEmpty, let destroyedAt = destroyedNodes[descriptor.node],
               ordering == .fifo || descriptor.ticket > destroyedAt {
                // Ordered after the node's destruction: not delivered; the slice goes back.
                try drop(descriptor, from: channel)
                continue
            }
            if !channel.allowedNodes.contains(descriptor.node) {
                // A grant may be queued behind the descriptor: serve the socket, then judge.
                try checkCoordinatorAlive()
                if !channel.allowedNodes.contains(descriptor.node) {
                    try reportViolation(channel, .badNode)
                    continue
                }
            }
            let payload: UnsafeRawPointer
            switch channel.slice(offset: descriptor.offset, length: descriptor.length) {
            case .mapped(let start):
                payload = start
            case .unmapped(let segment):
                // The first descriptor naming a segment of this sender: ask for it (the
                // request may serve events, so merge again after).
                try mapSegment(segment, of: channel)
                continue
            case .invalid:
                try reportViolation(channel, .badSlice)
                continue
            }
            var attachment: Attachment?
            if descriptor.flags & BUS1_DESC_ATTACHMENT != 0 {
                guard let taken = try takeAttachment(from: channel, at: channel.consumer.index) else {
                    try reportViolation(channel, .badDescriptor)
                    continue
                }
                attachment = taken
            }
            else if !channel.attachments.isEmpty {
                dropStaleAttachments(of: channel, through: channel.consumer.index)
            }
            channel.take(descriptor)
            statistics.messagesReceived += 1
            return Message(channel: channel, descriptor: descriptor, payload: payload, attachment: attachment)
        }
    }

    /// The attachment of the descriptor at submission `index` of `channel`, with
    /// handles whose node this peer has seen destroyed (ordered before this
    /// message) made invalid; attachments for earlier indices that never came are
    /// dropped on the way. Nil if a lying sender set the flag without one.
    private func takeAttachment(from channel: InboundChannel, at index: UInt64) throws(Bus1Error) -> Attachment? {
        // Pending attachments rise strictly by index (one that arrives drops those it
        // supersedes, and one behind the consumer index is dropped on arrival), so
        // after the stale ones the first is this message's, or it is still in the
        // socket: the coordinator put it there before the sender could publish.
        dropStaleAttachments(of: channel, through: index &- 1)
        if channel.attachments.first?.sequence != index { try checkCoordinatorAlive() }
        guard channel.attachments.first?.sequence == index else { return nil }
        let attachment = channel.attachments.removeFirst()
        attachment.handles = attachment.handles.map { handle in
            guard let target = handles[handle.id], target.isDestroyed, target.owner != id else { return handle }
            handles[handle.id] = nil  // the coordinator forgot it when it destroyed the node
            return .invalid
        }
        return attachment
    }

    /// Drops the attachments of `channel` meant for descriptors up to `index` that
    /// did not carry them: the sender attached, then did not send (the node it
    /// addressed was destroyed meanwhile, the request timed out, it lies). Their
    /// handles go back to the coordinator and their fds close, instead of waiting
    /// for the channel to close, and no later message can take them.
    private func dropStaleAttachments(of channel: InboundChannel, through index: UInt64) {
        while let first = channel.attachments.first, first.sequence &- index > UInt64.max / 2 || first.sequence == index {
            dropAttachment(channel.attachments.removeFirst())
        }
    }

    /// Takes a descriptor without delivering it: its slice goes back to the sender,
    /// its attachment's handles back to the coordinator.
    private func drop(_ descriptor: bus1_descriptor, from channel: InboundChannel) throws(Bus1Error) {
        if descriptor.flags & BUS1_DESC_ATTACHMENT != 0, let attachment = try takeAttachment(from: channel, at: channel.consumer.index) {
            dropAttachment(attachment)
        } else if !channel.attachments.isEmpty {
            dropStaleAttachments(of: channel, through: channel.consumer.index)
        }
        channel.take(descriptor)
        channel.release(offset: descriptor.offset)
    }

    /// A notification from the coordinator ring, applied to this peer's tables.
    private func notification(_ descriptor: bus1_descriptor) -> Message {
        if descriptor.flags == BUS1_NOTE_NODE_DESTROYED.rawValue {
            handles[descriptor.node]?.isDestroyed = true
            return Message(notification: .nodeDestroyed, channel: coordinatorRing, descriptor: descriptor)
        }
        return Message(notification: .nodeReleased, channel: coordinatorRing, descriptor: descriptor)
    }

    /// Round robin over the inbound channels: the next one with a descriptor.
    private func nextInTurn() throws(Bus1Error) -> (InboundChannel, bus1_descriptor)? {
        var tried = 0
        while tried < inbound.count {
            if nextInbound >= inbound.count { nextInbound = 0 }
            let channel = inbound[nextInbound]
            do {
                if let descriptor = try channel.consumer.peek() {
                    if ordering == .fifo { nextInbound += 1 }  // take turns; a single channel stays put
                    return (channel, descriptor)
                }
                nextInbound += 1
                tried += 1
            } catch {
                try reportViolation(channel, error)  // removes it; the same index now holds the next one
            }
        }
        return nil
    }

    /// The descriptor with the lowest ticket, if no other inbound channel can still
    /// produce a lower one (`TicketMerge`). A channel that held delivery back for
    /// ``PeerOptions/orderingStallTimeoutNanoseconds`` is excused: the stall is
    /// counted, evented and reported to the coordinator, and delivery goes on.
    private func nextInOrder() throws(Bus1Error) -> (InboundChannel, bus1_descriptor)? {
        while true {
            switch TicketMerge.next(inbound, now: monotonicNanoseconds, stallTimeout: options.orderingStallTimeoutNanoseconds) {
            case .deliver(let link, let head):
                return (inbound[link], head)
            case .wait:
                return nil
            case .stalled(let link):
                let channel = inbound[link]
                statistics.orderingStalls += 1
                events.append(.orderingStall(peer: channel.sender))
                do { try request(.orderingStall(channel: channel.id)) } catch .refused(.handleUnknown) {}
                // The request may have served events: merge again.
            case .violation(let link, let violation):
                try reportViolation(inbound[link], violation)
            }
        }
    }

    /// Waits for the next message in `mode` (default: the peer's wait mode), up to
    /// `timeoutNanoseconds`. Throws ``Bus1Error/timedOut`` when it passes and
    /// ``Bus1Error/coordinatorGone`` if the bus dies meanwhile.
    public func receive(mode: WaitMode? = nil, timeoutNanoseconds: UInt64? = nil) throws(Bus1Error) -> Message {
        if let message = try tryReceive() { return message }
        // While a staged sender may be holding delivery back, wake often enough to
        // honour the stall timeout even if nobody rings.
        let slice = ordering == .global && inbound.count > 1
            ? Int64(min(options.orderingStallTimeoutNanoseconds, 200_000_000)) : 200_000_000
        try waitUntil(mode: mode ?? options.waitMode, timeoutNanoseconds: timeoutNanoseconds, sliceNanoseconds: slice) { () throws(Bus1Error) -> Bool in
            self.received = try self.tryReceive()
            return self.received != nil
        }
        return received.take()!
    }

    /// Waits on this peer's doorbell until `ready` holds; checks that the coordinator
    /// is alive whenever a park times out.
    func waitUntil(mode: WaitMode, timeoutNanoseconds: UInt64?, sliceNanoseconds: Int64 = 200_000_000,
                   _ ready: () throws(Bus1Error) -> Bool) throws(Bus1Error) {
        let deadline = timeoutNanoseconds.map { monotonicNanoseconds() &+ $0 }
        var spins = 0
        let satisfied: Bool
        do {
            satisfied = try waiter.wait(mode: mode, deadline: deadline, sliceNanoseconds: sliceNanoseconds,
                                        onPark: { self.statistics.parks += 1 }) {
                if try ready() { return true }
                spins &+= 1
                if spins & 0xFFFF == 0 { try self.checkCoordinatorAlive() }  // busy-poll never parks
                return false
            } idle: {
                try self.checkCoordinatorAlive()
            }
        } catch let error as Bus1Error {
            throw error
        } catch {
            throw .system(error as? LinuxError ?? LinuxError("wait", code: EIO))
        }
        if !satisfied { throw .timedOut }
    }
}

extension Peer {
    /// Sends `count` messages to `handle` as one batch: each slice (of
    /// `sliceSize` bytes) is filled in place by `fill(index, slice)`, which returns
    /// the bytes to send. The batch takes one staging mark, `count` consecutive
    /// tickets with one `fetch_add`, one tail store and one wake check. It needs
    /// credit and pool space for all of them: without `wait` a shortage is
    /// ``Bus1Error/wouldBlock(_:)`` and nothing is sent.
    public func sendBatch(
        to handle: Handle, count: Int, sliceSize: Int, wait: WaitMode? = nil,
        fill: (_ index: Int, _ slice: UnsafeMutableRawBufferPointer) -> Int
    ) throws(Bus1Error) {
        guard count > 0 else { return }
        try serviceControl()
        let (target, channel) = try sendTarget(handle)
        let segment = try self.segment(readableBy: handle)
        guard count <= channel.producer.capacity else { throw .batchTooLarge(count, maximum: channel.producer.capacity) }
        guard sliceSize >= 0, sliceSize <= maximumPayload else { throw .payloadTooLarge(requested: sliceSize, maximum: maximumPayload) }

        // Credit and slices for the whole batch, or nothing.
        batchOffsets.removeAll(keepingCapacity: true)
        var shortOf = Bus1Error.WouldBlock.ringFull(handle)
        func acquire() throws(Bus1Error) -> Bool {
            if channel.closedReason != nil { return true }
            if !channel.producer.hasCredit(count) {
                try drain(channel)
                if !channel.producer.hasCredit(count) { shortOf = .ringFull(handle); return false }
            }
            while batchOffsets.count < count {
                guard let offset = pool.allocate(sliceSize, in: segment) else {
                    try reclaimCompleted()
                    guard let offset = pool.allocate(sliceSize, in: segment) else { shortOf = .poolExhausted(requested: sliceSize); return false }
                    batchOffsets.append(offset)
                    continue
                }
                batchOffsets.append(offset)
            }
            return true
        }
        do throws(Bus1Error) {
            if try !acquire() {
                guard let mode = wait else { throw .wouldBlock(shortOf) }
                try waitUntil(mode: mode, timeoutNanoseconds: nil) { () throws(Bus1Error) -> Bool in
                    try self.serviceControl()
                    return try acquire()
                }
            }
        } catch {
            // Short of credit or slices, or the wait failed (the coordinator went away):
            // the slices taken so far go back, whatever stopped it.
            for offset in batchOffsets { pool.freeLoan(offset) }
            batchOffsets.removeAll(keepingCapacity: true)
            throw error
        }
        if let reason = channel.closedReason {
            for offset in batchOffsets { pool.freeLoan(offset) }
            throw .channelClosed(peer: channel.receiver, reason: reason)
        }

        let sent = publisher.send(UInt64(count), on: CollectionOfOne(channel.lane)) { first in
            var ticket = first
            for (index, offset) in batchOffsets.enumerated() {
                let capacity = pool.capacity(at: offset)!
                let used = fill(index, UnsafeMutableRawBufferPointer(start: pool.pointer(at: offset), count: capacity))
                precondition(used >= 0 && used <= capacity, "fill returned more bytes than the slice holds")
                pool.markSent(offset, channelTag: channel.tag, ticket: ticket, receiver: channel.receiver, length: used)
                channel.producer.write(bus1_descriptor(ticket: ticket, node: target.node, offset: offset, length: UInt32(used), flags: 0))
                ticket = MonotonicTickets.ticket(after: ticket)  // saturates: a jumped clock wraps nothing
            }
            channel.producer.publish()
        }
        if let anomaly = sent.anomaly { noteClockAnomaly(anomaly) }
        statistics.messagesSent += count
    }
}
