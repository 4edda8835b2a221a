import Bus1Core
import CBus1Wire

extension Peer {
    // MARK: Sending

    /// Loans a slice of at least `byteCount` bytes of this peer's pool, readable
    /// by peers of this peer's own uid (for peers of other uids:
    /// ``loan(_:for:wait:timeout:)-(_,Handle,_,_)``). With no `wait`, a full pool is
    /// ``Bus1Error/wouldBlock(_:)``; with one, waits for receivers to release
    /// slices (until `timeout`, if given).
    public func loan(_ byteCount: Int, wait: WaitMode? = nil, timeout: Duration? = nil) throws(Bus1Error) -> Loan {
        try loan(byteCount, segment: 0, wait: wait, deadline: .after(timeout))
    }

    /// A loan in pool segment `segment`, its first `headroom` bytes kept for a
    /// pattern's frame header (``Loan/headroom``).
    func loan(_ byteCount: Int, segment: Int, headroom: Int = 0, wait: WaitMode?, deadline: Deadline) throws(Bus1Error) -> Loan {
        if let loan = try loanNow(byteCount, segment: segment, headroom: headroom) { return loan }
        guard let mode = wait else { throw .wouldBlock(.poolExhausted(requested: byteCount)) }
        statistics.loanWaits += 1
        var found: Loan?
        try waitUntil(mode: mode, deadline: deadline) { () throws(Bus1Error) -> Bool in
            found = try self.loanNow(byteCount, segment: segment, headroom: headroom)
            return found != nil
        }
        return found.take()!
    }

    /// A loan of `byteCount` bytes (after `headroom`) in `segment` if the pool has
    /// room now, after taking back what receivers released; nil if it has not.
    func loanNow(_ byteCount: Int, segment: Int, headroom: Int = 0) throws(Bus1Error) -> Loan? {
        guard byteCount >= 0, byteCount <= maximumPayload - headroom else {
            throw .payloadTooLarge(requested: byteCount, maximum: maximumPayload - headroom)
        }
        let total = byteCount + headroom
        if let offset = pool.allocate(total, in: segment) { return Loan(pool: pool, offset: offset, count: byteCount, headroom: headroom) }
        try reclaimCompleted()
        return pool.allocate(total, in: segment).map { Loan(pool: pool, offset: $0, count: byteCount, headroom: headroom) }
    }

    /// Sends a filled loan to the node `handle` names. Returns the loan back,
    /// unsent, if the channel has no credit (the receiver holds `capacity`
    /// messages); throws for everything else (the loan is then freed).
    public func trySend(_ loan: consuming Loan, to handle: Handle) throws(Bus1Error) -> Loan? {
        try serviceControl()
        let route = try sendTarget(handle)
        try checkAudience(loan.offset, handle, route)
        if try !hasCredit(route.channel) { return loan }
        publish(loan, to: route, flags: 0)
        return nil
    }

    /// Whether `channel` has credit for `count` more descriptors, taking its
    /// completions back first if it has not. Throws ``Bus1Error/channelClosed(peer:reason:)``
    /// if taking them back closed it (its receiver corrupted the completion ring):
    /// nothing may be published on a closed channel, or the slice would be sent
    /// after the channel's slices were reclaimed, and never come back.
    @inline(__always)
    func hasCredit(_ channel: OutboundChannel, _ count: Int = 1) throws(Bus1Error) -> Bool {
        if channel.producer.hasCredit(count) { return true }
        try drain(channel)
        if let reason = channel.closedReason { throw .channelClosed(peer: channel.receiver, reason: reason) }
        return channel.producer.hasCredit(count)
    }

    /// Where a send to `handle` goes; throws for an unknown, own, destroyed or closed one.
    @inline(__always)
    func sendTarget(_ handle: Handle) throws(Bus1Error) -> SendRoute {
        if let last = lastSendRoute, last.handle == handle.id {
            // Cached only while open and not destroyed (a change to `handles` clears it); a close is the channel's.
            if let reason = last.channel.closedReason { throw .channelClosed(peer: last.channel.receiver, reason: reason) }
            return last
        }
        guard let target = handles[handle.id] else { throw .unknownHandle(handle) }
        let route = SendRoute(handle: handle.id, node: target.node, ownerUID: target.ownerUID, channel: try channel(of: target, handle))
        lastSendRoute = route
        return route
    }

    /// The open channel a send to `target` takes; throws for an own, destroyed or closed one.
    @inline(__always)
    func channel(of target: HandleTarget, _ handle: Handle) throws(Bus1Error) -> OutboundChannel {
        // In this order: an own node is never a destination, a destroyed one wins over a closed channel.
        let channel: OutboundChannel
        switch target.route {
        case .own: throw .ownNode(handle)
        case .open(let open): channel = open
        case .closed(let peer, let reason):
            if target.isDestroyed { throw .nodeDestroyed(handle) }
            throw .channelClosed(peer: peer, reason: reason)
        }
        if target.isDestroyed { throw .nodeDestroyed(handle) }
        if let reason = channel.closedReason { throw .channelClosed(peer: channel.receiver, reason: reason) }
        return channel
    }

    /// Throws unless the owner of `handle`'s node can read the slice at `offset`:
    /// a payload never goes where its reader cannot map it, and never into a
    /// segment readers of other uids share.
    @inline(__always)
    func checkAudience(_ offset: UInt64, _ handle: Handle, _ route: SendRoute) throws(Bus1Error) {
        guard pool.isReadable(offset, by: route.ownerUID) else { throw .notInAudience(handle, ownerUID: route.ownerUID) }
    }

    /// Publishes one filled loan on `channel` (which has credit), by the send
    /// protocol (`Publisher`): ledger and descriptor between ticket and unstage.
    @inline(__always)
    private func publish(_ loan: consuming Loan, to route: SendRoute, flags: UInt32) {
        let channel = route.channel
        assert(channel.closedReason == nil, "publishing on a closed channel: its slice would never come back")
        let (offset, count) = loan.detach()
        let sent = publisher.send(on: CollectionOfOne(channel.lane)) { ticket in
            pool.markSent(offset, channelTag: channel.tag, ticket: ticket, receiver: channel.receiver, length: count)
            channel.producer.submit(bus1_descriptor(ticket: ticket, node: route.node, offset: offset, length: UInt32(count), flags: flags))
        }
        if let anomaly = sent.anomaly { noteClockAnomaly(anomaly) }
        statistics.messagesSent += 1
    }

    /// Counts and reports one clock anomaly (a rewound, wrapped or jumped clock).
    @inline(never)
    func noteClockAnomaly(_ anomaly: ClockAnomaly) {
        statistics.clockAnomalies += 1
        note(.clockAnomaly(clock: anomaly.taken, issued: anomaly.issued))
    }

    /// Sends a filled loan to `handle` with handles and fds attached (up to 16
    /// handles this peer holds, up to 4 fds; Unix sockets and the bus's own
    /// memfds are refused with `Refusal.descriptorRefused(_:)`). The receiver gets
    /// its own handles (one reference each) and duplicates of the fds in
    /// ``Message/attachment``; the caller keeps its fds. A handle whose node is
    /// destroyed before the message's ticket arrives as ``Handle/invalid``.
    /// Costs a coordinator round trip; the payload still travels zero-copy.
    public func send(_ loan: consuming Loan, to handle: Handle, attaching passed: [Handle], fileDescriptors: [Int32] = [],
                     wait: WaitMode? = nil, timeout: Duration? = nil) throws(Bus1Error) {
        guard passed.count <= Int(BUS1_ATTACH_MAX_HANDLES), fileDescriptors.count <= Int(BUS1_MSG_MAX_FDS) else {
            throw .attachmentTooLarge(handles: passed.count, fileDescriptors: fileDescriptors.count)
        }
        try serviceControl()
        var route = try sendTarget(handle)
        try checkAudience(loan.offset, handle, route)
        for handle in passed where handles[handle.id] == nil { throw .unknownHandle(handle) }
        if try !hasCredit(route.channel) {
            guard let mode = wait else { throw .wouldBlock(.ringFull(handle)) }
            try waitForCredit(on: route.channel, mode: mode, deadline: .after(timeout))
        }
        route = try sendTarget(handle)  // closed while waiting?
        _ = try request(.attach(destination: handle.id, handles: passed.map(\.id), fdCount: UInt32(fileDescriptors.count),
                                sequence: route.channel.producer.nextIndex),
                        fds: fileDescriptors)
        route = try sendTarget(handle)  // the request served events: still there?
        publish(loan, to: route, flags: BUS1_DESC_ATTACHMENT)
    }

    /// Sends one slice to every node in `destinations` (1...``PeerOptions/maximumMulticast``),
    /// atomically: every destination gets it, under one ticket, or none does. A
    /// destination without credit fails the whole send with
    /// ``Bus1Error/wouldBlock(_:)`` naming it (or, with `wait`, waits until all have
    /// credit); a closed or unknown one fails it with the matching error. The slice
    /// returns to the pool when the last receiver releases it.
    public func send(_ loan: consuming Loan, to destinations: [Handle], wait: WaitMode? = nil,
                     timeout: Duration? = nil) throws(Bus1Error) {
        if destinations.count == 1 { return try send(loan, to: destinations[0], wait: wait, timeout: timeout) }
        let plan = try planMulticast(of: loan, to: destinations)
        if let blocked = try plan.firstBlocked(self) {
            guard let mode = wait else { throw .wouldBlock(.ringFull(blocked)) }
            statistics.creditWaits += 1
            try waitUntil(mode: mode, deadline: .after(timeout)) { () throws(Bus1Error) -> Bool in
                try self.serviceControl()
                return try plan.firstBlocked(self) == nil
            }
        }
        publish(loan, as: plan)
    }

    /// Where a multicast goes: a descriptor per destination, and per distinct
    /// channel how many descriptors it must take.
    struct MulticastPlan {
        var targets: [(channel: OutboundChannel, node: UInt64)] = []
        var channels: [OutboundChannel] = []
        var needed: [Int] = []
        private(set) var destinations: [Handle] = []

        init(capacity: Int) {
            targets.reserveCapacity(capacity)
            destinations.reserveCapacity(capacity)
        }

        /// Adds a destination whose send target and channel are checked.
        mutating func add(_ handle: Handle, node: UInt64, on channel: OutboundChannel) {
            destinations.append(handle)
            targets.append((channel, node))
            if let i = channels.firstIndex(where: { $0 === channel }) {
                needed[i] += 1
            } else {
                channels.append(channel)
                needed.append(1)
            }
        }

        /// Descriptors this plan puts on `channel` so far.
        func needed(on channel: OutboundChannel) -> Int {
            channels.firstIndex { $0 === channel }.map { needed[$0] } ?? 0
        }

        /// The first destination that is closed (thrown) or short of credit,
        /// after taking back completions; nil when all have credit.
        func firstBlocked(_ peer: Peer) throws(Bus1Error) -> Handle? {
            for (i, channel) in channels.enumerated() {
                if let reason = channel.closedReason { throw .channelClosed(peer: channel.receiver, reason: reason) }
                if try !peer.hasCredit(channel, needed[i]) { return destinations[targets.firstIndex { $0.channel === channel }!] }
            }
            return nil
        }
    }

    /// Checks a multicast of `loan` to `destinations` (count, targets, audience)
    /// and plans it.
    func planMulticast(of loan: borrowing Loan, to destinations: [Handle]) throws(Bus1Error) -> MulticastPlan {
        guard destinations.count >= 1, destinations.count <= options.maximumMulticast else {
            throw .badDestinationCount(destinations.count, maximum: options.maximumMulticast)
        }
        try serviceControl()
        var plan = MulticastPlan(capacity: destinations.count)
        for handle in destinations {
            let route = try sendTarget(handle)
            try checkAudience(loan.offset, handle, route)
            plan.add(handle, node: route.node, on: route.channel)
        }
        return plan
    }

    /// Sends one slice to every node in `destinations`, atomically, if all of them
    /// have credit now; otherwise returns the loan, unsent (``send(_:to:wait:timeout:)-(_,[Handle],_,_)``
    /// without the wait: a full ring costs nothing but the retry). Throws for a
    /// closed, destroyed or unknown destination (the loan is then freed).
    public func trySend(_ loan: consuming Loan, to destinations: [Handle]) throws(Bus1Error) -> Loan? {
        let plan = try planMulticast(of: loan, to: destinations)
        if try plan.firstBlocked(self) != nil { return loan }
        publish(loan, as: plan)
        return nil
    }

    /// Publishes a multicast whose channels all have credit: one ticket, one
    /// staging of every lane (`Publisher`).
    func publish(_ loan: consuming Loan, as plan: MulticastPlan) {
        let (offset, count) = loan.detach()
        lanes.removeAll(keepingCapacity: true)
        defer { lanes.removeAll(keepingCapacity: true) }  // no pointers into rings kept past the send
        for channel in plan.channels { lanes.append(channel.lane) }
        let sent = publisher.send(on: lanes) { ticket in
            pool.markSent(offset, channelTags: plan.targets.map { $0.channel.tag }, ticket: ticket, length: count)
            for target in plan.targets {
                target.channel.producer.submit(bus1_descriptor(ticket: ticket, node: target.node, offset: offset, length: UInt32(count), flags: 0))
            }
        }
        if let anomaly = sent.anomaly { noteClockAnomaly(anomaly) }
        statistics.messagesSent += 1
    }

    /// Sends a filled loan to `handle`. A channel without credit is
    /// ``Bus1Error/wouldBlock(_:)`` when `wait` is nil; otherwise waits for the
    /// receiver to release messages (until `timeout`, if given).
    public func send(_ loan: consuming Loan, to handle: Handle, wait: WaitMode? = nil, timeout: Duration? = nil) throws(Bus1Error) {
        guard let pending = try trySend(loan, to: handle) else { return }
        guard let mode = wait else { throw .wouldBlock(.ringFull(handle)) }
        try waitForCredit(on: handles[handle.id]!.channel!, mode: mode, deadline: .after(timeout))
        // Credit (or a close) arrived; one thread owns this peer, so it cannot vanish again.
        if try trySend(pending, to: handle) != nil { preconditionFailure("credit vanished while waiting") }
    }

    /// Waits until `channel` has credit again (its receiver released messages) or closed.
    private func waitForCredit(on channel: OutboundChannel, mode: WaitMode, deadline: Deadline) throws(Bus1Error) {
        statistics.creditWaits += 1
        try waitUntil(mode: mode, deadline: deadline) { () throws(Bus1Error) -> Bool in try self.creditOrClose(on: channel) }
    }

    /// Whether `channel` has credit or closed (the end of a wait for credit).
    func creditOrClose(on channel: OutboundChannel) throws(Bus1Error) -> Bool {
        try serviceControl()
        if channel.closedReason != nil { return true }
        try drain(channel)
        return channel.producer.hasCredit
    }

    /// Convenience: loans (readable by the node's owner), copies `bytes` in, sends.
    /// (The zero-copy path is ``loan(_:for:wait:timeout:)-(_,Handle,_,_)`` + writing in place +
    /// ``send(_:to:wait:timeout:)-(_,Handle,_,_)``.)
    public func send(copying bytes: some Collection<UInt8>, to handle: Handle, wait: WaitMode? = nil) throws(Bus1Error) {
        var loan = try self.loan(bytes.count, for: handle, wait: wait)
        loan.write(bytes)
        try send(loan, to: handle, wait: wait)
    }
}
