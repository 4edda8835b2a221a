import ArgumentParser
import Bus1
import Glibc

/// `bus1ctl subscribe TOPIC`: prints a topic's messages as they come.
struct Subscribe: ParsableCommand, BusCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prints each message of a topic (as text, or hex); hosts the topic if nobody does.",
        discussion: """
            A message is printed as text if it is UTF-8 with no control characters but newline and tab, \
            else as "(hex) " and its bytes in hex, so a publisher cannot drive the terminal. If nobody hosts \
            TOPIC, this process hosts it: what `bus1ctl publish` sends is then relayed to any other subscribers \
            and printed here. Exits 0 after --count messages or on SIGINT/SIGTERM, 1 when the host leaves.
            """)
    @OptionGroup var busOption: BusOptions
    @ParentCommand var root: BusCtl
    @OptionGroup var wait: TimeoutOption
    @Argument(help: "The topic's name.") var topic: String
    @Option(help: "Exit after this many messages (default: run until killed).") var count: Int?
    @Flag(help: "Print one JSON object per message: {sequence, ticket, sender, uid, pid, size, payload or payload_hex}.")
    var json = false

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count: at least 1 message") }
    }

    func run() throws {
        var printed = 0
        try TopicFeed.run(topic, bus: bus, wait: wait, started: { feed in
            writeLine(feed.isHosting ? "subscribed to \(escaped(topic)) (hosting it: nobody else did)" : "subscribed to \(escaped(topic))",
                      to: STDERR_FILENO)
        }) { delivery, payload in
            if delivery.missedBefore > 0 && !json {
                writeLine("bus1ctl: missed \(delivery.missedBefore) message(s) before \(delivery.sequence)", to: STDERR_FILENO)
            }
            writeLine(json ? Self.json(delivery, payload) : Rendered(payload.bytes).line)
            printed += 1
            return count.map { printed < $0 } ?? true
        }
    }

    /// One message as a JSON object on one line.
    static func json(_ delivery: TopicFeed.Delivery, _ payload: Span<UInt8>) -> String {
        let credentials = delivery.credentials
        return JSON.object([
            ("sequence", .number(delivery.sequence)),
            ("ticket", delivery.ticket.map { .number($0) } ?? .null),
            ("sender", .number(delivery.sender)),
            ("uid", credentials.map { .number(UInt64($0.uid)) } ?? .null),
            ("pid", credentials.map { .signed(Int64($0.pid)) } ?? .null),
            ("size", .number(UInt64(payload.count))),
            payloadMember(Rendered(payload.bytes)),
        ]).text
    }
}

extension Span<UInt8> {
    /// A copy of the bytes (for rendering: the text or hex is a copy anyway).
    var bytes: [UInt8] { withUnsafeBufferPointer { Array($0) } }
}
