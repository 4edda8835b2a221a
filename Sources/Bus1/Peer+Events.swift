import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc
import Logging

extension Peer {
    // MARK: Control socket

    /// Records `event` for ``takeEvents()`` and logs it: channels closing at info,
    /// a broken protocol, a stall or an impossible clock at warning.
    func note(_ event: PeerEvent) {
        events.append(event)
        switch event {
        case .outboundClosed, .inboundClosed:
            logger.info("channel closed", metadata: ["peer": "\(id)", "event": "\(event)"])
        case .violationDetected, .orderingStall, .clockAnomaly:
            logger.warning("\(event)", metadata: ["peer": "\(id)"])
        }
    }

    /// Sends a request and reads until its reply, serving events that arrive first.
    @discardableResult
    func request(_ message: ControlMessage, fds attached: [Int32] = []) throws(Bus1Error) -> ControlDatagram {
        try control.request(message, fds: attached) { (event: consuming ControlDatagram) throws(Bus1Error) in try handleEvent(event) }
    }

    /// Serves queued control events if the coordinator announced any, and reports
    /// violations found while releasing messages. Cheap when there is nothing: one
    /// atomic load.
    @inline(__always)
    func serviceControl() throws(Bus1Error) {
        let sequence = wake.controlSequence.loadAcquiring()  // pairs with the coordinator's bump after queuing
        if sequence != seenControlSequence {
            seenControlSequence = sequence
            ringMayHoldNotifications = true
            try serveWaitingEvents()
        }
        if !violationInbox.channels.isEmpty {
            let found = violationInbox.channels
            violationInbox.channels.removeAll()
            for channel in found {
                if let violation = channel.pendingViolation { try reportViolation(channel, violation) }
            }
        }
        if !pendingReleases.isEmpty { try flushPendingReleases() }
    }

    /// Whether the coordinator announced events this peer has not served yet.
    @inline(__always)
    func controlEventsPending() -> Bool {
        wake.controlSequence.loadAcquiring() != seenControlSequence  // pairs with the coordinator's bump after queuing
    }

    /// Fails with ``Bus1Error/coordinatorGone`` if the coordinator's socket hung up;
    /// serves the events waiting in it.
    func checkCoordinatorAlive() throws(Bus1Error) {
        let state = try control.poll()
        if state.hangUp { throw .coordinatorGone }
        if state.readable { try serveWaitingEvents() }
    }

    /// Serves every event waiting in the socket, without blocking.
    private func serveWaitingEvents() throws(Bus1Error) {
        while let event = try control.receive(blocking: false) { try handleEvent(event) }
    }

    private func handleEvent(_ datagram: consuming ControlDatagram) throws(Bus1Error) {
        var fds = datagram.fds  // what no case takes closes with it
        switch datagram.message {
        case .channelOpened(let opening):
            try openInbound(opening, channelFD: fds.take(0), senderWakeFD: fds.take(1))
        case .channelGrant(let channelID, let node):
            inbound.first { $0.id == channelID }?.allowedNodes.insert(node)
        case .handleArrived(let grant):
            try install(grant, fds: &fds)
        case .attachment(let channelID, let ids, _, let sequence):
            let attachment = Attachment(handles: ids.map { Handle(id: $0) }, descriptors: fds.takeAll(), sequence: sequence)
            if let channel = inbound.first(where: { $0.id == channelID }) {
                // A sender attaches again for an index only if it never sent what it
                // attached before: those attachments are superseded, let them go now.
                while let last = channel.attachments.last, last.sequence &- sequence <= UInt64.max / 2 {
                    dropAttachment(channel.attachments.removeLast())
                }
                // An honest sender attaches only with credit, so its index lies within
                // a ring's capacity ahead of what this peer has taken; one behind it or
                // further ahead can never be taken: drop it rather than hold its fds.
                if sequence &- channel.consumer.index < UInt64(channel.consumer.memory.geometry.capacity) {
                    channel.attachments.append(attachment)
                } else {
                    dropAttachment(attachment)
                }
            } else {
                dropAttachment(attachment)  // the channel closed meanwhile: no message will take it
            }
        case .channelClosed(let channelID, let other, let rawReason):
            let reason = CloseReason(rawReason)
            if let channel = outbound[channelID] { closeOutbound(channel, reason: reason) }
            if let index = inbound.firstIndex(where: { $0.id == channelID }) {
                inbound[index].isClosed = true
                for attachment in inbound[index].attachments { dropAttachment(attachment) }
                inbound[index].attachments.removeAll()
                inbound.remove(at: index)
                note(.inboundClosed(peer: other, reason: reason))
            }
        case .error(let code, let detail):
            // An unsolicited error answers a datagram the coordinator could not parse.
            throw .refused(Refusal(code: code, detail: detail))
        default:
            throw .protocolViolation("unexpected event \(datagram.message)")
        }
    }

    /// Gives back the handles of an attachment no message will deliver (its fds
    /// close with it).
    func dropAttachment(_ attachment: Attachment) {
        for handle in attachment.handles where handle.isValid && handles[handle.id]?.owner != id { pendingReleases.append(handle.id) }
    }

    /// Maps a new inbound channel after checking everything about it: the channel
    /// header and the sender's wake page. The sender's pool segments come later,
    /// each on the first descriptor that names it (``mapSegment(_:of:)``).
    private func openInbound(_ opening: ControlMessage.ChannelOpening, channelFD: consuming FileDescriptor,
                             senderWakeFD: consuming FileDescriptor) throws(Bus1Error) {
        do {
            let capacity = Int(opening.capacity)
            guard ChannelGeometry.isValid(capacity: capacity) else { throw WireError.mismatch("channel capacity") }
            let geometry = ChannelGeometry(capacity: capacity)
            let memory = try ChannelMemory(try Mapping(channelFD, count: geometry.size, writable: true),
                                           channel: opening.channel, capacity: capacity)
            let wakeMapping = try Mapping(senderWakeFD, count: Int(BUS1_PAGE_SIZE), writable: true)
            let page = try WakePage(wakeMapping)
            let credentials = PeerCredentials(peer: opening.sender, uid: opening.senderUID, pid: opening.senderPID)
            inbound.append(InboundChannel(id: opening.channel, sender: opening.sender, senderCredentials: credentials,
                                          consumer: SubmissionConsumer(memory),
                                          memory: SenderMemory(wake: wakeMapping),
                                          senderWake: page, firstNode: opening.node, violations: violationInbox))
        } catch let error as LinuxError {
            throw .system(error)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    /// Closes an inbound channel whose sender broke the protocol and tells the
    /// coordinator, which closes it for the sender too. Nothing else is affected.
    func reportViolation(_ channel: InboundChannel, _ violation: ChannelViolation) throws(Bus1Error) {
        guard !channel.isClosed else { return }
        channel.isClosed = true
        inbound.removeAll { $0 === channel }
        for attachment in channel.attachments { dropAttachment(attachment) }
        channel.attachments.removeAll()
        statistics.violationsDetected += 1
        note(.violationDetected(peer: channel.sender, violation: violation))
        do {
            try request(.violation(channel: channel.id, reason: violation.rawValue))
        } catch .refused(.handleUnknown) {
            // The coordinator closed it already (the sender left): nothing to report.
        }
    }
}
