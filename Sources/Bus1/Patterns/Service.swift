/// The serving side of request/reply: a node published under a name that
/// ``ServiceClient``s call.
///
/// A client's first call carries a handle to its reply node (one coordinator
/// round trip, once); the service keeps it, by the client's peer, for as long as
/// both live, so every later call and reply is a plain zero-copy message with no
/// coordinator on the way. Each call carries an id the reply repeats, so a client
/// may have many calls in flight. A client that leaves is forgotten (its reply
/// node's destruction).
///
/// A reply waits for room in the client's ring up to ``Options/replyTimeout``,
/// then is dropped and counted; after that the service never waits for that
/// client again (a reply that finds no room is dropped at once): a client that
/// stops reading costs the service one timeout. A reply handle must name a node of the calling peer's
/// own (anything else is refused: the service never sends where a caller points
/// it at someone else). The service owns its peer: everything the peer receives is
/// the service's.
public final class Service {
    public struct Options: Sendable {
        /// How long a reply waits for room in a client's ring before it is dropped.
        public var replyTimeout: Duration
        public init(replyTimeout: Duration = .seconds(1)) {
            self.replyTimeout = replyTimeout
        }
    }

    public struct Statistics: Sendable, Equatable {
        public var calls: UInt64 = 0
        public var replies: UInt64 = 0
        /// Replies dropped: the client's ring stayed full, the client left, or it
        /// never sent its reply handle.
        public var repliesDropped: UInt64 = 0
        /// Messages that were not calls (dropped).
        public var malformed: UInt64 = 0
        /// Replies that waited the whole reply timeout for room in a client's
        /// ring (each makes that client one the service never waits for again).
        public var replyTimeouts: UInt64 = 0
        /// Clients known now.
        public var clients = 0
    }

    public let name: String
    public let peer: Peer
    public let options: Options
    public private(set) var statistics = Statistics()
    /// The service's node, published under ``name``.
    let node: Handle
    /// Each client peer's reply node.
    private var replyHandles: [UInt64: Handle] = [:]
    /// Clients whose ring stayed full for a whole reply timeout: the service
    /// never waits for them again (a reply that finds no room is dropped at
    /// once), so a client that stops reading, or reads one reply per timeout,
    /// costs the service one timeout in all.
    private var stalledClients: Set<UInt64> = []

    /// Serves `name` on `peer` (which becomes the service's): creates its node
    /// and publishes it (a name already taken is ``Bus1Error/refused(_:)`` with `nameTaken`; the node is destroyed again).
    public init(name: String, on peer: Peer, options: Options = Options()) throws(Bus1Error) {
        self.name = name
        self.peer = peer
        self.options = options
        node = try peer.publishNewNode(as: name)
    }

    /// Serves `name` on a new peer connected with `peerOptions`.
    public convenience init(name: String, connecting peerOptions: PeerOptions = PeerOptions(),
                            options: Options = Options()) throws(Bus1Error) {
        try self.init(name: name, on: try Peer.connect(options: peerOptions), options: options)
    }

    /// The next call (until `timeout`, then ``Bus1Error/timedOut``).
    public func nextRequest(timeout: Duration? = nil) throws(Bus1Error) -> ServiceRequest {
        let deadline = Deadline.after(timeout)
        while true {
            let message = try peer.receive(timeout: deadline.remaining)
            if let (id, client) = try admit(message) { return ServiceRequest(message, id: id, client: client) }
        }
    }

    /// ``nextRequest(timeout:)`` that suspends the task instead of blocking the thread.
    nonisolated(nonsending)
    public func nextRequest(timeout: Duration? = nil) async throws -> ServiceRequest {
        let deadline = Deadline.after(timeout)
        while true {
            let message = try await peer.receive(timeout: deadline.remaining)
            if let (id, client) = try admit(message) { return ServiceRequest(message, id: id, client: client) }
        }
    }

    /// A loan for a reply of `byteCount` bytes to `request`'s client, to fill in
    /// place and send with ``reply(to:with:)``. Waits up to the reply timeout for
    /// pool space (clients that hold replies without releasing them pin it),
    /// then throws ``Bus1Error/timedOut``.
    public func replyLoan(_ byteCount: Int, for request: borrowing ServiceRequest) throws(Bus1Error) -> Loan {
        let deadline = Deadline.after(options.replyTimeout)
        guard let handle = replyHandles[request.client] else {
            return try peer.loan(byteCount, segment: 0, headroom: Frame.size, wait: peer.options.waitMode, deadline: deadline)
        }
        return try peer.patternLoan(byteCount, for: handle, wait: peer.options.waitMode, deadline: deadline)
    }

    /// Sends `loan` (from ``replyLoan(_:for:)``) as the reply to `request`.
    public func reply(to request: borrowing ServiceRequest, with loan: consuming Loan) throws(Bus1Error) {
        precondition(loan.headroom == Frame.size, "reply with a loan from Service.replyLoan(_:for:)")
        Frame(.reply, detail: Frame.ReplyStatus.ok.rawValue, number: request.id).write(to: &loan)
        try send(loan, to: request.client)
    }

    /// Replies to `request` with a copy of `bytes` (dropped and counted if the
    /// pool has no room within the reply timeout).
    public func reply(to request: borrowing ServiceRequest, copying bytes: some Collection<UInt8>) throws(Bus1Error) {
        try reply(to: request, status: .ok, copying: bytes)
    }

    /// Fails `request`: its caller gets ``Bus1Error/callFailed(_:)`` with `reason`.
    public func fail(_ request: borrowing ServiceRequest, reason: String) throws(Bus1Error) {
        try reply(to: request, status: .failed, copying: reason.utf8.prefix(4096))
    }

    private func reply(to request: borrowing ServiceRequest, status: Frame.ReplyStatus, copying bytes: some Collection<UInt8>) throws(Bus1Error) {
        var loan: Loan
        do {
            loan = try replyLoan(bytes.count, for: request)
        } catch .timedOut {
            statistics.repliesDropped += 1
            return
        }
        loan.write(bytes)
        Frame(.reply, detail: status.rawValue, number: request.id).write(to: &loan)
        try send(loan, to: request.client)
    }

    /// Answers every call with what `handler` returns (a handler that throws
    /// fails the call with its error's description), until the peer is
    /// interrupted (``Bus1Error/interrupted``) or the bus goes away.
    public func serve(_ handler: (borrowing ServiceRequest) throws -> [UInt8]) throws(Bus1Error) -> Never {
        while true {
            let request = try nextRequest()
            let answer: Result<[UInt8], any Error>
            do { answer = .success(try handler(request)) } catch { answer = .failure(error) }
            switch answer {
            case .success(let bytes): try reply(to: request, copying: bytes)
            case .failure(let error): try fail(request, reason: "\(error)")
            }
        }
    }

    /// A call's id and client if `message` is a call; otherwise nil, after
    /// taking in what it says (a client's departure) or counting it malformed.
    private func admit(_ message: borrowing Message) throws(Bus1Error) -> (UInt64, UInt64)? {
        switch message.kind {
        case .nodeDestroyed:
            // A client's reply node is gone (it left): forget the client.
            if let client = replyHandles.first(where: { $0.value == message.node })?.key { forget(client) }
            return nil
        case .nodeReleased:
            return nil
        case .data:
            break
        }
        guard message.node == node, let frame = message.frame, frame.kind == .call else {
            statistics.malformed += 1
            peer.releaseAttached(message.handles)
            return nil
        }
        var kept: Handle?
        if frame.detail & Frame.bindsReply != 0, let replyNode = peer.senderOwnNode(attachedTo: message) {
            // A bind again replaces the earlier reply node; the same node again is
            // one reference more, given back (the first is still kept).
            if replyHandles[message.sender] != nil { forget(message.sender) }
            replyHandles[message.sender] = replyNode
            kept = replyNode
            statistics.clients = replyHandles.count
        }
        peer.releaseAttached(message.handles, except: kept)
        statistics.calls += 1
        return (frame.number, message.sender)
    }

    /// Sends a filled reply to `client`'s reply node, waiting up to the reply
    /// timeout; drops it (counted) if that fails for reasons of the client's.
    private func send(_ loan: consuming Loan, to client: UInt64) throws(Bus1Error) {
        guard let handle = replyHandles[client] else {
            statistics.repliesDropped += 1  // it never sent its reply handle
            return
        }
        do {
            if stalledClients.contains(client) {
                if try peer.trySend(loan, to: handle) != nil {
                    statistics.repliesDropped += 1
                    return
                }
            } else {
                try peer.send(loan, to: handle, wait: peer.options.waitMode, timeout: options.replyTimeout)
            }
            statistics.replies += 1
        } catch .timedOut {
            statistics.repliesDropped += 1
            statistics.replyTimeouts += 1
            stalledClients.insert(client)
        } catch .nodeDestroyed, .channelClosed, .unknownHandle {
            statistics.repliesDropped += 1
            forget(client)
        }
    }

    /// Forgets a client and gives its reply handle back.
    private func forget(_ client: UInt64) {
        guard let handle = replyHandles.removeValue(forKey: client) else { return }
        stalledClients.remove(client)
        statistics.clients = replyHandles.count
        peer.releaseAttached([handle])
    }
}

/// One call a ``Service`` received: the request's payload, read in place in
/// the client's pool. Reply with ``Service/reply(to:copying:)`` or
/// ``Service/reply(to:with:)`` (or ``Service/fail(_:reason:)``); the request's
/// slice goes back to the client when the request is dropped.
public struct ServiceRequest: ~Copyable {
    /// The call's id (the client's, echoed in the reply).
    public let id: UInt64
    /// The calling peer's id.
    public let client: UInt64
    let message: Message

    init(_ message: consuming Message, id: UInt64, client: UInt64) {
        self.message = message
        self.id = id
        self.client = client
    }

    /// The request's bytes, in place (a span that cannot outlive the request).
    public var payload: Span<UInt8> {
        @_lifetime(borrow self)
        get { _overrideLifetime(message.framedPayload, borrowing: self) }
    }

    /// A copy of the request's bytes.
    public func copyPayload() -> [UInt8] { Array(copying: message.framedPayload) }
    /// The caller's uid and pid, as the coordinator stamped them (not forgeable):
    /// what a service checks before it acts for a caller.
    public var clientCredentials: PeerCredentials? { message.senderCredentials }
}
