import Bus1
import Glibc

/// The `racer` role: `name=`. Prints "READY peer=P", then sends numbered messages
/// to `name` until a send fails because the node was destroyed, and prints
/// "STOPPED sent=N ticket=T" (T: the destroy notification's ticket); then lingers.
///
/// Driven by LifecycleTests "Destroy racing a send".
@MainActor
func runRacer() {
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    say("READY peer=\(peer.id)")
    var sent: UInt64 = 0
    var notifiedAt: UInt64 = 0
    while true {
        do {
            while let note = try peer.tryReceive() {
                if note.kind == .nodeDestroyed && note.node == target { notifiedAt = note.ticket }
            }
            var loan = try peer.loan(8, for: target, wait: .park)
            loan.storeBytes(of: sent, as: UInt64.self)
            try peer.send(loan, to: target, wait: .park)
            sent += 1
        } catch .nodeDestroyed(target) {
            guard notifiedAt != 0 else { fail("nodeDestroyed before the notification") }
            break
        } catch { fail("racer: \(error)") }
    }
    say("STOPPED sent=\(sent) ticket=\(notifiedAt)")
    while true { pause() }
}
