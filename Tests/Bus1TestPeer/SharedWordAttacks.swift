@_spi(HostileTesting) import Bus1
import Bus1Linux
import Glibc

// Hostile roles that connect honestly, then write the shared words a peer may
// write (the bus clock, its own staging mark, its completion ring), beside
// honest peers whose every byte and order the tests check.

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
        usleep(interval)  // pacing the attack, not synchronisation
        peer.writeClock(value)
    }
}

/// `staller name= seconds=`: sends one honest message to `name`, waits until it
/// came back, prints "STAGING", then for `seconds` cycles its channel's staging
/// mark through 1...8 (small: below every ticket, so each value holds delivery
/// back, and each change is a "new" mark), never publishing; prints
/// "CYCLED n" and exits 0 (its channel closes with it).
@MainActor
func runStaller() {
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    sendFirstHonestMessage(peer, to: target)
    waitUntilReclaimed(peer)
    say("STAGING")
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

/// `corruptsink name= release= attack=foreign|double|tail-ahead|tail-back`:
/// publishes a node as `name`, prints "READY", waits for SIGUSR1 (the test sends
/// it once the sender sent everything), receives and releases `release` (≥ 1)
/// messages (honest completions), then corrupts its completion ring towards
/// their sender: a completion for an offset never sent (`foreign`), one for a
/// slice it completed already (`double`), or the completion index moved far
/// ahead or backwards. Prints "CORRUPTED" and lingers (its channel stays open
/// unless the sender closes it) until killed.
@MainActor
func runCorruptSink() {
    var cue = sigset_t()
    sigemptyset(&cue)
    sigaddset(&cue, SIGUSR1)
    sigprocmask(SIG_BLOCK, &cue, nil)
    let peer = connect()
    let node: Handle
    do { node = try peer.createNode() } catch { fail("createNode: \(error)") }
    do { try peer.publish(node, as: setting("name")) } catch { fail("publish: \(error)") }
    say("READY peer=\(peer.id)")
    var signal: Int32 = 0
    sigwait(&cue, &signal)
    var sender: UInt64 = 0
    var released: UInt64 = 0
    for _ in 0..<max(1, intSetting("release", 1)) {
        let message: Message
        do { message = try receiveData(peer, timeoutNanoseconds: 30_000_000_000) } catch { fail("receive: \(error)") }
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
/// capacity) pattern messages to `name` without waiting, prints "SENT n", then
/// takes completions back until it detects the receiver's violation, and prints
/// "RECLAIMED slices=S violations=V closed=C" (S: slices still in use; 0 when
/// the violation path leaks nothing). Then lingers, its pool mapped for
/// inspectors, until killed.
@MainActor
func runVictimSender() {
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    let count = intSetting("count")
    for seq in 0..<count {
        do {
            var loan = try peer.loan(Pattern.size(seq))
            loan.count = Pattern.size(seq)
            Pattern.fill(loan.payload, seq: seq)
            try peer.send(loan, to: target)
        } catch { fail("send \(seq): \(error)") }
    }
    say("SENT \(count) inuse=\(peer.currentStatistics.slicesInUse)")
    let deadline = monotonicNanoseconds() + 30_000_000_000
    var closed = false
    while !closed {
        do { try peer.reclaimCompleted() } catch { fail("reclaim: \(error)") }
        for event in peer.takeEvents() {
            if case .outboundClosed = event { closed = true }
            if case .violationDetected(_, let violation) = event { say("VIOLATION kind=\(violation.rawValue)") }
        }
        if monotonicNanoseconds() > deadline { fail("no violation detected: \(peer.currentStatistics)") }
        usleep(1000)  // pacing the poll; the exit condition is observed, not timed
    }
    // The coordinator's close arrives too; serving it must change nothing.
    do { try peer.reclaimCompleted() } catch { fail("reclaim after close: \(error)") }
    let statistics = peer.currentStatistics
    say("RECLAIMED slices=\(statistics.slicesInUse) bytes=\(statistics.poolBytesInUse) violations=\(statistics.violationsDetected)")
    while true { pause() }
}
