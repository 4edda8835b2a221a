import Bus1Core
import Bus1Linux
import Foundation
import Glibc
import Histogram

/// The raw mechanisms Bus1 is compared with, written here and run in the same
/// invocation: a bare shared-memory spin, bare futex wait/wake, a Unix stream
/// socket and a pipe (round trips); the SPSC ring of `RingBaseline`, spinning or
/// futex-parked, a socket and a pipe (one way); the futex multicast of
/// `MulticastBaseline` (fan-out). Each touches the payload the way the Bus1 runs
/// do: the sender writes the first and last byte, the receiver reads them (and a
/// round trip's sender reads the reply's last byte). Sockets and pipes also copy
/// every byte (that is what they cost). `rowDescription` says what each row does.
enum Baseline: String, CaseIterable {
    case shmSpin = "shm-spin"
    case futex
    case unixSocket = "unix-socket"
    case pipe

    // MARK: Round trip

    /// Bytes of the shared region: ping word at 0, pong word at 64, payloads from 4096.
    static func regionSize(_ size: Int) -> Int { 4096 + 2 * max(size, 1) }

    func latency(size: Int, iterations: Int, warmup: Int, cpus: [Int]) throws -> Histogram<UInt64> {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        let total = warmup + iterations
        let childCPU = cpus.count > 1 ? cpus[1] : nil
        switch self {
        case .shmSpin, .futex:
            let fd = try MemFD.create(name: "bench-baseline", size: Self.regionSize(size))
            let mapping = try Mapping(fd, count: Self.regionSize(size), writable: true)
            let pid = try Child.spawn("baseline-\(rawValue)", ["size": "\(size)", "count": "\(total)"], fds: [fd.rawValue], cpu: childCPU)
            let ping = SharedWord32(mapping.base, offset: 0), pong = SharedWord32(mapping.base, offset: 64)
            let out = mapping.base + 4096, back = mapping.base + 4096 + max(size, 1)
            for i in 1...UInt32(total) {
                let t0 = monotonicNanoseconds()
                out.storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
                out.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: max(size, 1) - 1, as: UInt8.self)
                ping.storeReleasing(i)
                if self == .futex { _ = try Futex.wake(ping.address) }
                while pong.loadAcquiring() != i {
                    if self == .futex { _ = try Futex.wait(pong.address, expected: i - 1, timeoutNanoseconds: nil) }
                }
                // The reply's last byte, as the Bus1 run reads it.
                guard back.load(fromByteOffset: max(size, 1) - 1, as: UInt8.self) == UInt8(truncatingIfNeeded: i) else {
                    throw BenchError("baseline payload")
                }
                if Int(i) > warmup { _ = histogram.record(monotonicNanoseconds() - t0) }
            }
            try Child.reap(pid, rawValue)
        case .unixSocket, .pipe:
            var toChild: [Int32] = [-1, -1], fromChild: [Int32] = [-1, -1]
            if self == .pipe {
                let out = try ChildDescriptors.pipe(), back = try ChildDescriptors.pipe()
                toChild = [out.read, out.write]
                fromChild = [back.read, back.write]
            } else {
                let pair = try ChildDescriptors.streamSocketPair()
                toChild = [pair.1, pair.0]  // child reads and writes pair.1; we use pair.0
                fromChild = [pair.0, pair.1]
            }
            let pid = try Child.spawn("baseline-stream", ["size": "\(size)", "count": "\(total)"],
                                      fds: [toChild[0], fromChild[1]], cpu: childCPU)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 64)
            defer { buffer.deallocate() }
            memset(buffer, 0x42, max(size, 1))
            for i in 1...total {
                let t0 = monotonicNanoseconds()
                buffer.storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
                try writeFully(toChild[1], buffer, max(size, 1))
                try readFully(fromChild[0], buffer, max(size, 1))
                if i > warmup { _ = histogram.record(monotonicNanoseconds() - t0) }
            }
            for fd in Set(toChild + fromChild) { close(fd) }
            try Child.reap(pid, rawValue)
        }
        return histogram
    }

    /// The child side of a round trip over shared memory.
    static func echoShared(futex: Bool, settings: [String: String]) throws {
        let size = max(Int(settings["size"]!)!, 1), count = UInt32(settings["count"]!)!
        let mapping = try Mapping(FileDescriptor(adopting: 3), count: regionSize(size), writable: true)
        let ping = SharedWord32(mapping.base, offset: 0), pong = SharedWord32(mapping.base, offset: 64)
        let inbound = mapping.base + 4096, back = mapping.base + 4096 + size
        for i in 1...count {
            while ping.loadAcquiring() != i {
                if futex { _ = try Futex.wait(ping.address, expected: i - 1, timeoutNanoseconds: nil) }
            }
            let first = inbound.load(as: UInt8.self), last = inbound.load(fromByteOffset: size - 1, as: UInt8.self)
            back.storeBytes(of: first, as: UInt8.self)
            back.storeBytes(of: last, toByteOffset: size - 1, as: UInt8.self)
            pong.storeReleasing(i)
            if futex { _ = try Futex.wake(pong.address) }
        }
    }

    /// The child side of a round trip over a stream (fd 3 in, fd 4 out).
    static func echoStream(settings: [String: String]) throws {
        let size = max(Int(settings["size"]!)!, 1), count = Int(settings["count"]!)!
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        for _ in 0..<count {
            try readFully(3, buffer, size)
            try writeFully(4, buffer, size)
        }
    }

    // MARK: One-way throughput

    /// Messages per second one way: the SPSC ring of `RingBaseline` spinning
    /// (shm-spin) or parking on futex doorbells (futex), publishing once per `batch`
    /// (nil: every message); or a stream of `size`-byte writes (socket, pipe; no
    /// batched form, nil for a batch).
    func throughput(size: Int, messages: Int, batch: Int?, cpus: [Int]) throws -> Double? {
        let childCPU = cpus.count > 1 ? cpus[1] : nil
        let slot = max(size, 1)
        switch self {
        case .shmSpin, .futex:
            return try RingBaseline.throughput(size: slot, messages: messages, batch: batch, park: self == .futex, cpus: cpus)
        case .unixSocket, .pipe:
            guard batch == nil else { return nil }
            let stream = self == .pipe ? try ChildDescriptors.pipe() : try ChildDescriptors.streamSocketPair()
            let fds = [stream.0, stream.1]
            let acknowledgement = try ChildDescriptors.pipe()
            let ack = [acknowledgement.read, acknowledgement.write]
            let readEnd = self == .pipe ? fds[0] : fds[1], writeEnd = self == .pipe ? fds[1] : fds[0]
            let pid = try Child.spawn("baseline-drain", ["size": "\(size)", "count": "\(messages)"], fds: [readEnd, ack[1]], cpu: childCPU)
            close(ack[1])
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: slot, alignment: 64)
            defer { buffer.deallocate() }
            memset(buffer, 0x42, slot)
            var byte: UInt8 = 0
            try readFully(ack[0], &byte, 1)  // the reader is running: its start-up is not timed
            let start = monotonicNanoseconds()
            for _ in 0..<messages { try writeFully(writeEnd, buffer, slot) }
            try readFully(ack[0], &byte, 1)
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            for fd in Set(fds + [ack[0]]) { close(fd) }
            try Child.reap(pid, rawValue)
            return Double(messages) / seconds
        }
    }

    static func drainStream(settings: [String: String]) throws {
        let slot = max(Int(settings["size"]!)!, 1), count = Int(settings["count"]!)!
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: slot, alignment: 64)
        defer { buffer.deallocate() }
        var byte: UInt8 = 1
        try writeFully(4, &byte, 1)  // ready
        for _ in 0..<count { try readFully(3, buffer, slot) }
        try writeFully(4, &byte, 1)  // done
    }
}
