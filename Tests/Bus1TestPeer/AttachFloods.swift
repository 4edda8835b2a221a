@_spi(HostileTesting) import Bus1
import Bus1TestSupport
import Glibc

/// The `victim` role: publishes `name`, then serves its bus (events, notifications,
/// messages) until a message "stop" arrives, watching its own fd count. Prints
/// "READY fds=N" and at the end "DONE fdsMax=M notes=K received=R"; a disconnect
/// or any error fails it.
///
/// The service of ReceiverQuotaTests "Another uid's attachment flood", which runs
/// `fdflood` and `nodeflood` (below) against it as uid 65534.
@MainActor
func runVictim() {
    let peer = connect()
    publishNode(peer, as: setting("name"))
    say("READY fds=\(openDescriptorCount())")
    var maximum = 0, notes = 0, received = 0
    while true {
        maximum = max(maximum, openDescriptorCount())
        let message: Message
        do { message = try peer.receive(timeout: .milliseconds(50)) } catch .timedOut { continue } catch { fail("receive: \(error)") }
        guard message.kind == .data else {
            notes += 1
            continue
        }
        received += 1
        if message.copyPayload() == Array("stop".utf8) { break }
    }
    say("DONE fdsMax=\(maximum) notes=\(notes) received=\(received)")
}

/// The `fdflood` role: attaches 4 fds for a message to `name`, `count` times, and
/// never sends the message. Prints "DONE attached=A refused=R" (refused: typed
/// quota refusals) and lingers, so what it attached stays in flight.
///
/// Driven by ReceiverQuotaTests, against `victim`.
@MainActor
func runFdFlood() {
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { fail("pipe") }
    var attached = 0, refused = 0
    for _ in 0..<intSetting("count") {
        do {
            try peer.attachWithoutSending(to: target, attaching: [], fileDescriptors: [fds[0], fds[0], fds[1], fds[1]])
            attached += 1
        } catch .refused(.quotaExceeded(.fileDescriptors)) {
            refused += 1
        } catch {
            fail("attach: \(error)")
        }
    }
    say("DONE attached=\(attached) refused=\(refused)")
    while true { pause() }
}

/// The `nodeflood` role: creates `nodes` nodes and attaches them, 16 a message, to
/// messages for `name` until refused; prints "DONE attached=A refused=R" and exits
/// (leaving: every node it attached is destroyed, one notification each).
///
/// Driven by ReceiverQuotaTests, against `victim`.
@MainActor
func runNodeFlood() {
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    var attached = 0, refused = 0
    var pending: [Handle] = []
    for _ in 0..<intSetting("nodes") {
        do { pending.append(try peer.createNode()) } catch { fail("createNode: \(error)") }
        guard pending.count == 16 else { continue }
        do {
            try peer.send(try peer.loan(8, for: target), to: target, attaching: pending, wait: .park, timeout: .seconds(10))
            attached += pending.count
        } catch .refused(.quotaExceeded(.handlesShare)) {
            refused += 1
        } catch {
            fail("send: \(error)")
        }
        pending.removeAll()
    }
    say("DONE attached=\(attached) refused=\(refused)")
}
