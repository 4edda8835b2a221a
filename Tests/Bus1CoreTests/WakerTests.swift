import Bus1Core
import Bus1Linux
import Bus1TestSupport
import CBus1Wire
import Glibc
import Synchronization
import Testing

/// ``Waker``: the readers of a multicast that sleep are all woken, through one
/// io_uring submission where the kernel has futex opcodes (else `futex(2)` each);
/// readers that are awake are left alone. Real threads parked in `futex_wait` on
/// real wake pages.
@Suite("Waker", .timeLimit(.minutes(10)), .serialized)
struct WakerTests {
    static let ioUringFutexRefusal = IOURing.futexUnsupportedReason()

    @Test("Every sleeping reader wakes, through one io_uring submission",
          .enabled(if: ioUringFutexRefusal == nil, Comment(rawValue: ioUringFutexRefusal ?? "")))
    func ioUringBatch() throws {
        let waker = Waker()
        try wakesEverySleeper(waker)
        #expect(waker.batchedSubmissions == 1 && waker.batchedWakes == 6)
    }

    @Test("Every sleeping reader wakes, through futex(2) without io_uring")
    func futexFallback() throws {
        let waker = Waker(useIOURing: false)
        try wakesEverySleeper(waker)
        #expect(waker.batchedSubmissions == 0)
    }

    /// Eight wake pages: six readers asleep in `futex_wait` (their `sleeping` flag
    /// set, as `DoorbellWaiter` does), two awake. One `wake` over all eight lanes.
    func wakesEverySleeper(_ waker: Waker) throws {
        let pages = 8, sleepers = 6
        var boxes: [MappingBox] = []
        var lanes: [PublishLane] = []
        for _ in 0..<pages {
            let box = MappingBox(try Mapping(try MemFD.create(name: "waker-test", size: Int(BUS1_PAGE_SIZE)), count: Int(BUS1_PAGE_SIZE), writable: true))
            boxes.append(box)
            // The staging word: any word of the page past the wake page's own.
            lanes.append(PublishLane(staging: SharedWord64(box.mapping.base, offset: 512), readerWake: try WakePage(box.mapping)))
        }
        let woken = Atomic<Int>(0)
        let tids = UnsafeMutablePointer<pid_t>.allocate(capacity: sleepers)
        defer { tids.deallocate() }
        tids.initialize(repeating: 0, count: sleepers)
        nonisolated(unsafe) let tidSlots = tids
        let views = lanes.map(\.readerWake)
        var threads: [pthread_t] = []
        for i in 0..<sleepers {
            let page = views[i]
            threads.append(startThread {
                tidSlots[i] = currentThreadID()
                let seen = page.doorbell.loadAcquiring()
                page.sleeping.storeRelaxed(1)
                atomicMemoryFence(ordering: .sequentiallyConsistent)
                while page.doorbell.loadAcquiring() == seen {
                    _ = try? Futex.wait(page.doorbell.address, expected: seen, timeoutNanoseconds: 30_000_000_000)
                }
                page.sleeping.storeRelaxed(0)
                woken.wrappingAdd(1, ordering: .relaxed)
            })
        }
        let asleep = waitUntil(timeoutSeconds: 30) {
            (0..<sleepers).allSatisfy { tidSlots[$0] != 0 && threadIsSleeping(tidSlots[$0]) }
        }
        try #require(asleep, "the readers never went to sleep")
        let awakeBefore = (sleepers..<pages).map { views[$0].doorbell.loadRelaxed() }
        waker.wake(lanes)
        for thread in threads { pthread_join(thread, nil) }
        #expect(woken.load(ordering: .relaxed) == sleepers)
        #expect((sleepers..<pages).map { views[$0].doorbell.loadRelaxed() } == awakeBefore, "an awake reader's doorbell moved")
        withExtendedLifetime(boxes) {}
    }
}

/// A mapping in a class, so an array can hold several.
final class MappingBox {
    let mapping: Mapping
    init(_ mapping: consuming Mapping) { self.mapping = mapping }
}
