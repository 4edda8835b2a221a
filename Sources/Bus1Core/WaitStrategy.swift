import Bus1Linux
import Synchronization

/// How a peer waits for something to arrive.
///
/// On these VMs a cross-CPU futex wake-up costs ~25 µs while a spinning hand-off
/// costs ~65 ns, so the default spins for a bounded time before parking.
public enum WaitMode: Sendable, Hashable, CustomStringConvertible {
    /// Spin without ever sleeping (benchmarks; burns a CPU).
    case busyPoll
    /// Park at once (idle services).
    case park
    /// Spin for up to `spinNanoseconds`, then park.
    case spinThenPark(spinNanoseconds: UInt64)

    /// Spin 20 µs, then park.
    public static let `default` = WaitMode.spinThenPark(spinNanoseconds: 20_000)

    /// The wait modes by the names tools take on their command lines: "busy"
    /// (``busyPoll``), "spin" (``default``: spin, then park) and "park".
    public static let argumentNames = ["busy", "spin", "park"]

    /// The wait mode a command line names (see ``argumentNames``); nil for another word.
    public init?(argument: String) {
        switch argument {
        case "busy": self = .busyPoll
        case "spin": self = .default
        case "park": self = .park
        default: return nil
        }
    }

    /// This mode's command-line name (any spin-then-park is "spin").
    public var argument: String {
        switch self {
        case .busyPoll: "busy"
        case .park: "park"
        case .spinThenPark: "spin"
        }
    }

    public var description: String {
        switch self {
        case .busyPoll: "busy-poll"
        case .park: "park"
        case .spinThenPark(let ns): "spin-then-park(\(ns) ns)"
        }
    }
}

/// Puts the calling thread to sleep on a shared futex word. Implementations are
/// interchangeable; ``ParkerConformance`` tests hold every one to the same rules.
public protocol Parker: AnyObject {
    /// Human-readable mechanism name (for statistics and benchmarks).
    var mechanism: String { get }
    /// Sleeps while `word` holds `expected`, up to `timeoutNanoseconds` (nil: no limit).
    /// Spurious returns are allowed; callers re-check.
    func park(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64?) throws(LinuxError) -> Futex.WaitResult
}

/// Parks with `futex(2)`: works everywhere.
public final class FutexSyscallParker: Parker {
    public init() {}
    public var mechanism: String { "futex(2)" }
    public func park(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64?) throws(LinuxError) -> Futex.WaitResult {
        try Futex.wait(word, expected: expected, timeoutNanoseconds: timeoutNanoseconds)
    }
}

/// Parks with an io_uring `IORING_OP_FUTEX_WAIT` (kernel >= 6.7).
public final class IOURingParker: Parker {
    private let ring: IOURing
    public var mechanism: String { "io_uring FUTEX_WAIT" }

    /// Fails when io_uring is unavailable or lacks futex opcodes: the caller falls
    /// back to ``FutexSyscallParker`` and reports why.
    public init() throws(ParkerUnavailable) {
        let ring: IOURing
        do { ring = try IOURing(entries: 8) } catch { throw ParkerUnavailable(reason: "io_uring: \(error)") }
        guard ring.supportsFutex else { throw ParkerUnavailable(reason: "io_uring lacks FUTEX_WAIT (kernel < 6.7)") }
        self.ring = ring
    }

    public func park(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64?) throws(LinuxError) -> Futex.WaitResult {
        try ring.futexWait(word, expected: expected, timeoutNanoseconds: timeoutNanoseconds)
    }
}

/// Why a parking mechanism cannot be used here.
public struct ParkerUnavailable: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

/// Which parking mechanism to use.
public enum ParkBackend: String, Sendable, CaseIterable {
    /// io_uring if the kernel supports futex opcodes, else `futex(2)`.
    case automatic
    case ioUring = "io_uring"
    case futex

    /// Makes the parker; `.automatic` falls back and says why in `fallbackReason`.
    public func makeParker() throws(ParkerUnavailable) -> (parker: any Parker, fallbackReason: String?) {
        switch self {
        case .futex: return (FutexSyscallParker(), nil)
        case .ioUring: return (try IOURingParker(), nil)
        case .automatic:
            do { return (try IOURingParker(), nil) } catch { return (FutexSyscallParker(), error.reason) }
        }
    }
}

/// Waits on a peer's own doorbell following the ``WakePage`` protocol.
public struct DoorbellWaiter {
    public let page: WakePage
    public let parker: any Parker

    public init(page: WakePage, parker: any Parker) {
        self.page = page
        self.parker = parker
    }

    /// Waits until `ready()` is true or `deadline` (monotonic ns) passes. Parks in
    /// slices of at most `sliceNanoseconds`; after a slice that timed out it calls
    /// `idle` (e.g. to check that the coordinator is alive). `onPark` counts parks.
    /// Returns whether `ready()` became true.
    public func wait(
        mode: WaitMode, deadline: UInt64?, sliceNanoseconds: Int64 = 200_000_000,
        onPark: () -> Void = {}, _ ready: () throws -> Bool, idle: () throws -> Void = {}
    ) throws -> Bool {
        if try ready() { return true }
        let spinUntil: UInt64
        switch mode {
        case .busyPoll: spinUntil = deadline ?? .max
        case .park: spinUntil = 0
        case .spinThenPark(let ns): spinUntil = monotonicNanoseconds() &+ ns
        }
        if spinUntil > 0 {
            var spins = 0
            while true {
                if try ready() { return true }
                spins &+= 1
                if spins & 63 == 0 {
                    let now = monotonicNanoseconds()
                    if let deadline, now >= deadline { return false }
                    if now >= spinUntil { break }
                }
            }
        }
        while true {
            guard let seen = try page.prepareToSleep(ready) else { return true }
            var timeout = sliceNanoseconds
            if let deadline {
                let now = monotonicNanoseconds()
                if now >= deadline { page.sleeping.storeRelaxed(0); return false }
                timeout = min(timeout, Int64(deadline - now))
            }
            onPark()
            let result = try parker.park(page.doorbell.address, expected: seen, timeoutNanoseconds: timeout)
            page.sleeping.storeRelaxed(0)  // only the waiter clears its flag
            if try ready() { return true }
            if result == .timedOut { try idle() }
        }
    }
}
