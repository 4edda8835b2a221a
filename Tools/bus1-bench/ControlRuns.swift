import Bus1
import Bus1Linux
import Foundation
import Glibc
import Histogram

/// The control-path rows (`bus1-bench control`): what a connect costs, step by
/// step (``Peer/connectTimings``), and how many control operations the
/// coordinator serves for client processes that run together. The clients are
/// this executable again (`__child control-client`).
enum ControlRuns {
    /// The steps of a connect, as `mode` of the connect rows, with their timing.
    static let phases: [(name: String, time: @Sendable (ConnectTimings) -> UInt64)] = [
        ("total", \.total), ("socket", \.socket), ("parker", \.parker), ("welcome", \.welcome),
        ("mapping", \.mapping), ("sealing", \.sealing),
    ]

    /// Control operations in one round of a client: create a node, publish it,
    /// look it up (a handle to it), destroy it (which takes its name and handle along).
    static let operationsPerRound = 4

    /// `connects` connects and disconnects (after `warmup` unrecorded ones) from
    /// this process: one row for the whole connect, one per step. `size` is the
    /// pool's payload area.
    static func connectRows(address: String, connects: Int, warmup: Int) throws -> [Row] {
        var histograms = phases.map { _ in Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three) }
        var poolPayload = 0
        for i in 0..<(warmup + connects) {
            let t0 = monotonicNanoseconds()
            let peer = try Peer.connect(options: PeerOptions(address: address))
            let elapsed = monotonicNanoseconds() - t0
            let timings = peer.connectTimings
            poolPayload = peer.maximumPayload
            peer.disconnect()
            guard i >= warmup else { continue }
            _ = histograms[0].record(elapsed)  // as the caller sees it, not only what the peer timed
            for k in 1..<phases.count { _ = histograms[k].record(phases[k].time(timings)) }
        }
        return zip(phases, histograms).map { phase, histogram in
            Row.latency("connect", "bus1", phase.name, size: poolPayload, histogram: histogram)
        }
    }

    /// `clients` processes, each connected and warmed up, released together; each
    /// runs `rounds` rounds (``operationsPerRound`` requests each) and reports when
    /// it finished and its per-operation latencies. Rate: all operations over start
    /// → the last client's finish.
    static func operationsRow(address: String, clients: Int, rounds: Int, warmup: Int, cpus: [Int]) throws -> Row {
        let start = try ChildDescriptors.pipe()
        var children: [(pid: pid_t, results: Int32)] = []
        var startOpen = true, reaped = 0
        defer {
            // On a failure midway: release the barrier and kill and reap the clients left.
            if startOpen { close(start.write) }
            for child in children.dropFirst(reaped) {
                kill(child.pid, SIGKILL)
                var status: Int32 = 0
                waitpid(child.pid, &status, 0)
            }
            for child in children { close(child.results) }
        }
        for k in 0..<clients {
            let results = try ChildDescriptors.pipe()
            let pid = try Child.spawn("control-client", ["address": address, "rounds": "\(rounds)", "warmup": "\(warmup)"],
                                      fds: [start.read, results.write], cpu: cpus.isEmpty ? nil : cpus[(k + 1) % cpus.count])
            close(results.write)
            children.append((pid, results.read))
        }
        close(start.read)
        var byte: UInt8 = 0
        for child in children { try readFully(child.results, &byte, 1) }  // connected and warmed up
        let started = monotonicNanoseconds()
        close(start.write)  // the barrier: every client sees end of file at once
        startOpen = false
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var finished: UInt64 = 0
        for child in children {
            var header: (finished: UInt64, length: UInt64) = (0, 0)
            try readFully(child.results, &header, MemoryLayout.size(ofValue: header))
            var encoded = Data(count: Int(header.length))
            try encoded.withUnsafeMutableBytes { try readFully(child.results, $0.baseAddress!, $0.count) }
            histogram.add(try JSONDecoder().decode(Histogram<UInt64>.self, from: encoded))
            finished = max(finished, header.finished)
            try Child.reap(child.pid, "control-client")
            reaped += 1
        }
        let operations = clients * rounds * operationsPerRound
        var row = Row.latency("control-ops", "bus1", clients == 1 ? "1 client" : "\(clients) clients", size: 0, histogram: histogram)
        row.clients = clients
        row.messagesPerSecond = Double(operations) / (Double(finished - started) / 1e9)
        return row
    }

    /// A client: connects, warms up, says so (a byte on fd 4), waits for the
    /// barrier (end of file on fd 3), runs its rounds, then writes its finish time,
    /// and its latency histogram's length and JSON.
    static func client(_ s: [String: String]) throws {
        let rounds = Int(s["rounds"]!)!, warmup = Int(s["warmup"]!)!
        let peer = try Peer.connect(options: PeerOptions(address: s["address"]!))
        let prefix = "bench.control.\(getpid())."
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        for i in 0..<warmup { try round(peer, name: prefix + "w\(i)", into: &histogram) }
        histogram.reset()
        var byte: UInt8 = 1
        try writeFully(4, &byte, 1)
        guard read(3, &byte, 1) == 0 else { throw BenchError("start barrier: expected end of file") }
        for i in 0..<rounds { try round(peer, name: prefix + "\(i)", into: &histogram) }
        let encoded = try JSONEncoder().encode(histogram)
        var header: (finished: UInt64, length: UInt64) = (monotonicNanoseconds(), UInt64(encoded.count))
        try writeFully(4, &header, MemoryLayout.size(ofValue: header))
        try encoded.withUnsafeBytes { try writeFully(4, $0.baseAddress!, $0.count) }
        peer.disconnect()
    }

    /// One round: create, publish, look up, destroy, each timed.
    private static func round(_ peer: Peer, name: String, into histogram: inout Histogram<UInt64>) throws {
        var t0 = monotonicNanoseconds()
        func lap() {
            let now = monotonicNanoseconds()
            _ = histogram.record(now - t0)
            t0 = now
        }
        let node = try peer.createNode()
        lap()
        try peer.publish(node, as: name)
        lap()
        let handle = try peer.lookup(name)
        lap()
        guard handle == node else { throw BenchError("lookup of \(name) found another node") }
        t0 = monotonicNanoseconds()
        try peer.destroy([node])
        lap()
    }

    /// The connect rows, then a control-ops row per client count.
    static func rows(address: String, connects: Int, rounds: Int, clients: [Int], warmup: Int, cpus: [Int]) throws -> [Row] {
        progress("control: connect")
        var rows = try connectRows(address: address, connects: connects, warmup: min(warmup, max(1, connects / 10)))
        for count in clients {
            progress("control: operations ×\(count)")
            rows.append(try operationsRow(address: address, clients: count, rounds: rounds,
                                          warmup: min(warmup, max(1, rounds / 10)), cpus: cpus))
        }
        return rows
    }
}
