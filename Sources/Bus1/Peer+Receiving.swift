import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

extension Peer {
    // MARK: Receiving

    /// The next message if one is ready now. On a globally ordered bus messages
    /// come in ticket order across all inbound channels (see <doc:Ordering>); on
    /// a FIFO-only bus, channels take turns. Each channel is FIFO either way.
    public func tryReceive() throws(Bus1Error) -> Message? {
        if readinessArmed { try wakeFromReadiness() }  // awake now: senders stop ringing
        return try nextMessage()
    }

    /// ``tryReceive()`` without the disarm: what the waits call (their own
    /// protocol owns `sleeping` while they run).
    func nextMessage() throws(Bus1Error) -> Message? {
        if received != nil { return received.take() }  // found by armReadiness()
        try serviceControl()
        while true {
            let next = inbound.count <= 1 || ordering == .fifo ? try nextInTurn() : try nextInOrder()
            if controlEventsPending() {
                // A channel we have not mapped yet may hold a lower ticket: the coordinator
                // announced it before that ticket existed, so this load (after reading the
                // candidate's tail) sees the announcement. So does a notification being
                // staged on the coordinator ring. Learn of them, then merge again.
                try serviceControl()
                continue
            }
            if ringMayHoldNotifications {
                switch try notificationBefore(next?.descriptor.ticket) {
                case .deliver(let note): return note
                case .hold: return nil
                case .none: break
                }
            }
            guard let (link, descriptor) = next else { return nil }
            if let message = try take(descriptor, from: inbound[link]) { return message }
        }
    }

    /// What the coordinator ring says against the data candidate with `ticket`.
    private enum NotificationVerdict: ~Copyable {
        case deliver(Message)
        /// A notification below the candidate is being published: wait.
        case hold
        case none
    }

    /// The coordinator ring, merged last, as pass 2 of the merge reads every other
    /// channel: its mark, then its tail, both after the candidate's tail.
    private func notificationBefore(_ ticket: UInt64?) throws(Bus1Error) -> NotificationVerdict {
        let ringMark = coordinatorRing.consumer.stagingMark()
        let note: bus1_descriptor?
        do { note = try coordinatorRing.consumer.peek() } catch { throw .protocolViolation("coordinator ring: \(error)") }
        if let note, ordering == .fifo || ticket.map({ note.ticket < $0 }) ?? true {
            coordinatorRing.consumer.advance(ticket: note.ticket)
            return .deliver(notification(note))
        }
        if note == nil && ringMark == 0 {
            ringMayHoldNotifications = false
        } else if let ticket, note == nil, ordering == .global, ringMark <= ticket {
            return .hold
        }
        return .none
    }

    /// Takes `descriptor`, the merge's pick from `channel`: the message, or nil
    /// when it was not delivered (ordered after its node's destruction, or a
    /// violation closed the channel, or its segment had to be mapped first): merge again.
    private func take(_ descriptor: bus1_descriptor, from channel: InboundChannel) throws(Bus1Error) -> Message? {
        if !destroyedNodes.isEmpty, let destroyedAt = destroyedNodes[descriptor.node],
           ordering == .fifo || descriptor.ticket > destroyedAt {
            // Ordered after the node's destruction: not delivered; the slice goes back.
            try drop(descriptor, from: channel)
            return nil
        }
        var verdict = channel.inspect(descriptor)
        if case .nodeNotAllowed = verdict {
            // A grant may be queued behind the descriptor: serve the socket, then judge.
            try checkCoordinatorAlive()
            verdict = channel.inspect(descriptor)
        }
        let payload: UnsafeRawPointer
        switch verdict {
        case .deliverable(let start):
            payload = start
        case .unmappedSegment(let segment):
            // The first descriptor naming a segment of this sender: ask for it (the
            // request may serve events, so merge again after).
            try mapSegment(segment, of: channel)
            return nil
        case .nodeNotAllowed:
            try reportViolation(channel, .badNode)
            return nil
        case .violation(let violation):
            try reportViolation(channel, violation)
            return nil
        }
        var attachment: Attachment?
        if descriptor.flags & BUS1_DESC_ATTACHMENT != 0 {
            guard let taken = try takeAttachment(from: channel, at: channel.consumer.index) else {
                try reportViolation(channel, .badDescriptor)
                return nil
            }
            attachment = taken
        } else if !channel.attachments.isEmpty {
            dropStaleAttachments(of: channel, through: channel.consumer.index)
        }
        channel.take(descriptor)
        statistics.messagesReceived += 1
        return Message(channel: channel, descriptor: descriptor, payload: payload, attachment: attachment)
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

    /// Round robin over the inbound channels: the next one with a descriptor (its
    /// index in `inbound`, valid until `inbound` changes: no reference counted).
    private func nextInTurn() throws(Bus1Error) -> (link: Int, descriptor: bus1_descriptor)? {
        var tried = 0
        while tried < inbound.count {
            if nextInbound >= inbound.count { nextInbound = 0 }
            let link = nextInbound
            do {
                if let descriptor = try inbound[link].consumer.peek() {
                    if ordering == .fifo { nextInbound += 1 }  // take turns; a single channel stays put
                    return (link, descriptor)
                }
                nextInbound += 1
                tried += 1
            } catch {
                try reportViolation(inbound[link], error)  // removes it; the same index now holds the next one
            }
        }
        return nil
    }

    /// The descriptor with the lowest ticket, if no other inbound channel can still
    /// produce a lower one (`TicketMerge`). A channel that held delivery back for
    /// ``PeerOptions/orderingStallTimeout`` is excused: the stall is
    /// counted, evented and reported to the coordinator, and delivery goes on.
    private func nextInOrder() throws(Bus1Error) -> (link: Int, descriptor: bus1_descriptor)? {
        while true {
            switch TicketMerge.next(inbound, now: monotonicNanoseconds, stallTimeout: stallTimeoutNanoseconds) {
            case .deliver(let link, let head):
                return (link, head)
            case .wait:
                return nil
            case .stalled(let link):
                let channel = inbound[link]
                statistics.orderingStalls += 1
                note(.orderingStall(peer: channel.sender))
                do { try request(.orderingStall(channel: channel.id)) } catch .refused(.handleUnknown) {}
                // The request may have served events: merge again.
            case .violation(let link, let violation):
                try reportViolation(inbound[link], violation)
            }
        }
    }

    /// Waits for the next message in `mode` (default: the peer's wait mode), up to
    /// `timeout`. Throws ``Bus1Error/timedOut`` when it passes,
    /// ``Bus1Error/interrupted`` when another thread calls
    /// ``PeerInterrupter/interrupt()``, and ``Bus1Error/coordinatorGone`` if the
    /// bus dies meanwhile. Blocks the calling thread; from async code, `await` the
    /// async ``receive(mode:timeout:)-6wtdz`` instead.
    public func receive(mode: WaitMode? = nil, timeout: Duration? = nil) throws(Bus1Error) -> Message {
        if let message = try tryReceive() { return message }
        try waitUntil(mode: mode ?? options.waitMode, deadline: .after(timeout), slice: receiveSlice) { () throws(Bus1Error) -> Bool in
            try self.stashNextMessage()
        }
        return received.take()!
    }

    /// The `ready` of every wait for a message: takes the next one into
    /// ``received`` (where the waiting call, or the next receive, finds it).
    func stashNextMessage() throws(Bus1Error) -> Bool {
        received = try nextMessage()
        return received != nil
    }

    /// How long a receive parks at most before it looks again: while a staged
    /// sender may be holding delivery back, often enough to honour the stall
    /// timeout even if nobody rings.
    var receiveSliceNanoseconds: UInt64 {
        ordering == .global && inbound.count > 1 ? min(stallTimeoutNanoseconds, 200_000_000) : 200_000_000
    }

    /// ``receiveSliceNanoseconds`` for the parkers.
    private var receiveSlice: Int64 { Int64(receiveSliceNanoseconds) }

    /// Waits on this peer's doorbell until `ready` holds; checks that the coordinator
    /// is alive whenever a park times out. Throws ``Bus1Error/interrupted`` for a
    /// pending interrupt, ``Bus1Error/timedOut`` at the deadline.
    func waitUntil(mode: WaitMode, deadline: Deadline, slice: Int64 = 200_000_000,
                   _ ready: () throws(Bus1Error) -> Bool) throws(Bus1Error) {
        if readinessArmed { settleReadiness() }  // this wait owns `sleeping` now
        var spins = 0
        let satisfied: Bool
        do {
            satisfied = try waiter.wait(mode: mode, deadline: deadline.nanoseconds, sliceNanoseconds: slice,
                                        onPark: { self.statistics.parks += 1; self.recordMetricsAtPark() }) {
                if try self.readyOrInterrupted(ready) { return true }
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
