@_spi(HostileTesting) import Bus1
import CBus1Wire
import Bus1Linux
import Bus1TestSupport
import Glibc

/// The `hostile` role: `name= attack=`. Sends two honest messages to `name`, waits
/// until they came back, then sends one forged descriptor (`attack`: bad-offset,
/// huge-length, unknown-node, ticket-backwards, lying-attachment,
/// unknown-flag, unknown-segment, segment-beyond) and prints "ATTACKED". When the
/// coordinator closes its channel it checks that a send on it is refused with the
/// same reason and prints "CLOSED reason=R slices=S".
///
/// Driven by HostileTests "Forged descriptors are caught and close only the attacker's channel".
@MainActor
func runHostile() {
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    // Two, so the second's ticket is at least 2 and ticket 1 lies below it.
    sendHonestMessage(peer, to: target, seq: 0)
    sendHonestMessage(peer, to: target, seq: 1)
    // Attack only once the honest messages were taken and released: a forged
    // descriptor would otherwise (rightly) close the channel before the receiver saw them.
    waitUntilReclaimed(peer)
    let forgery: Peer.Forgery
    switch setting("attack") {
    case "bad-offset": forgery = .init(offset: 1 << 40)
    case "huge-length": forgery = .init(length: .max)
    case "unknown-node": forgery = .init(node: 987_654_321)
    case "ticket-backwards": forgery = .init(ticket: 1)  // below the second honest message's ticket (0 would read as an empty slot)
    case "lying-attachment": forgery = .init(flags: BUS1_DESC_ATTACHMENT)  // no attachment was asked for
    case "unknown-flag": forgery = .init(flags: 0x80)
    case "unknown-segment": forgery = .init(offset: 7 << UInt64(BUS1_SEGMENT_SHIFT) | 1 << 16)  // a segment it never opened
    case "segment-beyond": forgery = .init(offset: UInt64(BUS1_SEGMENTS_MAX) << UInt64(BUS1_SEGMENT_SHIFT))  // past the wire's 16
    default: fail("unknown attack")
    }
    do { try peer.sendForged(to: target, forgery) } catch { fail("forged send: \(error)") }
    say("ATTACKED")
    // The receiver reports us; the coordinator closes our channel and tells us.
    // (Nothing more is sent: the receiver must judge the forged descriptor alone.)
    var closedBecause: CloseReason?
    _ = waitUntil(timeoutSeconds: 20) {
        do { try peer.reclaimCompleted() } catch { fail("after attack: \(error)") }
        for case .outboundClosed(_, let reason) in peer.takeEvents() where closedBecause == nil { closedBecause = reason }
        return closedBecause != nil
    }
    guard let reason = closedBecause else { fail("channel never closed") }
    // Sending on the closed channel is now a typed error.
    var again: Loan
    do { again = try peer.loan(8, for: target) } catch { fail("loan: \(error)") }
    again.count = 8
    do {
        try peer.send(again, to: target)
        fail("send after close succeeded")
    } catch .channelClosed(_, let sendReason) where sendReason == reason {
        say("CLOSED reason=\(reason) slices=\(peer.currentStatistics.slicesInUse)")
        exit(0)
    } catch {
        fail("send after close: \(error)")
    }
}
