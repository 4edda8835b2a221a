import Bus1Linux
import Glibc
import Synchronization

/// ``DoorbellReadiness`` for kernels without io_uring's futex wait: the
/// descriptor is an eventfd, and a helper thread of the peer's own parks on the
/// doorbell with `futex(2)` while the owner is armed and signals the eventfd when
/// it moves.
///
/// The owner and the helper share three words:
/// - `request`: 0 (nothing armed) or `armed | seen` (the doorbell value the arm
///   read). The owner stores it at the end of ``arm(_:)`` and clears it in
///   ``disarm()``; the helper takes it with a compare-exchange before it signals,
///   so a wake-up meant for an earlier arm signals nothing.
/// - `bell`: the futex word the helper sleeps on while nothing is armed; the owner
///   bumps and wakes it with every request and at the end.
/// - `stopping`: set once, in `deinit`, before the thread is joined.
///
/// The helper waits on the doorbell in slices of ``socketCheckNanoseconds``, and
/// after each slice polls the control socket: a coordinator that hung up (which
/// rings no doorbell) is reported within one slice.
public final class ThreadDoorbellReadiness: DoorbellReadiness {
    private let shared: Shared
    private let page: WakePage
    private var thread: pthread_t?
    /// Whether the eventfd was found signalled (by an arm) and not yet reported by ``disarm()``.
    private var unreported = false

    /// How often an armed helper looks at the control socket.
    public static let socketCheckNanoseconds: Int64 = 100_000_000

    /// What the owner and its helper thread share. Sendable: `event`, `doorbell`
    /// and `socket` are immutable and used through system calls; `request`,
    /// `stopping` and `bell` are atomics.
    private final class Shared: @unchecked Sendable {
        let event: EventFD
        let doorbell: SharedWord32
        let socket: Int32
        let request = Atomic<UInt64>(0)
        let stopping = Atomic<Bool>(false)
        let bellWord: UnsafeMutablePointer<UInt32>
        var bell: SharedWord32 { SharedWord32(bellWord, offset: 0) }
        /// Keeps the doorbell's mapping alive while the thread runs.
        let owner: AnyObject

        static let armed: UInt64 = 1 << 32

        init(event: consuming EventFD, doorbell: SharedWord32, socket: Int32, owner: AnyObject) {
            self.event = event
            self.doorbell = doorbell
            self.socket = socket
            self.owner = owner
            bellWord = .allocate(capacity: 1)
            bellWord.initialize(to: 0)
        }

        deinit { bellWord.deallocate() }

        /// The helper thread: sleep on `bell` while nothing is armed; while armed,
        /// wait for the doorbell to move from the value the arm read, then signal
        /// the eventfd if that arm is still the current one.
        func run() {
            while !stopping.load(ordering: .acquiring) {
                let seenBell = bell.loadAcquiring()
                let armed = request.load(ordering: .acquiring)
                guard armed != 0 else {
                    if !stopping.load(ordering: .acquiring) {
                        _ = try? Futex.wait(bell.address, expected: seenBell, timeoutNanoseconds: nil)
                    }
                    continue
                }
                let result = try? Futex.wait(doorbell.address, expected: UInt32(truncatingIfNeeded: armed),
                                             timeoutNanoseconds: ThreadDoorbellReadiness.socketCheckNanoseconds)
                if result == .timedOut {
                    let state = pollNow(socket)
                    guard state.readable || state.hangUp else { continue }  // still armed: wait again
                }
                // The doorbell moved (or a spurious wake-up, which a reader tolerates), or the socket spoke.
                if request.compareExchange(expected: armed, desired: 0, ordering: .acquiringAndReleasing).exchanged {
                    try? event.signal()  // fails only if the descriptor is gone, which it is not before the join
                }
            }
        }
    }

    /// Readiness for the doorbell of `page` and the control socket `socket`
    /// (borrowed), with a helper thread that `owner` (which keeps `page` mapped)
    /// outlives.
    public init(page: WakePage, socket: Int32, keepingAlive owner: AnyObject) throws(ParkerUnavailable) {
        let event: EventFD
        do { event = try EventFD() } catch { throw ParkerUnavailable(reason: "eventfd: \(error)") }
        let shared = Shared(event: event, doorbell: page.doorbell, socket: socket, owner: owner)
        self.shared = shared
        self.page = page
        do throws(LinuxError) {
            thread = try PlatformThread.start { shared.run() }
        } catch {
            throw ParkerUnavailable(reason: "readiness thread: \(error)")
        }
    }

    deinit {
        shared.stopping.store(true, ordering: .releasing)
        _ = shared.bell.fetchAddReleasing(1)
        _ = try? Futex.wake(shared.bell.address)
        _ = try? Futex.wake(page.doorbell.address)  // a helper parked on the doorbell looks at `stopping`
        if let thread { pthread_join(thread, nil) }
    }

    public var descriptor: Int32 { shared.event.descriptor.rawValue }
    public var mechanism: String { "futex(2) helper thread" }

    public func arm(_ ready: () throws -> Bool) throws -> Bool {
        shared.request.store(0, ordering: .releasing)
        if (try? shared.event.drain()) == true { unreported = true }
        guard let seen = try page.prepareToSleep(ready) else { return true }
        shared.request.store(Shared.armed | UInt64(seen), ordering: .releasing)
        _ = shared.bell.fetchAddReleasing(1)
        _ = try? Futex.wake(shared.bell.address)  // fails only for a bad address; the word is ours
        return false
    }

    @discardableResult
    public func disarm() -> ReadinessFired {
        page.sleeping.storeRelaxed(0)  // only the waiter clears its flag
        shared.request.store(0, ordering: .releasing)
        // Which of the two woke the helper is not recorded: say both, so the caller
        // also looks at its socket (one poll).
        let signalled = (try? shared.event.drain()) == true || unreported
        unreported = false
        return signalled ? [.doorbell, .socket] : []
    }
}
