import Bus1Linux
import Synchronization

/// Wakes the readers one send published to (a multicast, or the coordinator's
/// notifications to many peers): one seq_cst fence for all of them, then a futex
/// wake for each one that sleeps. Several wakes go out in one io_uring submission
/// when the kernel has io_uring futex opcodes (a multicast to N parked receivers
/// costs one system call, not N); otherwise, or for a single sleeper, one
/// `futex(2)` each. The ring is made on the first batch that needs it; if it
/// cannot be made, this waker uses `futex(2)` from then on.
///
/// Used by one thread at a time (its owner's publisher).
public final class Waker {
    /// Most wakes per submission (the ring's size).
    static let batch = 64
    private var ring: IOURing?
    private var ringRefused = false
    @exclusivity(unchecked) private var words: [UnsafeMutablePointer<UInt32>?] = []
    /// Submissions of several wakes, and wakes in them (for tests and benchmarks).
    public private(set) var batchedSubmissions = 0, batchedWakes = 0

    /// `useIOURing: false` never makes a ring (the fallback, for tests).
    public init(useIOURing: Bool = true) {
        ringRefused = !useIOURing
    }

    /// Wakes every reader of `lanes` that advertised sleeping. Call after
    /// publishing every lane's tail (and unstaging).
    public func wake<Lanes: Collection<PublishLane>>(_ lanes: Lanes) {
        atomicMemoryFence(ordering: .sequentiallyConsistent)  // every publish before reading any `sleeping` (WakePage)
        words.removeAll(keepingCapacity: true)
        for lane in lanes {
            if let word = lane.readerWake.claimWakeAfterFence() { words.append(word) }
        }
        switch words.count {
        case 0: return
        case 1: _ = try? Futex.wake(words[0]!)
        default: wakeAll()
        }
    }

    /// Several sleepers: io_uring submissions of up to ``batch`` wakes each, or
    /// one `futex(2)` each without io_uring.
    private func wakeAll() {
        if let ring = ringForBatches() {
            var start = 0
            while start < words.count {
                let end = min(start + Self.batch, words.count)
                let done = words[start..<end].withUnsafeBufferPointer { try? ring.futexWake($0) }
                if done == nil {
                    for word in words[start..<end] { _ = try? Futex.wake(word!) }  // the ring failed: wake them anyway
                } else {
                    batchedSubmissions += 1
                    batchedWakes += end - start
                }
                start = end
            }
        } else {
            for word in words { _ = try? Futex.wake(word!) }
        }
    }

    /// The ring, made on first use; nil where io_uring or its futex opcodes are refused.
    private func ringForBatches() -> IOURing? {
        if let ring { return ring }
        guard !ringRefused else { return nil }
        guard let made = try? IOURing(entries: UInt32(Self.batch)), made.supportsFutex else {
            ringRefused = true
            return nil
        }
        ring = made
        return made
    }
}
