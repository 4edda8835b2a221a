@_spi(HostileTesting) import Bus1
import Bus1Linux
import Bus1TestSupport
import Glibc

// What the roles share: output, connecting, looking up, the first honest
// message, events, reclaiming, receiving data.

/// Prints one line and flushes it at once (the test reads lines as they come).
func say(_ line: String) {
    print(line)
    fflush(nil)
}

func fail(_ message: String) -> Never {
    say("FAIL \(message)")
    exit(1)
}

func connect() -> Peer {
    do { return try Peer.connect(options: options) } catch { fail("connect: \(error)") }
}

/// Looks `name` up, waiting up to 20 s for it to be published.
func lookupWhenPublished(_ peer: Peer, _ name: String) -> Handle {
    do { return try peer.lookup(name, timeout: .seconds(20)) } catch { fail("lookup \(name): \(error)") }
}

/// Sends message `seq` of the pattern (message 0: 1 byte) the honest way.
func sendHonestMessage(_ peer: Peer, to target: Handle, seq: Int = 0) {
    do {
        var loan = try peer.loan(Pattern.size(seq), for: target)
        loan.count = Pattern.size(seq)
        fill(&loan, seq: seq)
        try peer.send(loan, to: target, wait: .park)
    } catch { fail("honest send: \(error)") }
}

func printEvents(_ peer: Peer) {
    for event in peer.takeEvents() {
        switch event {
        case .violationDetected(let sender, let violation): say("VIOLATION peer=\(sender) kind=\(violation.rawValue)")
        case .inboundClosed(let sender, let reason): say("INBOUND-CLOSED peer=\(sender) reason=\(reason)")
        case .outboundClosed(let receiver, let reason): say("OUTBOUND-CLOSED peer=\(receiver) reason=\(reason)")
        case .orderingStall(let sender): say("ORDERING-STALL peer=\(sender)")
        case .clockAnomaly(let clock, let issued): say("CLOCK-ANOMALY clock=\(clock) issued=\(issued)")
        }
    }
}

/// Takes completions back until every slice `peer` sent came back (30 s at most).
func waitUntilReclaimed(_ peer: Peer) {
    let reclaimed = waitUntil(timeoutSeconds: 30, pollMicroseconds: 500) {
        do { try peer.reclaimCompleted() } catch { fail("reclaim: \(error)") }
        return peer.currentStatistics.slicesInUse == 0
    }
    if !reclaimed { fail("pool not reclaimed: \(peer.currentStatistics)") }
}

/// Creates a node and publishes it as `name`.
@discardableResult
func publishNode(_ peer: Peer, as name: String) -> Handle {
    do {
        let node = try peer.createNode()
        try peer.publish(node, as: name)
        return node
    } catch { fail("publish \(name): \(error)") }
}

/// Publishes a node as `name=`, prints "READY peer=P", and returns the first data
/// message (within 30 s): how a one-message receiver role starts.
@MainActor
func receiveFirstMessage(_ peer: Peer) -> Message {
    publishNode(peer, as: setting("name"))
    say("READY peer=\(peer.id)")
    do { return try receiveData(peer, timeout: .seconds(30)) } catch { fail("receive: \(error)") }
}

/// The next data message; notifications (destroyed and released nodes) are printed
/// as NOTE lines and skipped.
func receiveData(_ peer: Peer, timeout: Duration) throws(Bus1Error) -> Message {
    while true {
        let message = try peer.receive(timeout: timeout)
        if message.kind == .data { return message }
        say("NOTE kind=\(message.kind) node=\(message.node.id) from=\(message.sender)")
    }
}

/// Fills the payload of `loan` (its first ``Loan/count`` bytes) with `Pattern`'s bytes for `seq`.
func fill(_ loan: inout Loan, seq: Int) {
    let count = loan.count
    loan.withUnsafeMutableBytes { Pattern.fill(UnsafeMutableRawBufferPointer(rebasing: $0[..<count]), seq: seq) }
}
