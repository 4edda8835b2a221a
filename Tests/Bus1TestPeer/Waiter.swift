import Bus1
import Bus1Linux
import Bus1TestSupport
import Glibc

/// The `waiter` role: `name= [mode=] [reconnect=1]`. Publishes a node as `name`,
/// prints "READY peer=P", and parks in receive() until the coordinator dies,
/// which must be a typed `.coordinatorGone` ("GONE after_ms=T"), as must its next
/// request ("OK"). `reconnect=1`: then connects again until a restarted
/// coordinator on the same path takes it and it can publish the same name
/// ("RECONNECTED peer=P").
///
/// Driven by DaemonTests "A dead coordinator is a typed error" and "Peers reconnect".
@MainActor
func runWaiter() {
    let peer = connect()
    publishNode(peer, as: setting("name"))
    say("READY peer=\(peer.id)")
    let started = monotonicNanoseconds()
    do {
        _ = try peer.receive(timeout: .seconds(60))
        fail("received a message nobody sent")
    } catch .coordinatorGone {
        say("GONE after_ms=\((monotonicNanoseconds() - started) / 1_000_000)")
    } catch {
        fail("receive: \(error)")
    }
    do {
        _ = try peer.createNode()
        fail("createNode on a dead bus succeeded")
    } catch .coordinatorGone {
        say("OK")
    } catch {
        fail("createNode: \(error)")
    }
    // reconnect=1: a restarted coordinator on the same path takes a new peer, which
    // can publish the same name again (the old bus's state is gone with it).
    if settings["reconnect"] == "1" {
        var again: Peer?
        let reconnected = waitUntil(timeoutSeconds: 30, pollMicroseconds: 10_000) {
            do throws(Bus1Error) {
                let peer = try Peer.connect(options: options)
                try peer.publish(try peer.createNode(), as: setting("name"))
                again = peer
                return true
            } catch .coordinatorGone, .noBus {
                return false  // no daemon listens yet, or it went away again
            } catch {
                fail("reconnect: \(error)")
            }
        }
        guard reconnected, let again else { fail("no coordinator came back") }
        say("RECONNECTED peer=\(again.id)")
    }
}
