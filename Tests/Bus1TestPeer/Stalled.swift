@_spi(HostileTesting) import Bus1
import Glibc

/// The `stalled` role: `name=`. Sends one honest message to `name`, then freezes
/// mid-send: its staging mark set, no ticket taken. Prints "STAGED" and stops
/// itself (SIGSTOP); "CONTINUED" if ever continued.
///
/// Driven by OrderingTests "A sender stopped mid-send does not stall its receiver forever".
@MainActor
func runStalled() {
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    sendHonestMessage(peer, to: target)
    do { try peer.stageWithoutSending(to: target) } catch { fail("stall setup: \(error)") }
    say("STAGED")
    raise(SIGSTOP)
    say("CONTINUED")
}
