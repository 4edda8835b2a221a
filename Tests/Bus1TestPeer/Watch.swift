import Bus1
import Glibc

/// The `watch` role: `names= notes=`. Looks the names up, prints
/// "READY peer=P handles=H,…", then prints every notification as
/// "NOTE kind=K node=N from=P ticket=T" until `notes` came, then "DONE"; lingers.
///
/// Driven by LifecycleTests (batch destroy, reset).
@MainActor
func runWatch() {
    let peer = connect()
    let names = setting("names").split(separator: ",").map(String.init)
    let held = names.map { lookupWhenPublished(peer, $0) }
    say("READY peer=\(peer.id) handles=\(held.map { String($0.id) }.joined(separator: ","))")
    var notes = 0
    while notes < intSetting("notes") {
        let message: Message
        do { message = try peer.receive(timeout: .seconds(30)) } catch { fail("receive: \(error)") }
        guard message.kind != .data else { continue }
        notes += 1
        say("NOTE kind=\(message.kind) node=\(message.node.id) from=\(message.sender) ticket=\(message.ticket)")
    }
    say("DONE")
    while true { pause() }
}
