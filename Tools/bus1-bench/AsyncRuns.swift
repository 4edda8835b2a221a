import Bus1
import Bus1Linux
import Dispatch
import Foundation
import Glibc
import Histogram

/// The Bus1 rows through the async API (`Peer+Async.swift`): the same round trip
/// and one-way stream as ``Bus1Runs``, but both processes run their loop in a
/// task that owns its peer and awaits every loan, send and receive. Each process's
/// main thread only waits for that task (``blockOn(_:)``); the children are this
/// executable again (`__child bus1-async-echo`, `__child bus1-async-sink`), spawned
/// and reaped with ``Child``.
enum AsyncRuns {
    /// Round trips as ``Bus1Runs/latency(address:mode:size:iterations:warmup:cpus:)``
    /// measures them, awaited on both sides.
    static func latency(address: String, mode: Bus1Mode, size: Int, iterations: Int, warmup: Int, cpus: [Int]) throws -> Histogram<UInt64> {
        try blockOn { () async throws -> Histogram<UInt64> in
            let peer = try Peer.connect(options: mode.options(address, poolSize: poolSize(for: size)))
            let me = "bench.aping.\(getpid()).\(peer.id)"
            try peer.publish(try peer.createNode(), as: me)
            let child = try Child.spawn("bus1-async-echo", ["address": address, "mode": mode.name, "size": "\(size)", "parent": me],
                                        cpu: cpus.count > 1 ? cpus[1] : nil)
            let echo = try await peer.lookup("bench.aecho.\(child)", timeout: .seconds(20))
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            for i in 0..<(warmup + iterations) {
                let t0 = monotonicNanoseconds()
                try await sendTouched(peer, size, UInt8(truncatingIfNeeded: i | 1), to: echo)
                let reply = try await peer.receive(mode: mode.waitMode, timeout: .seconds(60))
                guard reply.payload.count == size, size == 0 || reply.payload[size - 1] == UInt8(truncatingIfNeeded: i | 1) else {
                    throw BenchError("corrupt echo")
                }
                if i >= warmup { _ = histogram.record(monotonicNanoseconds() - t0) }
            }
            try await sendTouched(peer, 0, 0, to: echo)  // a zero-length message stops the echo
            // Reaped while this peer still lives: a sender that leaves closes its
            // channel, and the stop message would go with it, unread.
            try Child.reap(child, "bus1-async-echo")
            return histogram
        }
    }

    /// The echo, with ``Peer/forEachMessage(mode:_:)``: answers every message until
    /// a zero-length one.
    static func echo(_ s: [String: String]) throws {
        let size = Int(s["size"]!)!, address = s["address"]!, parentName = s["parent"]!
        let mode = Bus1Mode(name: s["mode"]!)
        try blockOn {
            let peer = try Peer.connect(options: mode.options(address, poolSize: poolSize(for: size)))
            try peer.publish(try peer.createNode(), as: "bench.aecho.\(getpid())")
            let parent = try await peer.lookup(parentName, timeout: .seconds(20))
            do {
                try await peer.forEachMessage(mode: mode.waitMode) { message in
                    guard message.kind == .data else { return }  // a notification (a node released or destroyed)
                    if message.payload.isEmpty { throw Stop() }
                    let marker = message.payload[size - 1] & message.payload[0]  // read first and last byte in place
                    try await sendTouched(peer, size, marker, to: parent)
                }
            } catch is Stop {}
        }
    }

    /// One way, unbatched, as ``Bus1Runs/throughput(address:mode:size:messages:batch:cpus:)``
    /// with `batch` nil: messages/s until the sink acknowledges the last one.
    static func throughput(address: String, mode: Bus1Mode, size: Int, messages: Int, cpus: [Int]) throws -> Double {
        try blockOn { () async throws -> Double in
            let peer = try Peer.connect(options: mode.options(address, poolSize: poolSize(for: size)))
            let me = "bench.asource.\(getpid()).\(peer.id)"
            try peer.publish(try peer.createNode(), as: me)
            let child = try Child.spawn("bus1-async-sink", ["address": address, "mode": mode.name, "size": "\(size)",
                                                            "count": "\(messages)", "parent": me],
                                        cpu: cpus.count > 1 ? cpus[1] : nil)
            let sink = try await peer.lookup("bench.asink.\(child)", timeout: .seconds(20))
            let start = monotonicNanoseconds()
            for i in 0..<messages { try await sendTouched(peer, size, UInt8(truncatingIfNeeded: i), to: sink) }
            _ = try await peer.receive(mode: mode.waitMode, timeout: .seconds(120))  // the sink's acknowledgement
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            try await sendTouched(peer, 0, 0, to: sink)  // lets the sink exit (its ack has been read)
            try Child.reap(child, "bus1-async-sink")  // while this peer lives: its last message must not go with it
            return Double(messages) / seconds
        }
    }

    static func sink(_ s: [String: String]) throws {
        let size = Int(s["size"]!)!, count = Int(s["count"]!)!, address = s["address"]!, parentName = s["parent"]!
        let mode = Bus1Mode(name: s["mode"]!)
        try blockOn {
            let peer = try Peer.connect(options: mode.options(address, poolSize: poolSize(for: 64)))
            try peer.publish(try peer.createNode(), as: "bench.asink.\(getpid())")
            let parent = try await peer.lookup(parentName, timeout: .seconds(20))
            var sum = 0
            for _ in 0..<count {
                let message = try await peer.receive(mode: mode.waitMode, timeout: .seconds(120))
                guard message.kind == .data else { continue }  // a notification (a node released or destroyed)
                if size > 0 { sum &+= Int(message.payload[0]) &+ Int(message.payload[size - 1]) }
            }
            try await sendTouched(peer, 8, UInt8(truncatingIfNeeded: sum), to: parent)
            _ = try await peer.receive(mode: mode.waitMode, timeout: .seconds(120))  // the parent read the ack: done
        }
    }

    /// The module's `sendTouched(_:_:_:to:mode:)`, awaited: loans `size` bytes, writes the
    /// first and last byte in place, sends (waiting as the peer's options say).
    nonisolated(nonsending)
    static func sendTouched(_ peer: Peer, _ size: Int, _ marker: UInt8, to handle: Handle) async throws {
        var loan = try await peer.loan(size)
        loan.count = size
        if size > 0 {
            loan.storeBytes(of: marker, as: UInt8.self)
            loan.storeBytes(of: marker, toByteOffset: size - 1, as: UInt8.self)
        }
        try await peer.send(loan, to: handle)
    }

    /// Ends the echo's `forEachMessage` at the zero-length message.
    private struct Stop: Error {}
}

/// Runs `body` in a task and blocks the calling thread (a process's main thread,
/// never one of the pool) until it finishes; returns what it returned or rethrows.
/// The task's threads inherit the caller's CPU pinning.
func blockOn<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = TaskOutcome<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { outcome.result = .success(try await body()) } catch { outcome.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try outcome.result!.get()
}

/// ``blockOn(_:)``'s result: written by the task before it signals, read by the
/// blocked thread after the signal (the semaphore orders the two).
private final class TaskOutcome<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
