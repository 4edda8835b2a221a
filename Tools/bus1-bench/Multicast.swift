import Bus1Core
import Bus1Linux
import Glibc
import Histogram
import Synchronization

/// The fan-out baseline (`fanout` rows of mechanism `futex`): one writer wakes N
/// parked receiver processes with one FUTEX_WAKE.
///
/// - Shared memfd: the sequence word (the receivers' futex word) at 0, the count of
///   receivers that may be asleep at 64, the acknowledgement counter (the writer's
///   futex word) at 128 and the writer's sleeping flag at 132, receiver k's arrival
///   time at 256 + 64k, the payload from 4096 + 64 × 256.
/// - Per multicast the writer writes the payload's first and last byte, reads the
///   clock, release-stores the sequence number, and (seq_cst fence, then the count
///   of sleepers) issues one FUTEX_WAKE for all if any receiver may sleep.
/// - A receiver parks at once: count itself in, seq_cst fence, re-check,
///   FUTEX_WAIT(sequence, previous value), count itself out. Woken, it reads the
///   clock (CLOCK_MONOTONIC is system-wide), reads the payload's first and last
///   byte, stores its time and increments the acknowledgement counter, waking the
///   writer if it sleeps. The writer parks the same way until all N have answered.
/// - Latency: the writer's clock read → the last receiver's; the rate counts whole
///   multicasts, acknowledgements included (as the Bus1 fan-out rows do).
enum MulticastBaseline {
    static let sequence = 0, sleepers = 64, acknowledgements = 128, writerSleeping = 132, arrivals = 256, payload = 4096 + 64 * 256

    static func bytes(size: Int) -> Int { payload + max(size, 1) }

    static func latency(size: Int, receivers: Int, iterations: Int, warmup: Int, cpus: [Int]) throws -> (Histogram<UInt64>, Double) {
        let bytes = bytes(size: size), slot = max(size, 1)
        let total = warmup + iterations
        // The acknowledgement counter reaches receivers × (total + 1) in a 32-bit futex word.
        guard UInt64(receivers) * UInt64(total + 1) <= UInt64(UInt32.max) else {
            throw BenchError("multicast baseline: \(receivers) receivers × \(total) iterations overflow its 32-bit counter")
        }
        let fd = try MemFD.create(name: "bench-multicast", size: bytes)
        let mapping = try Mapping(fd, count: bytes, writable: true)
        memset(mapping.base, 0, bytes)
        var children: [pid_t] = []
        defer { for child in children { kill(child, SIGKILL); var status: Int32 = 0; waitpid(child, &status, 0) } }
        for k in 0..<receivers {
            children.append(try Child.spawn("baseline-multicast", ["size": "\(size)", "count": "\(total)", "index": "\(k)"],
                                            fds: [fd.rawValue], cpu: cpus.isEmpty ? nil : cpus[(k + 1) % cpus.count]))
        }
        let base = mapping.base
        let word = SharedWord32(base, offset: sequence), asleep = SharedWord32(base, offset: sleepers)
        let acks = SharedWord32(base, offset: acknowledgements), sleeping = SharedWord32(base, offset: writerSleeping)
        let out = base + payload
        awaitCount(acks, atLeast: UInt32(receivers), sleeping: sleeping)  // every receiver is waiting
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var start: UInt64 = 0
        for i in 1...UInt32(total) {
            if Int(i) == warmup + 1 { start = monotonicNanoseconds() }
            out.storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
            out.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: slot - 1, as: UInt8.self)
            let t0 = monotonicNanoseconds()
            word.storeReleasing(i)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if asleep.loadRelaxed() != 0 { _ = try? Futex.wake(word.address) }
            awaitCount(acks, atLeast: UInt32(receivers) &* (i &+ 1), sleeping: sleeping)
            var last: UInt64 = 0
            for k in 0..<receivers { last = max(last, SharedWord64(base, offset: arrivals + 64 * k).loadAcquiring()) }
            if Int(i) > warmup { _ = histogram.record(last &- t0) }
        }
        let rate = Double(iterations) / (Double(monotonicNanoseconds() - start) / 1e9)
        for child in children { try Child.reap(child, "multicast") }
        children = []
        return (histogram, rate)
    }

    /// Parks (wake-page protocol, on the counter itself) until `counter` ≥ `target`.
    static func awaitCount(_ counter: SharedWord32, atLeast target: UInt32, sleeping: SharedWord32) {
        while true {
            let seen = counter.loadAcquiring()
            if seen >= target { return }
            sleeping.storeRelaxed(1)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if counter.loadAcquiring() == seen { _ = try? Futex.wait(counter.address, expected: seen, timeoutNanoseconds: nil) }
            sleeping.storeRelaxed(0)
        }
    }

    /// A receiver (fd 3: the shared memfd).
    static func receive(settings: [String: String]) throws {
        let slot = max(Int(settings["size"]!)!, 1), count = UInt32(settings["count"]!)!, k = Int(settings["index"]!)!
        let mapping = try Mapping(FileDescriptor(adopting: 3), count: bytes(size: slot), writable: true)
        let base = mapping.base
        let word = SharedWord32(base, offset: sequence), asleep = SharedWord32(base, offset: sleepers)
        let acks = SharedWord32(base, offset: acknowledgements), writer = SharedWord32(base, offset: writerSleeping)
        let arrival = SharedWord64(base, offset: arrivals + 64 * k)
        let inbound = UnsafeRawPointer(base + payload)
        func acknowledge() {
            _ = acks.fetchAddReleasing(1)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if writer.loadRelaxed() != 0 { _ = try? Futex.wake(acks.address) }
        }
        acknowledge()  // ready
        for i in 1...count {
            while word.loadAcquiring() != i {
                _ = asleep.fetchAddReleasing(1)
                atomicMemoryFence(ordering: .sequentiallyConsistent)
                if word.loadAcquiring() == i &- 1 { _ = try? Futex.wait(word.address, expected: i &- 1, timeoutNanoseconds: nil) }
                _ = asleep.fetchAddReleasing(UInt32.max)  // - 1
            }
            let now = monotonicNanoseconds()
            let first = inbound.load(as: UInt8.self), last = inbound.load(fromByteOffset: slot - 1, as: UInt8.self)
            guard first == UInt8(truncatingIfNeeded: i) && last == first else { throw BenchError("multicast payload") }
            arrival.storeReleasing(now)
            acknowledge()
        }
    }
}
