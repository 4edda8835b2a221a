import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

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
extension Coordinator {
    /// How long accepting pauses after `accept` ran out of fds or memory.
    static var acceptPause: Duration { .milliseconds(50) }

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

    /// Connections taken per loop turn. A flood of connects must not keep the loop
    /// from serving requests, hang-ups, deadlines and the watchdog: the rest wait in
    /// the backlog, and the listener, re-armed, fires again next turn.
    static var acceptsPerTurn: Int { 32 }

    /// Takes up to ``acceptsPerTurn`` pending connections; on resource exhaustion
    /// pauses accepting.
    func acceptPending() {
        for _ in 0..<Self.acceptsPerTurn {
            let socket: FileDescriptor
            do {
                guard let accepted = try SeqPacket.accept(listener) else { return }
                socket = accepted
            } catch {
                counters.acceptFailures.wrappingAdd(1, ordering: .relaxed)
                throttledLog.log(.warning, "accept failed; pausing accept", key: "accept", error: error,
                                 metadata: ["peers": "\(peers.count)"])
                timers.acceptResumesAt = .now + Self.acceptPause
                return
            }
            admit(socket)
        }
    }

    private func admit(_ socket: consuming FileDescriptor) {
        let credentials: (pid: Int32, uid: UInt32, gid: UInt32)
        do { credentials = try SeqPacket.peerCredentials(socket) } catch {
            throttledLog.log(.warning, "no peer credentials; refusing", key: "credentials", error: error)
            refuse(socket, code: BUS1_ERR_PERMISSION.rawValue, detail: 0)
            return
        }
        guard configuration.allowedUIDs.contains(credentials.uid) else {
            throttledLog.log(.warning, "refusing peer: uid not allowed", key: "uid-\(credentials.uid)",
                             metadata: ["uid": "\(credentials.uid)", "pid": "\(credentials.pid)"])
            refuse(socket, code: BUS1_ERR_PERMISSION.rawValue, detail: 0)
            return
        }
        do {
            try accounts.check(.connections, for: credentials.uid)
            try accounts.check(.handshakes, for: credentials.uid)
        } catch {
            if case .quota(let which) = error {
                throttledLog.log(.notice, "refusing connection: limit reached", key: "quota-\(credentials.uid)-\(which)",
                                 metadata: ["uid": "\(credentials.uid)", "pid": "\(credentials.pid)", "quota": "\(which)"])
                refuse(socket, code: BUS1_ERR_QUOTA.rawValue, detail: which)
            }
            return
        }
        accounts.add(.connections, to: credentials.uid)
        accounts.add(.handshakes, to: credentials.uid)
        let pidfd: OwnedDescriptor?
        do { pidfd = OwnedDescriptor(try SeqPacket.peerProcess(socket, pid: credentials.pid)) } catch {
            pidfd = nil  // the socket hang-up still reports the peer's death
            logger.debug("no pidfd for peer", metadata: ["error": "\(error)"])
        }
        let id = nextPeerID()
        let peer = PeerRecord(id: id, socket: socket, pidfd: pidfd, pid: credentials.pid, uid: credentials.uid)
        let deadline = ContinuousClock.now + configuration.handshakeTimeout
        peer.handshakeDeadline = deadline
        timers.schedule(deadline)
        peers[id] = peer
        counters.peers.store(connectedPeers(), ordering: .relaxed)
        do {
            try readiness.watch(peer.socket.rawValue, token: peer.socketToken)
            if let fd = peer.pidfd?.rawValue { try readiness.watch(fd, token: peer.pidfdToken) }
        } catch {
            removePeer(id, reason: "cannot watch: \(error)")
            return
        }
        logger.debug("peer connected", metadata: ["peer": "\(id)", "pid": "\(credentials.pid)", "uid": "\(credentials.uid)"])
    }

    /// Refuses a connection that never became a peer: the reason as a
    /// `BUS1_MSG_ERROR`, then an orderly close. Shutting the socket down and
    /// draining what the client sent first matters: closing a Unix socket with
    /// unread data resets the other end, and the client would see "connection
    /// reset" instead of the reason waiting in its queue.
    func refuse(_ socket: consuming FileDescriptor, code: UInt32, detail: UInt32) {
        counters.connectionsRefused.wrappingAdd(1, ordering: .relaxed)
        let bytes = ControlMessage.error(code: code, detail: detail).encode(requestID: 0)
        try? SeqPacket.send(socket.rawValue, bytes, dontWait: true)
        shutdown(socket.rawValue, Int32(SHUT_RDWR))
        SeqPacket.discardPending(socket.rawValue)
    }

    /// The peer finished its handshake (its pool is sealed) or became an
    /// inspector: it no longer counts against the handshake limits.
    func finishHandshake(of peer: PeerRecord) {
        guard peer.handshakeDeadline != nil else { return }
        peer.handshakeDeadline = nil
        accounts.uncharge(.handshakes, from: peer.uid)
    }

    /// Handles every deadline that has passed (handshakes, held replies) and
    /// schedules the next one.
    func expireDeadlines(now: ContinuousClock.Instant = .now) {
        guard timers.takeDueSweep(at: now) else { return }
        for peer in Array(peers.values) {
            if let deadline = peer.handshakeDeadline {
                if deadline <= now {
                    counters.handshakeTimeouts.wrappingAdd(1, ordering: .relaxed)
                    throttledLog.log(.notice, "closing a connection that did not finish its handshake in time", key: "handshake",
                                     metadata: ["peer": "\(peer.id)", "uid": "\(peer.uid)", "pid": "\(peer.pid)"])
                    removePeer(peer.id, reason: "handshake timeout")
                    continue
                }
                timers.schedule(deadline)
            }
            expireHeldReplies(waitingOn: peer, now: now)
        }
    }
}
