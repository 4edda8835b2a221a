import Bus1
import Glibc

/// The `namer` role: `names=a,b,… [target=NAME]`. Publishes a node under each
/// name, sends one message ("hello") to `target` if given, prints
/// "READY peer=P pid=X uid=U" (its own view: `getpid`, `geteuid`), then waits
/// up to 60 s for a data message on any of its nodes and exits 0 ("BYE"), which
/// disconnects it and withdraws its names.
///
/// Driven by CredentialsTests.
@MainActor
func runNamer() {
    let peer = connect()
    for name in setting("names").split(separator: ",") { publishNode(peer, as: String(name)) }
    if let target = settings["target"] {
        let handle = lookupWhenPublished(peer, target)
        do {
            var loan = try peer.loan(8, for: handle)
            loan.count = 5
            loan.withUnsafeMutableBytes { $0.copyBytes(from: Array("hello".utf8)) }
            try peer.send(loan, to: handle, wait: .park)
        } catch { fail("send to \(target): \(error)") }
    }
    say("READY peer=\(peer.id) pid=\(getpid()) uid=\(geteuid())")
    do { _ = try receiveData(peer, timeout: .seconds(60)) } catch { fail("receive: \(error)") }
    say("BYE")
}
