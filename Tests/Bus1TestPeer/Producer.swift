import Bus1
import Glibc

/// The `producer` role: `name= count= [mode=] [park=] [jitter=] [pace-us=] [progress=]`.
/// Looks `name` up, prints "READY peer=P", sends `count` messages of mixed sizes
/// (1 B ... 4 MiB, the ``Pattern``), waits until every slice came back, and
/// prints "CLOCK anomalies=A" and "OK sent=N reclaimed". `pace-us=N` sleeps N µs
/// after each message (pacing, for tests that need traffic spread over time);
/// `progress=N` prints "PROGRESS N" after N messages.
///
/// The sending half of the tests the `consumer` role serves.
@MainActor
func runProducer() {
    let peer = connect()
    let count = intSetting("count")
    let target = lookupWhenPublished(peer, setting("name"))
    say("READY peer=\(peer.id)")
    // jitter=SEED: pause at random points (yield, short sleeps, bursts) so runs
    // interleave differently with every seed.
    var jitter = settings["jitter"].flatMap { UInt64($0) }.map { JitterSource(seed: $0) }
    let pace = UInt32(intSetting("pace-us", 0))  // pace-us=N: sleep N µs after each message
    let progress = intSetting("progress", 0)  // progress=N: print "PROGRESS N" after N messages
    for seq in 0..<count {
        jitter?.maybePause()
        if pace > 0 && seq > 0 { usleep(pace) }  // pacing asked for by the test, not a wait
        do {
            var loan = try peer.loan(Pattern.size(seq), for: target, wait: waitMode, timeout: .seconds(60))
            loan.count = Pattern.size(seq)
            fill(&loan, seq: seq)
            try peer.send(loan, to: target, wait: waitMode, timeout: .seconds(60))
        } catch {
            fail("send \(seq): \(error)")
        }
        if seq + 1 == progress { say("PROGRESS \(progress)") }
    }
    waitUntilReclaimed(peer)
    printEvents(peer)
    say("CLOCK anomalies=\(peer.currentStatistics.clockAnomalies)")
    say("OK sent=\(count) reclaimed")
}
