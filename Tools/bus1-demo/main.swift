// bus1-demo: a producer and a consumer process exchanging zero-copy messages over
// an embedded coordinator; prints messages/s and round-trip latency percentiles.
import ArgumentParser
import Bus1
import Bus1Coordinator
import Bus1Linux
import Glibc
import Histogram
import Logging

@main
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1-demo",
        abstract: "Two processes on one bus: one-way throughput, then ping-pong latency.",
        discussion: """
            Starts an embedded coordinator on a private socket (unless --address names a running bus1d),
            spawns itself as the consumer process, and measures. Build with -c release for real numbers.
            """,
        version: Bus1Version.string)

    /// The most messages or round trips a run may ask for (days of work; beyond it
    /// a typo, and the counters' sums must not overflow).
    static let maximumCount = 1_000_000_000_000
    /// The largest payload (the bus's pool limits it further, with a typed error).
    static let maximumSize = 256 << 20

    @Option(help: "Messages in the throughput phase.")
    var messages: Int = 1_000_000

    @Option(help: "Round trips in the latency phase (after 1,000 warm-up round trips).")
    var roundTrips: Int = 100_000

    @Option(help: "Payload bytes per message.")
    var size: Int = 64

    @Option(help: "Wait mode: busy, park or spin (spin-then-park).")
    var mode: WaitMode = .default

    @Option(help: "Bus ordering of the embedded coordinator: global (causal order across all senders, the default) or fifo.")
    var ordering: BusOrdering?

    @Option(help: "Use the bus at this socket instead of an embedded coordinator.")
    var address: String?

    @Option(help: .hidden)
    var role: String = "producer"

    /// Refuses nonsense at start, before a coordinator or a consumer is started.
    func validate() throws {
        if ordering != nil {
            guard address == nil else { throw ValidationError("--ordering sets the embedded coordinator's; a bus1d at --address has its own") }
        }
        guard (2...Self.maximumSize).contains(size) else {
            throw ValidationError("--size: 2 ... \(Self.maximumSize) bytes (the first and last byte are checked)")
        }
        guard (1...Self.maximumCount).contains(messages), (1...Self.maximumCount).contains(roundTrips) else {
            throw ValidationError("--messages and --round-trips: 1 ... \(Self.maximumCount)")
        }
        if address?.isEmpty == true { throw ValidationError("--address: a socket path, not an empty string") }
        guard ["producer", "consumer"].contains(role), role == "producer" || address != nil else {
            throw ValidationError("--role: producer, or consumer with --address")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        if role == "consumer" { return try consume() }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        var embedded: EmbeddedCoordinator?
        let busAddress: String
        if let address {
            busAddress = address
        } else {
            let bus = try EmbeddedCoordinator.onPrivateSocket(named: "demo") { [ordering] in $0.ordering = ordering ?? .global }
            embedded = bus
            busAddress = bus.address
        }
        defer { embedded?.stop() }
        try produce(address: busAddress, embedded: embedded != nil)
    }

    /// Message kinds, in the first payload byte.
    enum Kind: UInt8 { case data = 0, ping = 1, stop = 2 }

    func connect(_ address: String) throws -> Peer {
        var options = PeerOptions(address: address)
        options.waitMode = mode
        return try Peer.connect(options: options)
    }

    /// Writes the payload once, in place: kind byte first, a marker last. (Plain
    /// parameters: option wrappers cost a metadata lookup per read on a hot path.)
    static func send(_ peer: Peer, _ kind: Kind, to handle: Handle, size: Int, wait: WaitMode) throws {
        var loan = try peer.loan(size, for: handle, wait: wait)
        var bytes = loan.bytes
        for i in 0..<size { bytes[i] = 0x42 }
        bytes[0] = kind.rawValue
        bytes[size - 1] = 0xA5
        try peer.send(loan, to: handle, wait: wait)
    }

    func produce(address: String, embedded: Bool) throws {
        let size = self.size, waitMode = self.mode, messages = self.messages, roundTrips = self.roundTrips
        func send(_ peer: Peer, _ kind: Kind, to handle: Handle) throws {
            try Self.send(peer, kind, to: handle, size: size, wait: waitMode)
        }
        let peer = try connect(address)
        let node = try peer.createNode()
        let myName = "bus1-demo.producer.\(getpid())"
        try peer.publish(node, as: myName)
        let child = try spawnConsumer(address: address, producerName: myName)
        let consumer = try peer.lookup("bus1-demo.consumer.\(child)", timeout: .seconds(20))

        print("Bus1 demo: producer (pid \(getpid())) -> consumer (pid \(child)), \(size)-byte payloads, wait mode \(waitMode), "
              + "ordering \(peer.ordering.rawValue)")
        print("  coordinator: \(embedded ? "embedded" : "bus1d at \(address)"); parking: \(peer.parkMechanism)"
              + (peer.parkFallbackReason.map { " (\($0))" } ?? ""))

        // Throughput: one way; the consumer answers the final message with a ping.
        let start = monotonicNanoseconds()
        for _ in 0..<messages { try send(peer, .data, to: consumer) }
        try send(peer, .ping, to: consumer)
        _ = try peer.receive(mode: waitMode)
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        let rate = Double(messages) / elapsed
        print("  throughput: \(messages) messages in \(fixed(elapsed, 3)) s = \(fixed(rate / 1e6, 2)) M msg/s, "
              + "\(fixed(rate * Double(size) / 1e9, 3)) GB/s of payload")

        // Latency: ping-pong round trips, each written by the sender and read by the receiver.
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        for i in 0..<(1000 + roundTrips) {
            let t0 = monotonicNanoseconds()
            try send(peer, .ping, to: consumer)
            let reply = try peer.receive(mode: waitMode)
            guard reply.payload[0] == Kind.ping.rawValue, reply.payload[size - 1] == 0xA5 else { throw ValidationError("corrupt reply") }
            let t1 = monotonicNanoseconds()
            if i >= 1000 { _ = histogram.record(t1 - t0) }
        }
        func us(_ nanoseconds: UInt64) -> String { fixed(Double(nanoseconds) / 1000, 2) }
        let percentiles = [50.0, 90, 99, 99.9].map { "p\(fixed($0, $0 == 99.9 ? 1 : 0)) \(us(histogram.valueAtPercentile($0)))" }
        print("  round trip (\(roundTrips) samples, µs): min \(us(histogram.min))  " + percentiles.joined(separator: "  ")
              + "  max \(us(histogram.max))")

        try send(peer, .stop, to: consumer)
        var status: Int32 = 0
        waitpid(child, &status, 0)
        try peer.reclaimCompleted()
        let stats = peer.currentStatistics
        print("  consumer \(ExitStatus(waitStatus: status)); producer pool in use after the run: \(stats.poolBytesInUse) bytes, "
              + "parks: \(stats.parks)")
        guard ExitStatus(waitStatus: status) == .exited(0) else { throw ExitCode(1) }
    }

    func spawnConsumer(address: String, producerName: String) throws -> pid_t {
        let arguments: [String] = ["--role", "consumer", "--address", address, "--size", "\(size)", "--mode", mode.argument,
                                   "--messages", "\(messages)", "--round-trips", "\(roundTrips)"]
        return try spawnProcess("/proc/self/exe", arguments)
    }

    /// The consumer: reads the first and last byte of every payload in place,
    /// answers pings, releases everything.
    func consume() throws {
        let size = self.size, waitMode = self.mode
        func send(_ peer: Peer, _ kind: Kind, to handle: Handle) throws {
            try Self.send(peer, kind, to: handle, size: size, wait: waitMode)
        }
        let peer = try connect(address!)
        let node = try peer.createNode()
        try peer.publish(node, as: "bus1-demo.consumer.\(getpid())")
        let producer = try peer.lookup("bus1-demo.producer.\(getppid())", timeout: .seconds(20))
        while true {
            let message = try peer.receive(mode: waitMode)
            guard message.kind == .data else { continue }  // a notification (a node released or destroyed)
            guard message.payload.count == size, message.payload[size - 1] == 0xA5 else { throw ValidationError("corrupt payload") }
            switch Kind(rawValue: message.payload[0]) {
            case .data: continue
            case .ping: try send(peer, .ping, to: producer)
            case .stop: return
            case nil: throw ValidationError("unknown message kind")
            }
        }
    }
}

/// `x` with `digits` decimals (no Foundation here).
func fixed(_ x: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(x) * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(scaled) - whole * Int(scale)
    var fractionText = String(fraction)
    while fractionText.count < digits { fractionText = "0" + fractionText }
    return (x < 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + fractionText : "")
}

/// `--mode` takes the wait modes by their command-line names (`WaitMode.argumentNames`).
extension WaitMode: ExpressibleByArgument {
    public var defaultValueDescription: String { argument }
}
extension BusOrdering: ExpressibleByArgument {}
