import Bus1
import Bus1TestSupport
import Glibc

/// The `attachflood` role: `name= threads= count= [cue=1]`. `threads` peers (one a
/// thread) each send up to `count` messages to `name` with a handle to a node of
/// their own attached, as fast as the coordinator answers; a thread stops at its
/// first fair-share refusal (the first prints "REFUSED"). Prints "STARTED" once all
/// looked `name` up (with `cue=1` they then wait for SIGUSR1), and
/// "DONE attached=A refused=R" when all are done; then lingers.
///
/// Driven by ControlQueueTests "A uid flooding a receiver is refused past its fair
/// share": 16 threads of another uid flood, 3 of this uid (with the cue) must all
/// get through.
@MainActor
func runAttachFlood() {
    let tally = FloodTally()
    let threads = intSetting("threads"), count = intSetting("count")
    let name = setting("name"), peerOptions = options
    var cue = sigset_t()
    sigemptyset(&cue)
    sigaddset(&cue, SIGUSR1)
    sigprocmask(SIG_BLOCK, &cue, nil)  // before the threads exist: they inherit it
    if settings["cue"] != "1" { tally.go = true }
    let workers = (0..<threads).map { _ in
        startThread { attachFloodThread(tally, options: peerOptions, name: name, threads: threads, count: count) }
    }
    tally.wait { tally.started == threads }
    say("STARTED")
    if !tally.go {
        var signal: Int32 = 0
        sigwait(&cue, &signal)
        tally.update { tally.go = true }
    }
    for thread in workers { pthread_join(thread, nil) }
    say("DONE attached=\(tally.attached) refused=\(tally.refused)")
    while true { pause() }  // the receiver may still be taking our messages
}

/// What the `attachflood` threads did, and where they wait for each other: a
/// pthread mutex and condition variable, so a thread that waits sleeps until
/// another changes the tally.
final class FloodTally: @unchecked Sendable {
    var attached = 0, refused = 0, ready = 0, started = 0, go = false
    /// The threads' peers, kept connected until the process ends.
    var peers: [Peer] = []
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
    }

    /// Runs `body` under the lock, then wakes every thread waiting for a change.
    func update<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(mutex)
        }
        return body()
    }

    /// Waits, asleep, until `condition` (checked under the lock) holds.
    func wait(until condition: () -> Bool) {
        pthread_mutex_lock(mutex)
        while !condition() { pthread_cond_wait(changed, mutex) }
        pthread_mutex_unlock(mutex)
    }
}

/// One `attachflood` thread: its own peer sends up to `count` messages with a
/// handle attached until the fair share refuses it.
@Sendable nonisolated func attachFloodThread(_ tally: FloodTally, options: PeerOptions, name: String, threads: Int, count: Int) {
    let peer: Peer, own: Handle, target: Handle
    do {
        peer = try Peer.connect(options: options)
        own = try peer.createNode()
        target = try peer.lookup(name, timeout: .seconds(20))
    } catch { fail("attachflood setup: \(error)") }
    tally.update { tally.peers.append(peer); tally.ready += 1; tally.started += 1 }
    tally.wait { tally.started == threads && tally.go }
    defer {
        // Stay connected until every thread is done (the receiver may still be taking our messages).
        tally.update { tally.ready -= 1 }
        tally.wait { tally.ready == 0 }
    }
    for _ in 0..<count {
        let outcome: Bus1Error?
        do {
            try peer.send(try peer.loan(8, for: target, wait: .park), to: target, attaching: [own], wait: .park)
            outcome = nil
        } catch {
            outcome = error
        }
        switch outcome {
        case nil:
            tally.update { tally.attached += 1 }
        case .refused(.quotaExceeded(.messages))?:
            if tally.update({ () -> Bool in tally.refused += 1; return tally.refused == 1 }) { say("REFUSED") }
            return
        case let error?:
            fail("attachflood: \(error)")
        }
    }
}
