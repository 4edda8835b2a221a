import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc
import Logging

/// Connections: accepting, admitting or refusing, and the handshake deadline.
///
/// A local user may open connections as fast as the kernel lets it, hold them
/// open without a word, or start a handshake and stall. None of that may stop the
/// coordinator or crowd out other users:
/// - `accept` failing for lack of fds or memory pauses accepting for
///   ``acceptPause`` (the backlog holds the rest) instead of spinning or exiting;
/// - every connection is charged to its uid (``UIDAccounts/Resource/connections``)
///   and, until it is `ready` or inspecting, as a handshake, per uid and on the
///   whole bus; past either limit it is refused with the typed quota error;
/// - a connection that has not finished its handshake within
///   ``CoordinatorConfiguration/handshakeTimeout`` is closed.
/// A refused connection gets its `BUS1_MSG_ERROR` and an orderly close (see
/// ``refuse(_:code:detail:)``), never a bare reset.
final class ConnectionAdmission {
    /// The listening socket's readiness token.
    static let listenerToken: UInt64 = 1
    /// How long accepting pauses after `accept` ran out of fds or memory.
    static var acceptPause: Duration { .milliseconds(50) }
    /// Connections taken per loop turn. A flood of connects must not keep the loop
    /// from serving requests, hang-ups, deadlines and the watchdog: the rest wait in
    /// the backlog, and the listener, re-armed, fires again next turn.
    static var acceptsPerTurn: Int { 32 }

    /// Listening, non-blocking, close-on-exec.
    let listener: FileDescriptor
    private let tables: BusTables
    private let readiness: any ReadinessSource
    private let timers: LoopTimers
    private let counters: CoordinatorCounters
    private let configuration: CoordinatorConfiguration
    private let logger: Logger
    /// Failures a connection flood repeats (accept, refusals) logged at most once a second each.
    private var throttledLog: ThrottledLog
    /// Removes a peer whose fds cannot be watched or whose handshake timed out:
    /// the coordinator's ``Coordinator/removePeer(_:reason:)``, wired by the
    /// coordinator that owns this.
    var removePeer: (_ id: UInt64, _ reason: String) -> Void = { _, _ in }

    init(listener: consuming FileDescriptor, tables: BusTables, readiness: any ReadinessSource, timers: LoopTimers,
         counters: CoordinatorCounters, configuration: CoordinatorConfiguration, logger: Logger) {
        self.listener = listener
        self.tables = tables
        self.readiness = readiness
        self.timers = timers
        self.counters = counters
        self.configuration = configuration
        self.logger = logger
        throttledLog = ThrottledLog(logger: logger)
    }

    /// Queues a poll of the listening socket unless one is queued or accepting is paused.
    func armListenerIfDue(now: ContinuousClock.Instant = .now) {
        guard !timers.listenerArmed else { return }
        if let resume = timers.acceptResumesAt {
            guard resume <= now else { return }
            timers.acceptResumesAt = nil
        }
        do {
            try readiness.watch(listener.rawValue, token: Self.listenerToken)
            timers.listenerArmed = true
        } catch {
            // A full or failing ring: try again after a pause rather than give up the bus.
            counters.loopFailures.wrappingAdd(1, ordering: .relaxed)
            throttledLog.log(.error, "cannot watch the listening socket; retrying", key: "listener", error: error)
            timers.acceptResumesAt = now + Self.acceptPause
        }
    }

    /// The listener fired: takes up to ``acceptsPerTurn`` pending connections; on
    /// resource exhaustion pauses accepting.
    func acceptPending() {
        timers.listenerArmed = false
        for _ in 0..<Self.acceptsPerTurn {
            let socket: FileDescriptor
            do {
                guard let accepted = try SeqPacket.accept(listener) else { return }
                socket = accepted
            } catch {
                counters.acceptFailures.wrappingAdd(1, ordering: .relaxed)
                throttledLog.log(.warning, "accept failed; pausing accept", key: "accept", error: error,
                                 metadata: ["peers": "\(tables.peers.count)"])
                timers.acceptResumesAt = .now + Self.acceptPause
                return
            }
            admit(socket)
        }
    }

    /// Makes `socket` a peer (charged, watched, its handshake deadline set), or
    /// refuses it.
    private func admit(_ socket: consuming FileDescriptor) {
        let credentials: (pid: Int32, uid: UInt32, gid: UInt32)
        do { credentials = try SeqPacket.peerCredentials(socket) } catch {
            throttledLog.log(.warning, "no peer credentials; refusing", key: "credentials", error: error)
            refuse(socket, .permissionDenied)
            return
        }
        if let refusal = refusal(of: credentials) {
            refuse(socket, refusal)
            return
        }
        tables.accounts.add(.connections, to: credentials.uid)
        tables.accounts.add(.handshakes, to: credentials.uid)
        let pidfd: OwnedDescriptor?
        do { pidfd = OwnedDescriptor(try SeqPacket.peerProcess(socket, pid: credentials.pid)) } catch {
            pidfd = nil  // the socket hang-up still reports the peer's death
            logger.debug("no pidfd for peer", metadata: ["error": "\(error)"])
        }
        let id = tables.nextPeerID()
        let peer = PeerRecord(id: id, socket: socket, pidfd: pidfd, pid: credentials.pid, uid: credentials.uid,
                              command: processCommand(of: credentials.pid) ?? "")
        let deadline = ContinuousClock.now + configuration.handshakeTimeout
        peer.handshakeDeadline = deadline
        timers.schedule(deadline)
        tables.peers[id] = peer
        counters.peers.store(tables.connectedPeers(), ordering: .relaxed)
        do {
            try readiness.watch(peer.socket.rawValue, token: peer.socketToken)
            if let fd = peer.pidfd?.rawValue { try readiness.watch(fd, token: peer.pidfdToken) }
        } catch {
            removePeer(id, "cannot watch: \(error)")
            return
        }
        logger.debug("peer connected", metadata: ["peer": "\(id)", "pid": "\(credentials.pid)", "uid": "\(credentials.uid)"])
    }

    /// Why a connection from `credentials` may not become a peer, or nil: its uid is not allowed, or it is at a connection or
    /// handshake limit.
    private func refusal(of credentials: (pid: Int32, uid: UInt32, gid: UInt32)) -> Refusal? {
        guard configuration.allowedUIDs.contains(credentials.uid) else {
            throttledLog.log(.warning, "refusing peer: uid not allowed", key: "uid-\(credentials.uid)",
                             metadata: ["uid": "\(credentials.uid)", "pid": "\(credentials.pid)"])
            return .permissionDenied
        }
        do {
            try tables.accounts.check(.connections, for: credentials.uid)
            try tables.accounts.check(.handshakes, for: credentials.uid)
            return nil
        } catch {
            guard case .quota(let which) = error else { return .invalidState }
            throttledLog.log(.notice, "refusing connection: limit reached", key: "quota-\(credentials.uid)-\(which)",
                             metadata: ["uid": "\(credentials.uid)", "pid": "\(credentials.pid)", "quota": "\(which)"])
            return .quotaExceeded(which)
        }
    }

    /// Refuses a connection that never became a peer: the reason as a
    /// `BUS1_MSG_ERROR`, then an orderly close. Shutting the socket down and
    /// draining what the client sent first matters: closing a Unix socket with
    /// unread data resets the other end, and the client would see "connection
    /// reset" instead of the reason waiting in its queue.
    private func refuse(_ socket: consuming FileDescriptor, _ refusal: Refusal) {
        counters.connectionsRefused.wrappingAdd(1, ordering: .relaxed)
        let bytes = ControlMessage.refused(refusal).encode(requestID: 0)
        try? SeqPacket.send(socket.rawValue, bytes, dontWait: true)
        shutdown(socket.rawValue, Int32(SHUT_RDWR))
        SeqPacket.discardPending(socket.rawValue)
    }

    /// The peer finished its handshake (its pool is sealed) or became an
    /// inspector: it no longer counts against the handshake limits.
    func finishHandshake(of peer: PeerRecord) {
        guard peer.handshakeDeadline != nil else { return }
        peer.handshakeDeadline = nil
        tables.accounts.uncharge(.handshakes, from: peer.uid)
    }

    /// Closes `peer` if its handshake is past its deadline, else keeps the loop
    /// waking for the deadline. Returns whether the peer was removed.
    func expireHandshake(of peer: PeerRecord, now: ContinuousClock.Instant) -> Bool {
        guard let deadline = peer.handshakeDeadline else { return false }
        guard deadline <= now else {
            timers.schedule(deadline)
            return false
        }
        counters.handshakeTimeouts.wrappingAdd(1, ordering: .relaxed)
        throttledLog.log(.notice, "closing a connection that did not finish its handshake in time", key: "handshake",
                         metadata: ["peer": "\(peer.id)", "uid": "\(peer.uid)", "pid": "\(peer.pid)"])
        removePeer(peer.id, "handshake timeout")
        return true
    }
}
