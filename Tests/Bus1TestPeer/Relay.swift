import Bus1
import Glibc

/// The `relay` role: `name= [next=]`. Publishes a node as `name`, prints
/// "READY peer=P", receives one message carrying a handle; with `next=` passes the
/// handle on to `next` and releases it ("FORWARDED handle=H"), else sends
/// "reached" through it and releases it ("REACHED handle=H"); then lingers.
///
/// Driven by LifecycleTests "A handle passed A→B→C reaches the node's owner".
@MainActor
func runRelay() {
    let peer = connect()
    publishNode(peer, as: setting("name"))
    let next = settings["next"].map { lookupWhenPublished(peer, $0) }
    say("READY peer=\(peer.id)")
    let message: Message
    do { message = try receiveData(peer, timeout: .seconds(30)) } catch { fail("receive: \(error)") }
    guard message.handles.count == 1, let passed = message.handles.first, passed.isValid else { fail("expected one valid handle, got \(message.handles)") }
    do {
        if let next {
            try peer.send(try peer.loan(0, for: next), to: next, attaching: [passed])
            try peer.release(passed)
            say("FORWARDED handle=\(passed.id)")
        } else {
            try Array("reached".utf8).withUnsafeBytes { try peer.send(copying: $0, to: passed) }
            try peer.release(passed)
            say("REACHED handle=\(passed.id)")
        }
    } catch { fail("relay: \(error)") }
    while true { pause() }
}
