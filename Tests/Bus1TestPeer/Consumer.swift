import Bus1
import Bus1Linux
import Glibc

/// The `consumer` role: `name= count= [mode=] [park=] [stall-ms=] [jitter=] [hold=] [linger=1]`.
/// Publishes a node as `name`, prints "READY peer=P park=M", receives `count`
/// messages and checks every byte and the per-sender order (the ``Pattern``),
/// prints "MAXGAP ms=G stalls=S" (the longest wait between two messages of one
/// sender) and "OK received=N bytes=B cross-sender-inversions=I". `jitter=SEED`
/// pauses at random points; `hold=K` keeps up to K messages unreleased and lets
/// a random one go (from the jitter seed) whenever it holds more, so completions
/// come back out of order; `linger=1` stays alive afterwards until killed.
///
/// The receiving half of most integration tests: `exchangeCheckedMessages`
/// (MessagingTests, HostileTests, DaemonTests, AdmissionTests), StressTests,
/// OrderingTests' stalled sender, SharedWordAttackTests, SharedPageTests, KillTests.
@MainActor
func runConsumer() {
    let peer = connect()
    let count = intSetting("count")
    let node = publishNode(peer, as: setting("name"))
    say("READY peer=\(peer.id) park=\(peer.parkMechanism)")
    var bytes = 0
    var lastTicket: UInt64 = 0
    var lastTicketFrom: [UInt64: UInt64] = [:]
    var inversions = 0
    var nextSeq: [UInt64: Int] = [:]  // per sender: messages are numbered from 0 by each producer
    var jitter = settings["jitter"].flatMap { UInt64($0) }.map { JitterSource(seed: $0) }
    var lastArrival: [UInt64: UInt64] = [:]  // per sender: when its previous message arrived
    var maxGap: UInt64 = 0  // the longest wait between two messages of one sender
    var held = HeldMessages(limit: intSetting("hold", 0), seed: settings["jitter"].flatMap { UInt64($0) } ?? 1)
    for _ in 0..<count {
        jitter?.maybePause()
        let message: Message
        do { message = try receiveData(peer, timeout: .seconds(60)) } catch { fail("receive: \(error)") }
        let now = monotonicNanoseconds()
        if let previous = lastArrival[message.sender] { maxGap = max(maxGap, now - previous) }
        lastArrival[message.sender] = now
        printEvents(peer)
        // Per-channel FIFO is the guarantee here (the seq check below); tickets never
        // fall per sender (equal only once a sender's tickets saturate at UInt64.max
        // after a clock jump); a lower ticket after a higher one from another sender
        // is counted (global order is the ordering issue's work).
        guard message.ticket >= lastTicketFrom[message.sender, default: 1] else {
            fail("ticket order from peer \(message.sender): \(message.ticket) after \(lastTicketFrom[message.sender]!)")
        }
        lastTicketFrom[message.sender] = message.ticket
        if message.ticket < lastTicket { inversions += 1 }
        lastTicket = max(lastTicket, message.ticket)
        guard message.node == node else { fail("message for \(message.node), expected \(node)") }
        let seq = nextSeq[message.sender, default: 0]
        guard message.withUnsafePayload({ Pattern.check($0, seq: seq) }) else {
            let claimed = message.withUnsafePayload { Pattern.claimedSeq($0) } ?? -1
            fail("payload of seq \(seq) from peer \(message.sender) is wrong (size \(message.withUnsafePayload { $0.count }), claims \(claimed))")
        }
        nextSeq[message.sender] = seq + 1
        bytes += message.withUnsafePayload { $0.count }  // no span: the message is consumed below
        held.keep(message)
    }
    held.releaseAll()
    printEvents(peer)
    say("MAXGAP ms=\(maxGap / 1_000_000) stalls=\(peer.currentStatistics.orderingStalls)")
    say("OK received=\(count) bytes=\(bytes) cross-sender-inversions=\(inversions)")
    if settings["linger"] == "1" {
        while true { pause() }  // stays until killed (for kill tests)
    }
}

/// Messages a consumer keeps unreleased (`hold=K`), let go in random order.
struct HeldMessages {
    /// A message in a box: `Message` is noncopyable, and an array needs copies.
    final class Box {
        var message: Message?
        init(_ message: consuming Message) { self.message = consume message }
    }
    let limit: Int
    var random: JitterSource
    var boxes: [Box] = []

    init(limit: Int, seed: UInt64) {
        self.limit = limit
        random = JitterSource(seed: seed &+ 0x5EED)
    }

    /// Keeps `message` (with `limit` 0, drops it at once); over the limit, releases
    /// a random held one.
    mutating func keep(_ message: consuming Message) {
        guard limit > 0 else { return }
        boxes.append(Box(message))
        if boxes.count > limit { boxes.remove(at: Int(random.next() % UInt64(boxes.count))).message = nil }
    }

    mutating func releaseAll() { boxes.removeAll() }
}
