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
        // Serve what is queued, up to a turn's share (one chatty peer must not hold
        // the loop), then re-arm: more fires again next turn.
        for _ in 0..<Self.datagramsPerTurn where peers[id] != nil {
            guard receiveOne(from: peer) else { break }
        }
        guard peers[id] != nil else { return }
        do { try readiness.watch(peer.socket.rawValue, token: peer.socketToken) } catch {
            removePeer(id, reason: "cannot watch: \(error)")
        }
    }

    /// Reads and serves one datagram; false when none is queued or the peer went away.
    private func receiveOne(from peer: PeerRecord) -> Bool {
        switch receiver.receive(from: peer.socket.rawValue) {
        case .nothing:
            return false
        case .gone(let reason):
            removePeer(peer.id, reason: reason)
            return false
        case .malformed(let error):
            counters.protocolErrors.wrappingAdd(1, ordering: .relaxed)
            throttledLog.log(.warning, "malformed control message", key: "malformed", error: error, metadata: ["peer": "\(peer.id)"])
            outbox.reply(peer, .refused(.protocolError), requestID: 0)
            return true
        case .request(let message, let requestID, let attached):
            let response = serve(message, attached: attached, from: peer)
            guard peers[peer.id] != nil else { return true }
            outbox.dispatch(response, to: peer.id, requestID: requestID)
            return true
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
