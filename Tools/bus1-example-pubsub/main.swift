// bus1-example-pubsub: a producer/consumer service on a Bus1 topic, to copy from.
//
// One producer hosts the topic and publishes frames, zero-copy (each frame is
// written once, in the producer's pool, and read in place by every consumer);
// any number of consumers subscribe. Run a bus first (`bus1d &`), then:
//
//   bus1-example-pubsub producer --topic frames --size 1024 --count 100000 --wait-for 2
//   bus1-example-pubsub consumer --topic frames                # fast
//   bus1-example-pubsub consumer --topic frames --delay-us 50  # slow
//
// With the default policy (`--when-full block`) the slow consumer sets the pace:
// the producer's report shows it waiting for room ("waits"). With `skip` the
// producer never waits: each consumer misses only what its ring had no room for
// (the slow one reports how many; give the fast one `--ring 8192` and it misses
// nothing); with `disconnect` a consumer whose ring is full is dropped. Each side prints one report per second
// and a last one at the end.
import ArgumentParser
import Bus1
import Glibc

@main
struct PubSubExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1-example-pubsub",
        abstract: "A producer/consumer service on a Bus1 topic.",
        subcommands: [Producer.self, Consumer.self])
}

/// Options both sides take.
struct Common: ParsableArguments {
    @Option(help: "The topic's name.") var topic = "frames"
    @Option(help: "Bus socket path (default: $BUS1_ADDRESS, then the user bus).") var address: String?

    var peerOptions: PeerOptions { PeerOptions(address: address) }
}

/// Prints `line` at most once a second (and always when `force`).
struct Reporter {
    private var last = ContinuousClock.now
    mutating func tick(force: Bool = false, _ line: () -> String) {
        guard force || ContinuousClock.now - last >= .seconds(1) else { return }
        last = ContinuousClock.now
        print(line())
        fflush(nil)
    }
}

struct Producer: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Host the topic and publish numbered frames.")
    @OptionGroup var common: Common
    @Option(help: "Bytes per frame (at least 8: the frame number).") var size = 1024
    @Option(help: "Frames to publish.") var count = 100_000
    @Option(help: "Subscribers to wait for before publishing.") var waitFor = 1
    @Option(help: "What to do about a consumer whose ring is full: block, skip or disconnect.") var whenFull = "block"
    @Option(help: "Frames kept for consumers that subscribe late.") var history = 0

    func validate() throws {
        guard size >= 8 else { throw ValidationError("--size: at least 8") }
        guard ["block", "skip", "disconnect"].contains(whenFull) else { throw ValidationError("--when-full: block, skip or disconnect") }
    }

    func run() throws {
        let policy: Topic.FullRingPolicy = whenFull == "skip" ? .skip : whenFull == "disconnect" ? .disconnect : .block
        let topic = try Topic(hosting: common.topic, connecting: common.peerOptions, options: .init(whenFull: policy, history: history))
        print("hosting \(common.topic); waiting for \(waitFor) subscriber(s)")
        fflush(nil)
        try topic.waitForSubscribers(waitFor, timeout: .seconds(3600))
        var report = Reporter()
        for frame in 1...count {
            var loan = try topic.loan(size, wait: .park)        // a slice of this peer's pool
            loan.storeBytes(of: UInt64(frame), as: UInt64.self)   // written in place: the only write
            try topic.publish(loan)                              // every subscriber reads this same slice
            report.tick(force: frame == count) { line(topic, frame) }
        }
        try topic.flush()               // wait until every consumer read everything: room for the last frame
        try topic.publish(copying: [])  // an empty frame tells the consumers it is over (never skipped: rings are empty)
        try topic.flush()               // leaving before they read it would take it with it
    }

    func line(_ topic: Topic, _ frame: Int) -> String {
        let s = topic.statistics
        return "published \(frame)  subscribers \(topic.subscriberCount)  delivered \(s.delivered)  skipped \(s.skipped)"
            + "  dropped \(s.dropped)  waits \(s.waits)"
    }
}

struct Consumer: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Subscribe and consume frames.")
    @OptionGroup var common: Common
    @Option(help: "Microseconds of work per frame (a slow consumer).") var delayUs = 0
    @Option(help: "Frames this consumer's ring holds (a power of two; 0: the bus's default, 256).") var ring = 0

    func run() throws {
        var options = common.peerOptions
        options.ringCapacity = ring
        let subscriber = try TopicSubscriber(topic: common.topic, connecting: options, timeout: .seconds(60))
        print("subscribed to \(common.topic)")
        fflush(nil)
        var received = 0, report = Reporter()
        while true {
            let frame = try subscriber.receive()
            if frame.payload.isEmpty { break }
            let number = frame.payload.bytes.unsafeLoadUnaligned(as: UInt64.self)  // read in the producer's pool
            guard number == frame.sequence else { throw ValidationError("frame \(frame.sequence) carries \(number)") }
            received += 1
            if delayUs > 0 { usleep(UInt32(delayUs)) }
            report.tick { "received \(received)  missed \(subscriber.missed)" }
        }
        report.tick(force: true) { "done: received \(received)  missed \(subscriber.missed)" }
    }
}
