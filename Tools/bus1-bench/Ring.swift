import Bus1Core
import Bus1Linux
import Glibc
import Synchronization

/// The one-way baseline: a single-producer/single-consumer ring between two
/// processes, written the way a competent engineer writes one. Its twin in plain C
/// is Tools/bus1-c-ring/main.c (same layout, same rules, same bytes touched);
/// `bus1-bench baseline --compare-c` runs the two alternately.
///
/// - Layout of the shared memfd (`RingLayout`): tail (producer's index) at 0, head
///   (consumer's index) at 128, the consumer's and the producer's wake words at 256
///   and 384, the consumer's ready flag and checksum at 512, slots from 4096. The
///   indices sit on their own cache lines, 128 bytes apart (not a pair an
///   adjacent-line prefetcher pulls in together), away from the slots.
/// - `slots` slots of `size` bytes, back to back; `slots` is a power of two (index &
///   mask): 256, or fewer when 256 slots would exceed 64 MiB (the largest power of
///   two that fits, at least 1).
/// - Each side keeps its own index and a cached copy of the other's, re-read
///   (acquire) only when the copy says the ring is full (producer) or empty
///   (consumer). Each side publishes its index (release store) once per `batch`
///   messages (at most half the ring, so the other side always has work while this
///   one fills the rest), and before it waits. Unbatched rows have batch 1 (a store
///   per message).
/// - Per message the producer writes the first and last byte of its slot (the
///   sequence number's low byte) and the consumer reads them into a checksum, which
///   the parent checks afterwards: one cache line per message at 64 B, two above.
/// - Busy (`shm-spin`): a side that must wait spins on the other's index. Parked
///   (`futex`): it parks at once on its own doorbell with Bus1's wake-page protocol
///   (read doorbell; set sleeping; seq_cst fence; re-check; FUTEX_WAIT(doorbell,
///   value read); clear sleeping), and every publication is followed by a seq_cst
///   fence and a look at the other side's sleeping word (increment its doorbell and
///   FUTEX_WAKE only if set). See `WakePage`.
/// - Timed from the consumer's ready flag (mapped, ring faulted in) until the
///   producer sees head == messages.
enum RingLayout {
    static let tail = 0, head = 128, consumerWake = 256, producerWake = 384, ready = 512, sum = 520, slots = 4096

    /// The slot count for `size`-byte slots (the same rule as bus1-c-ring's `slots_for`).
    static func slotCount(for size: Int) -> Int {
        var slots = 1
        while slots < 256 && slots * 2 * size <= 64 << 20 { slots *= 2 }
        return slots
    }

    static func bytes(size: Int) -> Int { slots + slotCount(for: size) * size }

    /// The checksum the consumer must report for `messages` messages.
    static func expectedSum(_ messages: Int) -> UInt64 {
        let full = UInt64(messages / 256), rest = UInt64(messages % 256)
        return 2 * (full * (255 * 256 / 2) + rest * (rest &- 1) / 2)
    }
}

/// A side's wake words: its doorbell (the futex word) and its sleeping flag.
struct RingDoorbell {
    let bell: SharedWord32
    let sleeping: SharedWord32

    init(_ base: UnsafeMutableRawPointer, offset: Int) {
        bell = SharedWord32(base, offset: offset)
        sleeping = SharedWord32(base, offset: offset + 4)
    }
}

/// One process's view of the ring (see ``RingLayout``).
struct SPSCRing {
    let tail: SharedWord64, head: SharedWord64
    let consumer: RingDoorbell, producer: RingDoorbell
    let slots: UnsafeMutableRawPointer
    let mask: UInt64
    let size: Int
    let batch: UInt64
    let park: Bool

    init(_ base: UnsafeMutableRawPointer, size: Int, batch: Int, park: Bool) {
        tail = SharedWord64(base, offset: RingLayout.tail)
        head = SharedWord64(base, offset: RingLayout.head)
        consumer = RingDoorbell(base, offset: RingLayout.consumerWake)
        producer = RingDoorbell(base, offset: RingLayout.producerWake)
        slots = base + RingLayout.slots
        mask = UInt64(RingLayout.slotCount(for: size) - 1)
        self.size = size
        self.batch = UInt64(max(min(batch, RingLayout.slotCount(for: size) / 2), 1))
        self.park = park
    }

    /// Waits until `index` differs from `seen` and returns its new value: spins, or
    /// parks on `own` doorbell.
    @inline(__always)
    func awaitChange(_ index: SharedWord64, from seen: UInt64, parkingOn own: RingDoorbell) -> UInt64 {
        while true {
            let value = index.loadAcquiring()
            if value != seen { return value }
            if !park { continue }
            let bell = own.bell.loadAcquiring()
            own.sleeping.storeRelaxed(1)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if index.loadAcquiring() == seen { _ = try? Futex.wait(own.bell.address, expected: bell, timeoutNanoseconds: nil) }
            own.sleeping.storeRelaxed(0)
        }
    }

    /// Publishes `value` to `index`; parked: wakes `other` if it sleeps.
    @inline(__always)
    func publish(_ index: SharedWord64, _ value: UInt64, waking other: RingDoorbell) {
        index.storeReleasing(value)
        guard park else { return }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if other.sleeping.loadRelaxed() != 0 {
            _ = other.bell.fetchAddReleasing(1)
            _ = try? Futex.wake(other.bell.address)
        }
    }

    /// Sends `messages` messages and returns once the consumer has consumed them all.
    func produce(_ messages: UInt64) {
        let capacity = mask &+ 1, last = size - 1
        var cachedHead: UInt64 = 0, published: UInt64 = 0
        var i: UInt64 = 0
        while i < messages {
            if i &- cachedHead == capacity {
                if published != i { publish(tail, i, waking: consumer); published = i }
                cachedHead = awaitChange(head, from: cachedHead, parkingOn: producer)
            }
            let p = slots + Int(truncatingIfNeeded: (i & mask) &* UInt64(size))
            p.storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
            p.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: last, as: UInt8.self)
            i &+= 1
            if i &- published == batch { publish(tail, i, waking: consumer); published = i }
        }
        if published != messages { publish(tail, messages, waking: consumer) }
        while cachedHead != messages { cachedHead = awaitChange(head, from: cachedHead, parkingOn: producer) }
    }

    /// Receives `messages` messages; returns the checksum of the bytes read.
    func consume(_ messages: UInt64) -> UInt64 {
        let last = size - 1
        var cachedTail: UInt64 = 0, released: UInt64 = 0, sum: UInt64 = 0
        var i: UInt64 = 0
        while i < messages {
            if i == cachedTail {
                if released != i { publish(head, i, waking: producer); released = i }
                cachedTail = awaitChange(tail, from: cachedTail, parkingOn: consumer)
            }
            let p = UnsafeRawPointer(slots + Int(truncatingIfNeeded: (i & mask) &* UInt64(size)))
            sum &+= UInt64(p.load(as: UInt8.self)) &+ UInt64(p.load(fromByteOffset: last, as: UInt8.self))
            i &+= 1
            if i &- released == batch { publish(head, i, waking: producer); released = i }
        }
        if released != messages { publish(head, messages, waking: producer) }
        return sum
    }
}

enum RingBaseline {
    /// Messages per second through the ring: this process produces, a child
    /// (pinned to the second CPU) consumes. `batch` nil: a store per message.
    static func throughput(size: Int, messages: Int, batch: Int?, park: Bool, cpus: [Int]) throws -> Double {
        let bytes = RingLayout.bytes(size: size)
        let fd = try MemFD.create(name: "bench-ring", size: bytes)
        let mapping = try Mapping(fd, count: bytes, writable: true)
        memset(mapping.base, 0, bytes)  // faults the ring in on this side
        let pid = try Child.spawn("baseline-ring", ["size": "\(size)", "count": "\(messages)", "batch": "\(batch ?? 1)", "park": park ? "1" : "0"],
                                  fds: [fd.rawValue], cpu: cpus.count > 1 ? cpus[1] : nil)
        try awaitReady(SharedWord32(mapping.base, offset: RingLayout.ready), child: pid, "ring")
        let ring = SPSCRing(mapping.base, size: size, batch: batch ?? 1, park: park)
        let start = monotonicNanoseconds()
        ring.produce(UInt64(messages))
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        try Child.reap(pid, "ring")
        let sum = SharedWord64(mapping.base, offset: RingLayout.sum).loadAcquiring()
        guard sum == RingLayout.expectedSum(messages) else { throw BenchError("ring checksum \(sum), expected \(RingLayout.expectedSum(messages))") }
        return Double(messages) / seconds
    }

    /// The consumer (fd 3: the ring's memfd).
    static func consume(settings: [String: String]) throws {
        let size = Int(settings["size"]!)!, count = UInt64(settings["count"]!)!
        let bytes = RingLayout.bytes(size: size)
        let mapping = try Mapping(FileDescriptor(adopting: 3), count: bytes, writable: true)
        var touched: UInt8 = 0
        for offset in stride(from: 0, to: bytes, by: 4096) { touched &+= mapping.base.load(fromByteOffset: offset, as: UInt8.self) }
        if touched == 1 { print("") }  // keeps the loads
        let ring = SPSCRing(mapping.base, size: size, batch: Int(settings["batch"]!)!, park: settings["park"] == "1")
        SharedWord32(mapping.base, offset: RingLayout.ready).storeReleasing(1)
        SharedWord64(mapping.base, offset: RingLayout.sum).storeReleasing(ring.consume(count))
    }
}

/// Waits (yielding) until a child sets `ready`; throws if the child exits first.
func awaitReady(_ ready: SharedWord32, child pid: pid_t, _ what: String) throws {
    while ready.loadAcquiring() == 0 {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { throw BenchError("\(what) child \(ExitStatus(waitStatus: status)) before it was ready") }
        sched_yield()
    }
}
