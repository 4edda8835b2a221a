import Bus1
import Glibc

/// The `streamer` role: `name=`. Sends pattern messages to `name` forever
/// (blocking on credit), printing "STREAMING" after 1,000, until the channel
/// closes; then prints "CLOSED reason=R sent=N slices=S" (S: slices still in
/// use, 0 when every in-flight slice came back) and exits 0 if S is 0.
///
/// Driven by HostileTests "A consumer killed mid-stream".
@MainActor
func runStreamer() {
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    say("READY peer=\(peer.id)")
    var seq = 0
    while true {
        do {
            var loan = try peer.loan(Pattern.size(seq), for: target, wait: waitMode, timeout: .seconds(60))
            loan.count = Pattern.size(seq)
            fill(&loan, seq: seq)
            try peer.send(loan, to: target, wait: waitMode, timeout: .seconds(60))
            seq += 1
            if seq == 1000 { say("STREAMING") }
        } catch .channelClosed(_, let reason) {
            // Every slice that was in flight to the dead receiver is back already.
            let slices = peer.currentStatistics.slicesInUse
            say("CLOSED reason=\(reason) sent=\(seq) slices=\(slices)")
            printEvents(peer)
            exit(slices == 0 ? 0 : 1)
        } catch {
            fail("send \(seq): \(error)")
        }
    }
}
