import Bus1
import Bus1Linux
import Glibc
import Histogram

/// The pattern rows (`bus1-bench patterns`): a request/reply call through
/// ``ServiceClient`` and ``Service``, and a topic publish to N subscribers through
/// ``Topic`` and ``TopicSubscriber``, measured as the plain rows they build on
/// (``Bus1Runs/latency(address:mode:size:iterations:warmup:cpus:)`` and
/// ``Bus1Runs/fanout(address:mode:size:receivers:iterations:warmup:cpus:)``) are,
/// so the two can be compared within one invocation. The children are this
/// executable again (`__child bus1-service`, `__child bus1-subscriber`).
enum PatternRuns {
    /// Sequential calls: the client (in a task, as ``ServiceClient`` needs) calls
    /// with `size` bytes, the service writes the first and last byte of a
    /// `size`-byte reply in place, the client reads the reply's last byte.
    static func call(address: String, mode: Bus1Mode, size: Int, iterations: Int, warmup: Int, cpus: [Int]) throws -> Histogram<UInt64> {
        let name = "bench.service.\(getpid()).\(monotonicNanoseconds())"
        let child = try Child.spawn("bus1-service", ["address": address, "mode": mode.name, "size": "\(size)", "name": name],
                                    cpu: cpus.count > 1 ? cpus[1] : nil)
        let histogram = try blockOn { () async throws -> Histogram<UInt64> in
            let client = try await ServiceClient(service: name, on: try Peer.connect(options: mode.options(address, poolSize: poolSize(for: size))),
                                                 timeout: .seconds(20))
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            let request = [UInt8](repeating: 1, count: size)
            for i in 0..<(warmup + iterations) {
                let t0 = monotonicNanoseconds()
                let last = try await client.call(request, timeout: .seconds(60)) { reply in reply.payload.isEmpty ? 0 : reply.payload[reply.payload.count - 1] }
                guard size == 0 || last == 1 else { throw BenchError("corrupt reply") }
                if i >= warmup { _ = histogram.record(monotonicNanoseconds() - t0) }
            }
            _ = try await client.call([], timeout: .seconds(60))  // an empty call stops the service
            return histogram
        }
        try Child.reap(child, "bus1-service")
        return histogram
    }

    /// The service: answers each call with `size` bytes written in place (first
    /// and last byte copied from the request's); an empty call is answered and ends it.
    static func service(_ s: [String: String]) throws {
        let size = Int(s["size"]!)!
        let mode = Bus1Mode(name: s["mode"]!)
        let service = try Service(name: s["name"]!, connecting: mode.options(s["address"]!, poolSize: poolSize(for: size)))
        while true {
            let request = try service.nextRequest(timeout: .seconds(120))
            let count = request.payload.count
            var reply = try service.replyLoan(count, for: request)
            if count > 0 {
                reply.storeBytes(of: request.payload[0], as: UInt8.self)
                reply.storeBytes(of: request.payload[count - 1], toByteOffset: count - 1, as: UInt8.self)
            }
            try service.reply(to: request, with: reply)
            if count == 0 {
                // Answered; stay until the client took the reply (leaving would take it along).
                try service.peer.reclaimCompleted()
                while service.peer.currentStatistics.slicesInUse > 0 { usleep(100); try service.peer.reclaimCompleted() }
                return
            }
        }
    }

    /// A topic this process hosts, published to `subscribers` processes; each
    /// stamps CLOCK_MONOTONIC when it has the message and acknowledges on a second
    /// peer of this process. Latency: publish → the last stamp; also publishes/s.
    static func topic(address: String, mode: Bus1Mode, size: Int, subscribers: Int, iterations: Int, warmup: Int,
                      cpus: [Int]) throws -> (Histogram<UInt64>, Double) {
        let options = mode.options(address, poolSize: poolSize(for: size))
        let name = "bench.topic.\(getpid()).\(monotonicNanoseconds())"
        let topic = try Topic(hosting: name, connecting: options)
        let acks = try Peer.connect(options: options)
        try acks.publish(try acks.createNode(), as: name + ".acks")
        var children: [pid_t] = []
        for k in 0..<subscribers {
            children.append(try Child.spawn("bus1-subscriber", ["address": address, "mode": mode.name, "topic": name],
                                            cpu: cpus.isEmpty ? nil : cpus[(k + 1) % cpus.count]))
        }
        try topic.waitForSubscribers(subscribers, timeout: .seconds(30))
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var start: UInt64 = 0
        for i in 0..<(warmup + iterations) {
            if i == warmup { start = monotonicNanoseconds() }
            var loan = try topic.loan(max(size, 1), wait: mode.waitMode)
            loan.count = size
            if size > 0 { loan.storeBytes(of: UInt8(1), as: UInt8.self); loan.storeBytes(of: UInt8(1), toByteOffset: size - 1, as: UInt8.self) }
            let t0 = monotonicNanoseconds()
            try topic.publish(loan)
            var last: UInt64 = 0
            for _ in 0..<subscribers {
                let ack = try acks.receive(mode: mode.waitMode, timeout: .seconds(60))
                guard ack.kind == .data else { throw BenchError("a subscriber left") }
                last = max(last, ack.payload.bytes.unsafeLoad(as: UInt64.self))
            }
            if i >= warmup { _ = histogram.record(last &- t0) }
        }
        let rate = Double(iterations) / (Double(monotonicNanoseconds() - start) / 1e9)
        try topic.publish(copying: [])  // an empty message stops the subscribers
        for child in children { try Child.reap(child, "bus1-subscriber") }
        return (histogram, rate)
    }

    /// A subscriber: stamps each message's arrival and sends the stamp to the
    /// host's ack node; an empty message ends it.
    static func subscriber(_ s: [String: String]) throws {
        let mode = Bus1Mode(name: s["mode"]!)
        let options = mode.options(s["address"]!, poolSize: poolSize(for: 64))
        let subscription = try TopicSubscriber(topic: s["topic"]!, connecting: options, timeout: .seconds(20))
        let acks = try Peer.connect(options: options)
        let parent = try lookup(acks, s["topic"]! + ".acks")
        while true {
            let message = try subscription.receive(timeout: .seconds(120))
            let arrived = monotonicNanoseconds()
            if message.payload.isEmpty { break }
            _ = message.payload[0] &+ message.payload[message.payload.count - 1]
            var loan = try acks.loan(8, wait: mode.waitMode)
            loan.count = 8
            loan.storeBytes(of: arrived, as: UInt64.self)
            try acks.send(loan, to: parent, wait: mode.waitMode)
        }
        // Stay until the host took the last acknowledgement (leaving would take it along).
        while acks.currentStatistics.slicesInUse > 0 { usleep(100); try acks.reclaimCompleted() }
    }

    /// Per mode and size: the plain round trip beside the call, and per subscriber
    /// count the plain multicast beside the topic publish.
    static func rows(_ common: CommonOptions, address: String, cpus: [Int], subscribers: [Int]) throws -> [Row] {
        var rows: [Row] = []
        for mode in common.runnableModes {
            for size in common.sizeList {
                let n = scaled(common.iterations, size: size)
                let warmup = min(common.warmup, n)
                progress("patterns \(mode.name) \(sizeText(size)): round trip")
                rows.append(.latency("latency", "bus1", mode.name, size: size,
                                     histogram: try Bus1Runs.latency(address: address, mode: mode, size: size, iterations: n, warmup: warmup, cpus: cpus)))
                progress("patterns \(mode.name) \(sizeText(size)): call")
                rows.append(.latency("latency", "bus1-call", mode.name, size: size,
                                     histogram: try call(address: address, mode: mode, size: size, iterations: n, warmup: warmup, cpus: cpus)))
                for count in subscribers {
                    let fanoutN = max(10, n / count)
                    progress("patterns \(mode.name) \(sizeText(size)): multicast ×\(count)")
                    let (plain, plainRate) = try Bus1Runs.fanout(address: address, mode: mode, size: size, receivers: count,
                                                                 iterations: fanoutN, warmup: min(warmup, fanoutN), cpus: cpus)
                    progress("patterns \(mode.name) \(sizeText(size)): topic ×\(count)")
                    let (published, topicRate) = try topic(address: address, mode: mode, size: size, subscribers: count,
                                                           iterations: fanoutN, warmup: min(warmup, fanoutN), cpus: cpus)
                    for (mechanism, histogram, rate) in [("bus1", plain, plainRate), ("bus1-topic", published, topicRate)] {
                        var row = Row.latency("fanout", mechanism, mode.name, size: size, fanout: count, histogram: histogram)
                        row.messagesPerSecond = rate
                        row.bytesPerSecond = rate * Double(size)
                        rows.append(row)
                    }
                }
            }
        }
        for i in rows.indices where rows[i].mechanism != "bus1" {
            let plain = rows.first { $0.mechanism == "bus1" && $0.benchmark == rows[i].benchmark && $0.mode == rows[i].mode
                && $0.size == rows[i].size && $0.fanout == rows[i].fanout }
            if let plain {
                rows[i].baseline = "bus1"
                rows[i].ratio = ratio(rows[i], to: plain)
            }
        }
        return rows
    }
}
