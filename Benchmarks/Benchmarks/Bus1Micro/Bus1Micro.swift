// Micro-benchmarks: ring enqueue/dequeue, pool allocate/free, the ticket merge,
// loan → send → receive → release without a wake-up, and control operations.
// Each reports wall clock and mallocs: the message paths must allocate nothing.
import Benchmark
import Bus1
import Bus1Coordinator
import Bus1Core
import Bus1Linux
import CBus1Wire
import Logging

let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

/// A peer set on an embedded coordinator, in this process (no wake-ups happen:
/// nobody parks).
final class Bus {
    let embedded: EmbeddedCoordinator
    init() throws {
        embedded = try EmbeddedCoordinator.onPrivateSocket(named: "micro", logger: Logger(label: "micro", factory: { _ in SwiftLogNoOpLogHandler() }))
    }
    func peer() throws -> Peer {
        var options = PeerOptions(address: embedded.address)
        options.waitMode = .busyPoll
        return try Peer.connect(options: options)
    }
}

let benchmarks: @Sendable () -> Void = {
    // 1,000 operations per sample: the tables read per thousand (`K` scaled).
    Benchmark.defaultConfiguration = .init(metrics: metrics, scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 100_000)

    Benchmark("Ring: submit, peek, advance, complete, drain") { benchmark in
        let capacity = 256
        let geometry = ChannelGeometry(capacity: capacity)
        let fd = try MemFD.create(name: "micro-ring", size: geometry.size)
        let setup = try Mapping(fd, count: geometry.size, writable: true)
        geometry.initialize(setup, channel: 1, sender: 1, receiver: 2)
        var producer = SubmissionProducer(try ChannelMemory(try Mapping(fd, count: geometry.size, writable: true), channel: 1, capacity: capacity))
        var consumer = SubmissionConsumer(try ChannelMemory(try Mapping(fd, count: geometry.size, writable: true), channel: 1, capacity: capacity))
        var descriptor = bus1_descriptor()
        descriptor.node = 1
        descriptor.offset = 4096
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            descriptor.ticket = UInt64(i) + 1
            producer.submit(descriptor)
            let d = try consumer.peek()!
            consumer.advance(ticket: d.ticket)
            try consumer.complete(offset: d.offset)
            _ = try producer.drainCompletions { _ in true }
        }
        benchmark.stopMeasurement()  // not the unmapping
    }

    Benchmark("Pool: allocate and free 64 B") { benchmark in
        var pool = PoolAllocator(dataOffset: 4096, dataSize: 64 << 20)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let offset = pool.allocate(64)!
            pool.freeLoan(offset)
        }
        benchmark.stopMeasurement()  // not the teardown of the allocator's tables
    }

    Benchmark("Message: loan, send, receive, release (no wake-up), 64 B") { benchmark in
        let bus = try Bus()
        let receiver = try bus.peer(), sender = try bus.peer()
        try receiver.publish(try receiver.createNode(), as: "micro.rx")
        let handle = try sender.lookup("micro.rx")
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var loan = try sender.loan(64)
            loan.count = 64
            loan.storeBytes(of: UInt8(1), as: UInt8.self)
            try sender.send(loan, to: handle)
            let message = try receiver.tryReceive()!
            blackHole(firstByte(of: message))
        }
        benchmark.stopMeasurement()
        bus.embedded.stop()
    }

    Benchmark("Merge: one message from each of 4 senders, in ticket order") { benchmark in
        let bus = try Bus()
        let receiver = try bus.peer()
        try receiver.publish(try receiver.createNode(), as: "micro.merge")
        let senders = try (0..<4).map { _ in try bus.peer() }
        let handles = try senders.map { try $0.lookup("micro.merge") }
        _ = try receiver.tryReceive()  // learn of the channels
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for (sender, handle) in zip(senders, handles) {
                var loan = try sender.loan(16)
                loan.count = 16
                try sender.send(loan, to: handle)
            }
            for _ in 0..<4 { blackHole(try receiver.tryReceive()!.ticket) }
        }
        benchmark.stopMeasurement()
        bus.embedded.stop()
    }

    Benchmark("Control: create a node", configuration: .init(metrics: metrics, scalingFactor: .one, maxIterations: 20_000)) { benchmark in
        let bus = try Bus()
        let peer = try bus.peer()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try peer.createNode()) }
        benchmark.stopMeasurement()
        bus.embedded.stop()
    }

    Benchmark("Control: name lookup (existing handle)", configuration: .init(metrics: metrics, scalingFactor: .one, maxIterations: 20_000)) { benchmark in
        let bus = try Bus()
        let owner = try bus.peer(), client = try bus.peer()
        try owner.publish(try owner.createNode(), as: "micro.name")
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try client.lookup("micro.name")) }
        benchmark.stopMeasurement()
        bus.embedded.stop()
    }
}

/// The payload's first byte, read through a borrowed message. Swift 6.3.1 puts a
/// `let` message whose `payload` span is read in the same function into a heap
/// box (one 88-byte allocation per message in this package); read through a
/// `borrowing` parameter or `withUnsafePayload`, nothing is allocated.
@inline(never)
func firstByte(of message: borrowing Message) -> UInt8 { message.payload[0] }
