import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// The loop: one thread waits for readiness (the listener, each peer's socket and
/// pidfd, a full socket's room, the stop pipe) and for the earliest deadline,
/// then serves what fired.
///
/// A peer's tokens are its id shifted left by two, with the kind in the low bits:
/// 0 its socket has input, 1 its process exited (pidfd), 2 its socket has room
/// (``PeerRecord/socketToken``). Peer ids start at 1, so tokens 1 and 2 are free
/// for the listener and the stop pipe.
extension Coordinator {
    /// Serves until ``stop()``; then disconnects every peer and removes the socket.
    ///
    /// Nothing a peer or a connection burst does ends it: a failed accept pauses
    /// accepting, a failed readiness wait is counted and retried after a short
    /// back-off, a peer whose fds cannot be watched is removed alone. Only a
    /// failure to watch the stop pipe at start is returned.
    public func run() throws(CoordinatorError) {
        logger.info("bus1 coordinator listening", metadata: ["address": "\(configuration.address)", "loop": "\(readiness.mechanism)"])
        do { try readiness.watch(stopPipe.read, token: Self.stopToken) } catch {
            shutdown()
            throw .system(error)
        }
        let turnInterval = onTurn.map { Int64($0.interval / .nanoseconds(1)) }
        loop: while true {
            onTurn?.action()
            admission.armListenerIfDue()
            let fired: [UInt64]
            do {
                let deadline = timers.nanosecondsUntilNextDeadline()
                fired = try readiness.wait(timeoutNanoseconds: [deadline, turnInterval].compactMap { $0 }.min())
            } catch {
                counters.loopFailures.wrappingAdd(1, ordering: .relaxed)
                throttledLog.log(.error, "event loop wait failed; retrying", key: "loop", error: error)
                var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                nanosleep(&pause, nil)
                continue
            }
            for token in fired {
                switch token {
                case Self.stopToken: break loop
                case ConnectionAdmission.listenerToken: admission.acceptPending()
                default: handle(token: token)
                }
            }
            expireDeadlines()
        }
        shutdown()
    }

    private func shutdown() {
        for id in Array(peers.keys) { removePeer(id, reason: "coordinator stopping") }
        if ownsAddress { unlink(configuration.address) }
        logger.info("bus1 coordinator stopped")
    }

    private func handle(token: UInt64) {
        let id = token >> 2
        guard let peer = peers[id] else { return }  // fired after removal
        if token & 3 == 1 {
            removePeer(id, reason: "process exited")
            return
        }
        if token & 3 == 2 {
            outbox.flush(peer)
            return
        }
        // Serve one datagram, then re-arm: if more is queued, the watch fires again
        // at once and it is served next turn, after every other peer's. No recvmsg is
        // spent to learn that nothing more is queued: a library peer waits for each
        // reply before its next request, so such a probe would find nothing nearly
        // every time, one syscall per request; the re-arm is made anyway and batched
        // into the turn's one readiness wait. A chatty peer gets one datagram a turn.
        receiveOne(from: peer)
        guard peers[id] != nil else { return }
        do { try readiness.watch(peer.socket.rawValue, token: peer.socketToken) } catch {
            removePeer(id, reason: "cannot watch: \(error)")
        }
    }

    /// Reads and serves one datagram, if one is queued.
    private func receiveOne(from peer: PeerRecord) {
        switch receiver.receive(from: peer.socket.rawValue) {
        case .nothing:
            return
        case .gone(let reason):
            removePeer(peer.id, reason: reason)
        case .malformed(let error):
            counters.protocolErrors.wrappingAdd(1, ordering: .relaxed)
            throttledLog.log(.warning, "malformed control message", key: "malformed", error: error, metadata: ["peer": "\(peer.id)"])
            outbox.reply(peer, .refused(.protocolError), requestID: 0)
        case .request(let message, let requestID, let attached):
            let response = serve(message, attached: attached, from: peer)
            guard peers[peer.id] != nil else { return }
            outbox.dispatch(response, to: peer.id, requestID: requestID)
        }
    }

    /// Handles every deadline that has passed (handshakes, held replies) and
    /// schedules the next one.
    func expireDeadlines(now: ContinuousClock.Instant = .now) {
        guard timers.takeDueSweep(at: now) else { return }
        for peer in Array(peers.values) {
            if admission.expireHandshake(of: peer, now: now) { continue }
            outbox.expireHeldReplies(waitingOn: peer, now: now)
        }
    }
}
