import Bus1Core
import Bus1Linux

/// The calling side of request/reply: calls a ``Service`` by name and awaits
/// each reply, zero-copy, with any number of calls in flight from any number of
/// tasks.
///
/// The client owns its peer, isolated to this actor. Its first call carries a
/// handle to the client's reply node (one coordinator round trip, once); every
/// later call is one message each way, matched by the call's id. The
/// notifications the pattern causes (the service letting go of the reply node)
/// are consumed here, never mistaken for replies. When the service's node is
/// destroyed (it exited or crashed), every pending call fails at once with
/// ``Bus1Error/serviceGone(_:)``, and so does every later call.
///
/// How the waiting works: one calling task at a time pumps the peer (awaits its
/// readiness, takes every message in, hands each reply to its call); the others
/// are suspended until their reply is there, their deadline passed, or it is
/// their turn to pump. A call that finds the service's ring full (or the pool)
/// waits the same way for the service to take requests in. A timeout is kept to
/// within 200 ms while another call pumps.
public actor ServiceClient {
    public struct Statistics: Sendable, Equatable {
        public var calls: UInt64 = 0
        public var replies: UInt64 = 0
        /// Replies that came after their call timed out or was cancelled (dropped).
        public var lateReplies: UInt64 = 0
        /// Messages that were not replies (dropped).
        public var malformed: UInt64 = 0
    }

    /// One call in flight: its reply once it came, its deadline, and the
    /// continuation of its task while suspended.
    private final class PendingCall {
        let deadline: Deadline
        var reply: Message?
        var status: UInt32 = 0
        /// Waiting for room to send its request (not for its reply).
        var sending = true
        var waiter: CheckedContinuation<Void, Never>?
        init(deadline: Deadline) { self.deadline = deadline }
    }

    public nonisolated let service: String
    let peer: Peer
    let serviceHandle: Handle
    let replyNode: Handle
    public private(set) var statistics = Statistics()
    /// Whether the service has this client's reply handle.
    private var bound = false
    private var nextCallID: UInt64 = 1
    private var calls: [UInt64: PendingCall] = [:]
    private var pumping = false
    /// The earliest deadline of a call that suspended while a round was under
    /// way: the round ends when it passes, so that call can time out.
    private var parkedDeadline: UInt64?
    private var failure: Bus1Error?

    /// A client of the service `name` on `peer` (which becomes the client's),
    /// waiting up to `timeout` for the service to be published.
    public init(service name: String, on peer: sending Peer, timeout: Duration = .seconds(5)) async throws {
        service = name
        serviceHandle = try await peer.lookup(name, timeout: timeout)
        replyNode = try peer.createNode()
        self.peer = peer
    }

    /// A client of the service `name` on a new peer connected with `peerOptions`.
    public init(service name: String, connecting peerOptions: PeerOptions = PeerOptions(),
                timeout: Duration = .seconds(5)) async throws {
        try await self.init(service: name, on: try Peer.connect(options: peerOptions), timeout: timeout)
    }

    /// Calls the service with a copy of `request` and hands the reply, borrowed
    /// and read in place, to `body`; returns what `body` returns. Throws
    /// ``Bus1Error/timedOut`` after `timeout`, ``Bus1Error/serviceGone(_:)``,
    /// ``Bus1Error/callFailed(_:)``, or `CancellationError`.
    public func call<Result: Sendable>(_ request: some Collection<UInt8> & Sendable, timeout: Duration? = nil,
                                       _ body: sending (borrowing ServiceReply) throws -> Result) async throws -> Result {
        if let failure { throw failure }
        let id = nextCallID
        nextCallID += 1
        let call = PendingCall(deadline: .after(timeout))
        calls[id] = call
        defer {
            calls[id] = nil
            if !pumping { wakeNextPump() }  // however this call ends, a suspended one pumps next
        }
        statistics.calls += 1
        try await send(request, as: id, call)
        call.sending = false
        while true {
            if let reply = call.reply.take() {
                let answer = ServiceReply(reply, id: id)
                guard call.status == Frame.ReplyStatus.ok.rawValue else {
                    throw Bus1Error.callFailed(String(decoding: answer.copyPayload(), as: UTF8.self))
                }
                return try body(answer)
            }
            try await waitForProgress(call, id: id)
        }
    }

    /// Calls the service with a copy of `request` and returns a copy of the reply.
    public func call(_ request: some Collection<UInt8> & Sendable, timeout: Duration? = nil) async throws -> [UInt8] {
        try await call(request, timeout: timeout) { $0.copyPayload() }
    }

    /// Sends call `id`, waiting for pool space or credit while the service is behind.
    private func send(_ request: some Collection<UInt8>, as id: UInt64, _ call: PendingCall) async throws {
        while true {
            if var loan = try peer.loanNow(request.count, segment: try peer.segment(readableBy: serviceHandle), headroom: Frame.size) {
                loan.write(request)
                Frame(.call, detail: bound ? 0 : Frame.bindsReply, number: id).write(to: &loan)
                guard let unsent = try sendNow(loan) else { return }
                _ = consume unsent  // freed; the next round loans again
            }
            try await waitForProgress(call, id: id)
        }
    }

    /// Sends a filled call now; returns it if the service's ring is full. The
    /// first call attaches the reply node (the one round trip to the coordinator).
    private func sendNow(_ loan: consuming Loan) throws -> Loan? {
        do {
            if bound { return try peer.trySend(loan, to: serviceHandle) }
            guard try peer.hasCredit(peer.sendTarget(serviceHandle).channel) else { return loan }
            try peer.send(loan, to: serviceHandle, attaching: [replyNode])
            bound = true
            return nil
        } catch .nodeDestroyed, .channelClosed {
            throw fail(with: .serviceGone(service))
        }
    }

    /// Suspends until something may have changed for `call`: pumps the peer if
    /// nobody does, otherwise waits for the pump's round to end. Throws for the
    /// call's own end (deadline, cancellation, the service gone).
    ///
    /// Liveness: a call suspends only while another pumps; a round's end wakes
    /// every call it concerns (a reply, a passed deadline, room to send, the
    /// service gone); and a call that ends, however it ends, wakes a suspended
    /// one to pump next if nobody pumps (`call`'s `defer`).
    private func waitForProgress(_ call: PendingCall, id: UInt64) async throws {
        if let failure { throw failure }
        if call.reply != nil { return }
        if call.deadline.hasPassed { throw Bus1Error.timedOut }
        try Task.checkCancellation()
        if pumping {
            if let end = call.deadline.nanoseconds { parkedDeadline = min(parkedDeadline ?? .max, end) }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    if Task.isCancelled { continuation.resume() } else { call.waiter = continuation }
                }
            } onCancel: {
                Task { await self.wake(id) }
            }
            return
        }
        pumping = true
        parkedDeadline = nil
        do {
            try await pump(until: earliestDeadline())
        } catch Bus1Error.timedOut {
            // Some call's deadline came: each call checks its own.
        } catch {
            endRound()
            throw error
        }
        // The calls this round woke run before this one pumps again (a round can
        // end without suspending, and this task would keep the actor to itself).
        if endRound() { await Task.yield() }
    }

    /// One round of pumping: waits until messages came (every one taken in),
    /// completions came back (room for calls waiting to send), a suspended
    /// call's deadline passed, or `deadline` (a round parked on the reactor looks
    /// again every 200 ms at most).
    private func pump(until deadline: Deadline) async throws {
        let channel = try? peer.sendTarget(serviceHandle).channel
        try await peer.awaitUntil(mode: peer.options.waitMode, deadline: deadline) { () throws(Bus1Error) -> Bool in
            var progressed = false
            while let message = try self.peer.nextMessage() {
                self.take(message)
                progressed = true
            }
            if let channel, channel.closedReason == nil, try self.peer.drain(channel) > 0 { progressed = true }
            if let end = self.parkedDeadline, monotonicNanoseconds() >= end { progressed = true }
            return progressed || self.failure != nil
        }
    }

    /// Ends a pump round: wakes the calls past their deadline, those waiting for
    /// room to send (completions may have come), and all of them if the service
    /// is gone. (A reply woke its call as it came; the pumping call goes on, or
    /// ends and wakes the next pump.)
    @discardableResult
    private func endRound() -> Bool {
        pumping = false
        var woke = false
        for (id, call) in calls where call.waiter != nil && (call.sending || call.deadline.hasPassed || failure != nil) {
            wake(id)
            woke = true
        }
        return woke
    }

    /// Wakes one suspended call, to pump.
    private func wakeNextPump() {
        if let (id, _) = calls.first(where: { $0.value.waiter != nil }) { wake(id) }
    }

    private func wake(_ id: UInt64) {
        guard let call = calls[id], let waiter = call.waiter else { return }
        call.waiter = nil
        waiter.resume()
    }

    /// The earliest deadline still ahead among the calls in flight.
    private func earliestDeadline() -> Deadline {
        let now = monotonicNanoseconds()
        return Deadline(nanoseconds: calls.values.compactMap(\.deadline.nanoseconds).filter { $0 > now }.min())
    }

    /// Takes one message in: a reply goes to its call; the destruction of the
    /// service's node fails every call; anything else is dropped.
    private func take(_ message: consuming Message) {
        switch message.kind {
        case .nodeDestroyed where message.node == serviceHandle:
            _ = fail(with: .serviceGone(service))
        case .nodeDestroyed, .nodeReleased:
            break  // the service let go of the reply node (it is leaving, or forgot this client)
        case .data:
            peer.releaseAttached(message.handles)
            guard message.node == replyNode, let frame = message.frame, frame.kind == .reply else {
                statistics.malformed += 1
                return
            }
            guard let call = calls[frame.number], call.reply == nil else {
                statistics.lateReplies += 1
                return
            }
            statistics.replies += 1
            call.status = frame.detail
            call.reply = consume message
            wake(frame.number)
        }
    }

    /// Records that the service is gone and wakes every call; returns the error.
    private func fail(with error: Bus1Error) -> Bus1Error {
        if failure == nil { failure = error }
        for id in calls.keys { wake(id) }
        return failure!
    }
}

/// A reply to a ``ServiceClient`` call, read in place in the service's pool.
public struct ServiceReply: ~Copyable {
    /// The call's id.
    public let id: UInt64
    let message: Message

    init(_ message: consuming Message, id: UInt64) {
        self.message = message
        self.id = id
    }

    /// The reply's bytes, in place (a span that cannot outlive the reply).
    public var payload: Span<UInt8> {
        @_lifetime(borrow self)
        get { _overrideLifetime(message.framedPayload, borrowing: self) }
    }

    /// A copy of the reply's bytes.
    public func copyPayload() -> [UInt8] { Array(copying: message.framedPayload) }
}
