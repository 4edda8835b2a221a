import Bus1
import Glibc

/// The `burst` role: `names= count= [size=]`. Sends `count` messages of `size`
/// bytes ("burst <seq>") to every name in `names` (one multicast each) without
/// waiting, prints "SENT count peer=P inuse=U", then keeps taking completions
/// back, printing "INUSE n" whenever that changes, until killed.
///
/// Driven by ShmInspectTests (the listings and multicast checks), which inspect
/// the slices it leaves in flight.
@MainActor
func runBurst() {
    let peer = connect()
    let targets = setting("names").split(separator: ",").map { lookupWhenPublished(peer, String($0)) }
    let count = intSetting("count"), size = intSetting("size", 64)
    for seq in 0..<count {
        do {
            var loan = try peer.loan(size, for: targets)
            let text = Array("burst \(seq)".utf8)
            loan.withUnsafeMutableBytes { $0.copyBytes(from: text.prefix(size)) }  // the rest of the `size` bytes as they were
            try peer.send(loan, to: targets)
        } catch {
            fail("send \(seq): \(error)")
        }
    }
    var inUse = peer.currentStatistics.slicesInUse
    say("SENT \(count) peer=\(peer.id) inuse=\(inUse)")
    while true {
        do { try peer.reclaimCompleted() } catch { fail("reclaim: \(error)") }
        let now = peer.currentStatistics.slicesInUse
        if now != inUse { inUse = now; say("INUSE \(now)") }
        usleep(2000)  // how often it looks; the test waits for the INUSE line, not for time
    }
}
