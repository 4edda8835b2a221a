import Bus1
import Bus1Linux
import Foundation
import Glibc
import Histogram

/// A Bus1 wait configuration: a wait mode plus the parking mechanism.
struct Bus1Mode: Hashable {
    let name: String
    /// "busy", "spin", or "park" (with the mechanism after the dash). Stored, not
    /// computed: the measured loops read it per message.
    let waitMode: WaitMode

    init(name: String) {
        self.name = name
        waitMode = WaitMode(argument: String(name.prefix { $0 != "-" })) ?? .park
    }

    /// The default `--modes`.
    static let all = ["busy", "spin", "park-io_uring", "park-futex"]
    /// Every mode `--modes` takes: also "park" (the automatic backend).
    static let names = ["busy", "spin", "park", "park-io_uring", "park-futex"]

    var parkBackend: ParkBackend {
        switch name {
        case "park-io_uring": .ioUring
        case "park-futex": .futex
        default: .automatic
        }
    }

    /// Why this mode cannot run here, if it cannot.
    var unavailableReason: String? {
        name == "park-io_uring" ? IOURing.futexUnsupportedReason() : nil
    }

    func options(_ address: String, poolSize: Int) -> PeerOptions {
        var options = PeerOptions(address: address)
        options.waitMode = waitMode
        options.parkBackend = parkBackend
        options.poolSize = poolSize
        return options
    }
}

/// Pool big enough for the largest payload several times over.
func poolSize(for size: Int) -> Int { 4096 + max(64 << 20, 1 << (Int.bitWidth - (4 * max(size, 1) - 1).leadingZeroBitCount)) }

/// Looks `name` up, waiting up to 20 s for it to be published.
func lookup(_ peer: Peer, _ name: String) throws -> Handle {
    try peer.lookup(name, timeout: .seconds(20))
}

/// Loans `size` bytes and writes the first and last byte (the payload is written
/// once, in place).
func sendTouched(_ peer: Peer, _ size: Int, _ marker: UInt8, to handle: Handle, mode: WaitMode) throws {
    var loan = try peer.loan(size, wait: mode)
    loan.count = size
    if size > 0 {
        loan.storeBytes(of: marker, as: UInt8.self)
        loan.storeBytes(of: marker, toByteOffset: size - 1, as: UInt8.self)
    }
    try peer.send(loan, to: handle, wait: mode)
}

enum Bus1Runs {
    /// Round trips: we send `size` bytes, the echo process reads the first and last
    /// byte and answers with `size` bytes of its own, which we read.
    static func latency(address: String, mode: Bus1Mode, size: Int, iterations: Int, warmup: Int, cpus: [Int]) throws -> Histogram<UInt64> {
        let peer = try Peer.connect(options: mode.options(address, poolSize: poolSize(for: size)))
        let node = try peer.createNode()
        try peer.publish(node, as: "bench.ping.\(getpid()).\(peer.id)")
        let child = try Child.spawn("bus1-echo", ["address": address, "mode": mode.name, "size": "\(size)",
                                                  "parent": "bench.ping.\(getpid()).\(peer.id)"], cpu: cpus.count > 1 ? cpus[1] : nil)
        let echo = try lookup(peer, "bench.echo.\(child)")
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        for i in 0..<(warmup + iterations) {
            let t0 = monotonicNanoseconds()
            try sendTouched(peer, size, UInt8(truncatingIfNeeded: i | 1), to: echo, mode: mode.waitMode)
            let reply = try peer.receive(mode: mode.waitMode, timeout: .seconds(60))
            guard reply.payload.count == size, size == 0 || reply.payload[size - 1] == UInt8(truncatingIfNeeded: i | 1) else {
                throw BenchError("corrupt echo")
            }
            if i >= warmup { _ = histogram.record(monotonicNanoseconds() - t0) }
        }
        try sendTouched(peer, 0, 0, to: echo, mode: mode.waitMode)  // a zero-length message stops the echo
        try Child.reap(child, "bus1-echo")
        return histogram
    }

    static func echo(_ s: [String: String]) throws {
        let size = Int(s["size"]!)!
        let mode = Bus1Mode(name: s["mode"]!)
        let peer = try Peer.connect(options: mode.options(s["address"]!, poolSize: poolSize(for: size)))
        try peer.publish(try peer.createNode(), as: "bench.echo.\(getpid())")
        let parent = try lookup(peer, s["parent"]!)
        while true {
            let message = try peer.receive(mode: mode.waitMode, timeout: .seconds(120))
            guard message.kind == .data else { continue }  // a notification (a node released or destroyed)
            if message.payload.isEmpty { return }
            let marker = message.payload[size - 1] & message.payload[0]  // read first and last byte in place
            try sendTouched(peer, size, marker, to: parent, mode: mode.waitMode)
        }
    }

    /// One way: `messages` messages (in batches of `batch` if given), timed until
    /// the sink acknowledges the last one.
    static func throughput(address: String, mode: Bus1Mode, size: Int, messages: Int, batch: Int?, cpus: [Int]) throws -> Double {
        let peer = try Peer.connect(options: mode.options(address, poolSize: poolSize(for: size * (batch ?? 1))))
        try peer.publish(try peer.createNode(), as: "bench.source.\(getpid()).\(peer.id)")
        let child = try Child.spawn("bus1-sink", ["address": address, "mode": mode.name, "size": "\(size)", "count": "\(messages)",
                                                  "parent": "bench.source.\(getpid()).\(peer.id)"], cpu: cpus.count > 1 ? cpus[1] : nil)
        let sink = try lookup(peer, "bench.sink.\(child)")
        let start = monotonicNanoseconds()
        if let batch {
            var sent = 0
            while sent < messages {
                let n = min(batch, messages - sent)
                try peer.sendBatch(to: sink, count: n, sliceSize: size, wait: mode.waitMode) { index, slice in
                    if size > 0 {
                        slice.storeBytes(of: UInt8(truncatingIfNeeded: index), as: UInt8.self)
                        slice.storeBytes(of: UInt8(truncatingIfNeeded: index), toByteOffset: size - 1, as: UInt8.self)
                    }
                    return size
                }
                sent += n
            }
        } else {
            for i in 0..<messages { try sendTouched(peer, size, UInt8(truncatingIfNeeded: i), to: sink, mode: mode.waitMode) }
        }
        _ = try peer.receive(mode: mode.waitMode, timeout: .seconds(120))  // the sink's acknowledgement
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        try sendTouched(peer, 0, 0, to: sink, mode: mode.waitMode)  // lets the sink exit (its ack has been read)
        try Child.reap(child, "bus1-sink")
        return Double(messages) / seconds
    }

    static func sink(_ s: [String: String]) throws {
        let size = Int(s["size"]!)!, count = Int(s["count"]!)!
        let mode = Bus1Mode(name: s["mode"]!)
        let peer = try Peer.connect(options: mode.options(s["address"]!, poolSize: poolSize(for: 64)))
        try peer.publish(try peer.createNode(), as: "bench.sink.\(getpid())")
        let parent = try lookup(peer, s["parent"]!)
        var sum = 0
        for _ in 0..<count {
            let message = try peer.receive(mode: mode.waitMode, timeout: .seconds(120))
            guard message.kind == .data else { continue }  // a notification (a node released or destroyed)
            if size > 0 { sum &+= Int(message.payload[0]) &+ Int(message.payload[size - 1]) }
        }
        try sendTouched(peer, 8, UInt8(truncatingIfNeeded: sum), to: parent, mode: mode.waitMode)
        _ = try peer.receive(mode: mode.waitMode, timeout: .seconds(120))  // the parent read the ack: done
    }

    /// One sender multicasting to `receivers` processes. Each receiver answers with
    /// the CLOCK_MONOTONIC time (system-wide) at which it had the message; latency is
    /// send → the last receiver's time. Also returns multicasts per second.
    static func fanout(address: String, mode: Bus1Mode, size: Int, receivers: Int, iterations: Int, warmup: Int,
                       cpus: [Int]) throws -> (Histogram<UInt64>, Double) {
        let peer = try Peer.connect(options: mode.options(address, poolSize: poolSize(for: size)))
        let me = "bench.fanout.\(getpid()).\(peer.id)"
        try peer.publish(try peer.createNode(), as: me)
        var children: [pid_t] = []
        for k in 0..<receivers {
            children.append(try Child.spawn("bus1-fan", ["address": address, "mode": mode.name, "parent": me],
                                            cpu: cpus.isEmpty ? nil : cpus[(k + 1) % cpus.count]))
        }
        let destinations = try children.map { try lookup(peer, "bench.fan.\($0)") }
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var start: UInt64 = 0
        for i in 0..<(warmup + iterations) {
            if i == warmup { start = monotonicNanoseconds() }
            var loan = try peer.loan(max(size, 1), wait: mode.waitMode)
            loan.count = size
            if size > 0 { loan.storeBytes(of: UInt8(1), as: UInt8.self); loan.storeBytes(of: UInt8(1), toByteOffset: size - 1, as: UInt8.self) }
            let t0 = monotonicNanoseconds()
            try peer.send(loan, to: destinations, wait: mode.waitMode)
            var last: UInt64 = 0
            for _ in 0..<receivers {
                let ack = try peer.receive(mode: mode.waitMode, timeout: .seconds(60))
                last = max(last, ack.payload.bytes.unsafeLoad(as: UInt64.self))
            }
            if i >= warmup { _ = histogram.record(last &- t0) }
        }
        let rate = Double(iterations) / (Double(monotonicNanoseconds() - start) / 1e9)
        var stop = try peer.loan(0)
        stop.count = 0
        try peer.send(stop, to: destinations, wait: mode.waitMode)
        for child in children { try Child.reap(child, "bus1-fan") }
        return (histogram, rate)
    }

    static func fan(_ s: [String: String]) throws {
        let mode = Bus1Mode(name: s["mode"]!)
        let peer = try Peer.connect(options: mode.options(s["address"]!, poolSize: poolSize(for: 64)))
        try peer.publish(try peer.createNode(), as: "bench.fan.\(getpid())")
        let parent = try lookup(peer, s["parent"]!)
        while true {
            let message = try peer.receive(mode: mode.waitMode, timeout: .seconds(120))
            guard message.kind == .data else { continue }  // a notification (a node released or destroyed)
            let arrived = monotonicNanoseconds()
            if message.payload.isEmpty { return }
            _ = message.payload[0] &+ message.payload[message.payload.count - 1]
            var loan = try peer.loan(8, wait: mode.waitMode)
            loan.count = 8
            loan.storeBytes(of: arrived, as: UInt64.self)
            try peer.send(loan, to: parent, wait: mode.waitMode)
        }
    }
}
