import Bus1
import Glibc

/// The `slowsink` role: `nodes= sleep= count=`. Publishes nodes `flood.0 ..< nodes`,
/// prints "READY peer=P", does not look at its socket for `sleep` ms (busy
/// elsewhere: the sleep is what the test is about, not a wait), then receives
/// `count` messages and prints "OK received=N violations=V".
///
/// Driven by ControlQueueTests "A peer busy while 1,000 grants pile up misses none".
@MainActor
func runSlowSink() {
    let peer = connect()
    for i in 0..<intSetting("nodes") {
        publishNode(peer, as: "flood.\(i)")
    }
    say("READY peer=\(peer.id)")
    usleep(UInt32(intSetting("sleep")) * 1000)  // busy elsewhere: what the test is about, not a wait
    for _ in 0..<intSetting("count") {
        do { _ = try receiveData(peer, timeout: .seconds(30)) } catch { fail("receive: \(error)") }
    }
    say("OK received=\(intSetting("count")) violations=\(peer.currentStatistics.violationsDetected)")
}
