import Bus1
import Glibc

/// The `churn` role: opens and closes `count` channels and shows the mappings do
/// not pile up. Two peers in this process: a service publishes a node under
/// "churn"; a client looks it up (a new channel, mapped), sends one message the
/// service receives, then the service resets (its node goes, its inbound channel
/// closes) and the client sees the node destroyed and forgets the handle. After
/// `warmup` rounds (pools and tables at their working size) it counts the
/// process's mappings, and again after the rest. Prints
/// "CHURN channels=N mapsBefore=B mapsAfter=A" (driven by ChannelChurnTests).
@MainActor
func runChannelChurn() {
    let client = connect(), service = connect()
    let count = intSetting("count"), warmup = intSetting("warmup", 20)
    var mapsBefore = 0
    let payload = Array("churn".utf8)
    for round in 0..<count {
        if round == warmup { mapsBefore = mappingCount() }
        do {
            try service.publish(try service.createNode(), as: "churn")
            let handle = try client.lookup("churn")
            try payload.withUnsafeBytes { try client.send(copying: $0, to: handle) }  // untyped: see PLATFORM-NOTES
            let message = try service.receive(timeout: .seconds(10))
            guard message.kind == .data, message.copyPayload() == payload else { fail("round \(round): wrong message") }
            _ = consume message
            try service.reset()
            let note = try client.receive(timeout: .seconds(10))
            guard note.kind == .nodeDestroyed, note.node == handle else { fail("round \(round): expected the node destroyed, got \(note.kind)") }
            try client.release(handle)
        } catch {
            fail("round \(round): \(error)")
        }
    }
    say("CHURN channels=\(count) mapsBefore=\(mapsBefore) mapsAfter=\(mappingCount())")
}

/// Lines in /proc/self/maps: one per mapping of this process.
private func mappingCount() -> Int {
    guard let file = fopen("/proc/self/maps", "r") else { fail("open /proc/self/maps") }
    defer { fclose(file) }
    var lines = 0
    while true {
        let c = getc(file)
        if c == EOF { return lines }
        if c == 10 { lines += 1 }
    }
}
