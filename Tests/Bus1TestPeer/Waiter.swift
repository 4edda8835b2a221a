import Bus1
import Bus1Linux
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
    let node: Handle
    do { node = try peer.createNode(); try peer.publish(node, as: setting("name")) } catch { fail("setup: \(error)") }
    say("READY peer=\(peer.id)")
    let started = monotonicNanoseconds()
    do {
        _ = try peer.receive(timeoutNanoseconds: 60_000_000_000)
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
        let deadline = monotonicNanoseconds() + 30_000_000_000
        while true {
            do {
                let again = try Peer.connect(options: options)
                try again.publish(try again.createNode(), as: setting("name"))
                say("RECONNECTED peer=\(again.id)")
                break
            } catch .coordinatorGone, .noBus {
                if monotonicNanoseconds() > deadline { fail("no coordinator came back") }
                usleep(10_000)
            } catch {
                fail("reconnect: \(error)")
            }
        }
    }
}
