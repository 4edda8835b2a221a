import Bus1Linux
import Glibc
import Synchronization

/// ``DoorbellReadiness`` through one io_uring, whose own descriptor an event loop
/// watches for readability, with an `IORING_OP_FUTEX_WAIT` on the doorbell and a
/// `POLL_ADD` on the control socket in flight: no thread waits anywhere.
///
/// It follows the ``WakePage`` protocol, with the futex wait handed to the kernel
/// instead of a blocked thread:
/// - ``arm(_:)``: read `doorbell` → set `sleeping` → seq_cst fence → re-check
///   (`ready`) → queue the futex wait for the value read (unless one is still in
///   flight) and the socket poll → submit.
/// - Any sender that publishes after the re-check sees `sleeping` (its fence pairs
///   with ours), bumps `doorbell` and wakes it: the wait completes, the descriptor
///   turns readable. A sender that bumped between the read and the queueing makes
///   the wait complete at once (`EAGAIN`, the value changed).
/// - ``disarm()`` after the descriptor turned readable (or whenever the owner
///   looks anyway): reaps the completions and clears `sleeping`.
///
/// A futex wait left in flight by an arm that was answered by the socket stays
/// queued; a later arm keeps it (it is still a waiter on the word, and every wake
/// after that arm's fence reaches it) instead of queueing a second one.
///
/// While armed, every sender to this peer pays a futex wake per message, as for a
/// parked receiver; while not armed, nothing: the spinning path never touches it.
/// Owned by the peer's one thread; the descriptor may sit in an epoll set of any
/// thread.
public final class IOURingDoorbellReadiness: DoorbellReadiness {
    private let ring: IOURing
    private let page: WakePage
    private let socket: Int32
    private var futexInFlight = false
    private var pollInFlight = false
    private var completions: [(userData: UInt64, result: Int32)] = []
    /// What fired and was reaped (by an arm, say) but not yet reported by ``disarm()``.
    private var unreported: ReadinessFired = []

    private static let doorbellData: UInt64 = 1
    private static let socketData: UInt64 = 2

    /// Readiness for the doorbell of `page` and the control socket `socket`
    /// (borrowed: it must outlive this). Needs io_uring with futex opcodes
    /// (kernel >= 6.7).
    public init(page: WakePage, socket: Int32) throws(ParkerUnavailable) {
        let ring: IOURing
        do { ring = try IOURing(entries: 4) } catch { throw ParkerUnavailable(reason: "io_uring: \(error)") }
        guard ring.supportsFutex else { throw ParkerUnavailable(reason: "io_uring lacks FUTEX_WAIT (kernel < 6.7)") }
        self.ring = ring
        self.page = page
        self.socket = socket
    }

    public var descriptor: Int32 { ring.descriptor }
    public var mechanism: String { "io_uring FUTEX_WAIT" }

    public func arm(_ ready: () throws -> Bool) throws -> Bool {
        reap()
        guard let seen = try page.prepareToSleep(ready) else { return true }
        do {
            if !futexInFlight {
                try ring.queueFutexWait(page.doorbell.address, expected: seen, userData: Self.doorbellData)
                futexInFlight = true
            }
            if !pollInFlight {
                try ring.queuePoll(socket, events: UInt32(POLLIN), userData: Self.socketData)  // a hang-up is reported whatever is asked
                pollInFlight = true
            }
            try ring.submit()
        } catch {
            page.sleeping.storeRelaxed(0)
            throw error
        }
        return false
    }

    @discardableResult
    public func disarm() -> ReadinessFired {
        page.sleeping.storeRelaxed(0)  // only the waiter clears its flag
        reap()
        defer { unreported = [] }
        return unreported
    }

    /// Takes the completions, adding what fired to ``unreported``.
    private func reap() {
        ring.reap(into: &completions)
        for completion in completions {
            switch completion.userData {
            case Self.doorbellData: futexInFlight = false; unreported.insert(.doorbell)
            case Self.socketData: pollInFlight = false; unreported.insert(.socket)
            default: break
            }
        }
    }
}
