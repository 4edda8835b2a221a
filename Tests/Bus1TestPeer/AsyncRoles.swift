import Bus1
import Bus1TestSupport
import Glibc

// The async roles: peers owned by the main actor, driven with the async API. They
// run from main.swift's top-level `await`, so every `await` here suspends the main
// actor's task, never a thread.

/// The `asyncconsumer` role: `name= count= delay-us=`. Publishes `name`, prints
/// "READY peer=P", and receives `count` messages with `forEachMessage`, spending
/// `delay-us` µs on each (`Task.sleep`: a slow consumer that blocks no thread).
/// Each payload must carry its sequence number (UInt64 at offset 0) in order.
/// Prints "OK received=N rss-start=K rss-end=K parks=P" (anonymous RSS in KiB:
/// heap and stacks, not the pools; sampled after a tenth of the messages and at the end).
///
/// Driven by AsyncTests "A slow async consumer throttles an async producer".
@MainActor
func runAsyncConsumer() async {
    let peer = connect()
    publishNode(peer, as: setting("name"))
    say("READY peer=\(peer.id)")
    let count = intSetting("count"), delay = intSetting("delay-us")
    struct Done: Error {}
    var received = 0, rssStart = 0
    do {
        try await peer.forEachMessage { message in
            guard message.kind == .data else { return }
            let seq = message.payload.bytes.unsafeLoad(as: UInt64.self)
            guard seq == UInt64(received) else { fail("message \(seq) arrived as number \(received)") }
            received += 1
            if received == count / 10 { rssStart = residentKiB(field: "RssAnon") }
            try await Task.sleep(for: .microseconds(delay))
            if received == count { throw Done() }
        }
    } catch is Done {
    } catch {
        fail("receive: \(error)")
    }
    say("OK received=\(received) rss-start=\(rssStart) rss-end=\(residentKiB(field: "RssAnon")) parks=\(peer.currentStatistics.parks)")
}

/// The `asyncproducer` role: `name= count= size=`. Looks `name` up (awaiting its
/// publication), then sends `count` messages of `size` bytes carrying their
/// sequence number, each loaned and sent with the async API (awaiting credit when
/// the consumer's ring is full), and waits until the consumer released them all.
/// Prints "OK sent=N credit-waits=W rss-start=K rss-end=K slices-in-use=S".
@MainActor
func runAsyncProducer() async {
    let peer = connect()
    let count = intSetting("count"), size = max(8, intSetting("size", 64))
    var rssStart = 0
    do {
        let target = try await peer.lookup(setting("name"), timeout: .seconds(20))
        for seq in 0..<count {
            var loan = try await peer.loan(size, for: target)
            loan.storeBytes(of: UInt64(seq), as: UInt64.self)
            try await peer.send(loan, to: target)
            if seq == count / 10 { rssStart = residentKiB(field: "RssAnon") }
        }
        // Stay until the consumer released every message: a sender that leaves
        // closes its channel, and what the receiver has not taken yet goes with it.
        let deadline = ContinuousClock.now + .seconds(120)
        while peer.currentStatistics.slicesInUse > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
    } catch {
        fail("send: \(error)")
    }
    let statistics = peer.currentStatistics
    say("OK sent=\(statistics.messagesSent) credit-waits=\(statistics.creditWaits) rss-start=\(rssStart) rss-end=\(residentKiB(field: "RssAnon")) slices-in-use=\(statistics.slicesInUse)")
}

/// The `asynccancel` role: `trials=`. Two peers in this process. `trials` times: a
/// task of the main actor awaits a message that never comes (parked, on the
/// reactor); after 20 ms it is cancelled, and the time from `cancel()` until the
/// task has finished is measured. Then a message is sent, and the same peer's next
/// receive must return it. Prints "OK cancel-us=A,B,... errors=E delivered=TEXT",
/// where E counts the trials that ended with anything but `CancellationError`.
///
/// Driven by AsyncTests "A cancelled receive returns promptly".
@MainActor
func runAsyncCancel() async {
    let receiver = connect(), sender = connect()
    publishNode(receiver, as: "cancel")
    let target = lookupWhenPublished(sender, "cancel")
    var microseconds: [Int] = [], errors = 0
    for _ in 0..<intSetting("trials", 5) {
        let waiting = Task { @MainActor () -> (any Error)? in
            do {
                _ = try await receiver.receive(mode: .park)
                return nil
            } catch {
                return error
            }
        }
        do { try await Task.sleep(for: .milliseconds(20)) } catch { fail("sleep: \(error)") }
        let cancelled = ContinuousClock.now
        waiting.cancel()
        let outcome = await waiting.value
        let elapsed = ContinuousClock.now - cancelled
        microseconds.append(Int(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
        if !(outcome is CancellationError) { errors += 1 }
    }
    do {
        try sender.send(copying: Array("after".utf8), to: target)
        let message = try await receiver.receive(timeout: .seconds(10))
        say("OK cancel-us=\(microseconds.map(String.init).joined(separator: ",")) errors=\(errors) delivered=\(String(decoding: message.copyPayload(), as: UTF8.self)) parks=\(receiver.currentStatistics.parks)")
    } catch {
        fail("after cancellation: \(error)")
    }
}
