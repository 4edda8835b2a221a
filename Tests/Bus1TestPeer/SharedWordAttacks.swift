@_spi(HostileTesting) import Bus1
import Bus1Linux
import Bus1TestSupport
import Glibc

// Hostile roles that connect honestly, then write the shared words a peer may
// write (the bus clock, its own staging mark, its completion ring), beside
// honest peers whose every byte and order the tests check. All four are driven by
// SharedWordAttackTests (clockwarp: the clock tests; staller: the cycled staging
// mark; corruptsink and victimsender: the completion-ring tests).

/// `clockwarp warp=rewind|jump|near-max interval-us=`: writes the bus clock every
/// `interval-us` until killed: back to 1 (`rewind`), to 2^63 (`jump`), or to
/// `UInt64.max - 50`, so it wraps soon (`near-max`). Prints "WARPING clock=C"
/// after the first write (C: what it read before).
@MainActor
func runClockWarp() {
    let peer = connect()
    let value: UInt64 = switch setting("warp") {
    case "rewind": 1
    case "jump": 1 << 63
    case "near-max": .max - 50
    default: fail("unknown warp \(setting("warp"))")
    }
    let interval = UInt32(intSetting("interval-us", 20_000))
    let before = peer.clockValue
    peer.writeClock(value)
    say("WARPING peer=\(peer.id) clock=\(before)")
    while true {
        usleep(interval)  // pacing the attack (the thing under test), not a wait
        peer.writeClock(value)
    }
}

/// `staller name= seconds=`: sends one honest message to `name`, waits until it
/// came back, prints "STAGING", waits for SIGUSR1 (the test's cue: honest
/// traffic is flowing), prints "CYCLING", then for `seconds` cycles its channel's staging
/// mark through 1...8 (small: below every ticket, so each value holds delivery
/// back, and each change is a "new" mark), never publishing; prints
/// "CYCLED n" and exits 0 (its channel closes with it).
@MainActor
func runStaller() {
    let cue = blockCueSignal()
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    sendHonestMessage(peer, to: target)
    waitUntilReclaimed(peer)
    say("STAGING")
    awaitCue(cue)
    say("CYCLING")
    let deadline = monotonicNanoseconds() + UInt64(intSetting("seconds", 5)) * 1_000_000_000
    var writes = 0
    while monotonicNanoseconds() < deadline {
        for mark in UInt64(1)...8 {
            do { try peer.writeStagingMark(to: target, mark) } catch { fail("staging mark: \(error)") }
            for _ in 0..<2000 { _ = peer.clockValue }  // let the receiver see each value
        }
        writes += 8
        sched_yield()
    }
    say("CYCLED \(writes)")
}

/// `corruptsink name= release= attack=foreign|double|tail-ahead|tail-back [ring=]`:
/// publishes a node as `name` (inbound rings of `ring` entries), prints "READY",
/// waits for SIGUSR1 (the test sends it once the sender sent its first batch),
/// receives and releases `release` (≥ 1) messages (honest completions), then
/// corrupts its completion ring towards their sender: a completion for an
/// offset never sent (`foreign`), one for a slice it completed already
/// (`double`), or the completion index moved far ahead or backwards. Prints
/// "CORRUPTED" and lingers, reading nothing more, until killed (its channel
/// stays open unless the sender closes it).
@MainActor
func runCorruptSink() {
    let cue = blockCueSignal()
    var sinkOptions = options
    sinkOptions.ringCapacity = intSetting("ring", 0)
    let peer: Peer
    do { peer = try Peer.connect(options: sinkOptions) } catch { fail("connect: \(error)") }
    publishNode(peer, as: setting("name"))
    say("READY peer=\(peer.id)")
    awaitCue(cue)
    var sender: UInt64 = 0
    var released: UInt64 = 0
    for _ in 0..<max(1, intSetting("release", 1)) {
        let message: Message
        do { message = try receiveData(peer, timeout: .seconds(30)) } catch { fail("receive: \(error)") }
        sender = message.sender
        released = peer.sliceOffset(of: message)
    }  // each message is released as it goes
    do {
        switch setting("attack") {
        case "foreign": try peer.forgeCompletion(from: sender, offset: 8)  // inside the header: never a slice
        case "double": try peer.forgeCompletion(from: sender, offset: released)
        case "tail-ahead": try peer.forgeCompletion(from: sender, offset: 0, tail: 1 << 40)
        case "tail-back": try peer.forgeCompletion(from: sender, offset: 0, tail: .max)
        default: fail("unknown attack")
        }
    } catch { fail("corrupt: \(error)") }
    say("CORRUPTED sender=\(sender)")
    while true { pause() }
}

/// `victimsender name= count=`: an honest sender. Sends `count` (≤ the ring
/// capacity) pattern messages to `name` without taking completions back, prints
/// "SENT n", waits for SIGUSR1 (the receiver has corrupted its completion ring
/// meanwhile), then goes on sending without waiting: once credit runs out the
/// send takes completions back, which finds the violation. Prints
/// "VIOLATION kind=K" and "RECLAIMED slices=S bytes=B violations=V" (S and B:
/// still in use; 0 when the violation path leaks nothing), then lingers, its
/// pool mapped for inspectors, until killed.
@MainActor
func runVictimSender() {
    let cue = blockCueSignal()
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    let count = intSetting("count")
    func sendOne(_ seq: Int) throws(Bus1Error) {
        var loan = try peer.loan(Pattern.size(seq), for: target)
        loan.count = Pattern.size(seq)
        fill(&loan, seq: seq)
        try peer.send(loan, to: target)
    }
    for seq in 0..<count {
        do { try sendOne(seq) } catch { fail("send \(seq): \(error)") }
    }
    say("SENT \(count) inuse=\(peer.currentStatistics.slicesInUse)")
    awaitCue(cue)
    var seq = count
    // Sends until the channel is closed. Out of credit, a send is refused
    // (`wouldBlock`) while the close is on its way through the control socket:
    // then it tries again a moment later.
    let closed = waitUntil(timeoutSeconds: 60) {
        while true {
            do throws(Bus1Error) {
                try sendOne(seq)
                seq += 1
            } catch .channelClosed {
                return true
            } catch .wouldBlock {
                return false
            } catch {
                fail("send \(seq): \(error)")
            }
            if seq > count + 100_000 { fail("no violation detected: \(peer.currentStatistics)") }
        }
    }
    if !closed { fail("the channel never closed: \(peer.currentStatistics)") }
    for case .violationDetected(_, let violation) in peer.takeEvents() { say("VIOLATION kind=\(violation.rawValue)") }
    // The coordinator's close arrives too; serving it must change nothing.
    do { try peer.reclaimCompleted() } catch { fail("reclaim after close: \(error)") }
    let statistics = peer.currentStatistics
    say("RECLAIMED slices=\(statistics.slicesInUse) bytes=\(statistics.poolBytesInUse) violations=\(statistics.violationsDetected)")
    while true { pause() }
}

/// Blocks SIGUSR1 (the tests' cue) so it waits, pending, for ``awaitCue(_:)``.
func blockCueSignal() -> sigset_t {
    var cue = sigset_t()
    sigemptyset(&cue)
    sigaddset(&cue, SIGUSR1)
    sigprocmask(SIG_BLOCK, &cue, nil)
    return cue
}

/// Waits for the SIGUSR1 cue.
func awaitCue(_ cue: sigset_t) {
    var cue = cue
    var signal: Int32 = 0
    sigwait(&cue, &signal)
}
