import Bus1Core
import Bus1Linux
import Glibc

/// The thread that waits for Bus1's async callers: one per process, started on
/// first use, blocked in `epoll_wait` on the readiness descriptors of every peer
/// whose task awaits (``DoorbellReadiness``), and resuming each task when its
/// descriptor turns readable, its deadline passes, or it is cancelled.
///
/// No task ever blocks a thread of the cooperative pool on a futex: an awaiting
/// task is a suspended continuation here, and the peer's state is touched only by
/// that task when it resumes (this thread sees descriptors and tokens, never a
/// peer). Whoever removes a waiter from the table resumes it, exactly once: this
/// thread on readiness or a deadline, the cancellation handler on cancellation.
///
/// Cheap per wait: a descriptor stays in the epoll set as a one-shot registration
/// carrying its current waiter's token. A wait re-arms it (`EPOLL_CTL_MOD`; `ADD`
/// the first time, or after the descriptor was closed and its number reused); an
/// event carrying a token no longer in the table (its waiter timed out or was
/// cancelled) is dropped. A new waiter whose deadline comes before the thread's
/// planned wake pokes it through an eventfd. (A standing 200 ms tick that spared
/// most pokes made the parked async round trip slower, 1.5× sync instead of
/// 1.35×, measured with `bus1-bench async --modes park`: the poke keeps the
/// thread's wake path warm.)
final class ReadinessReactor: Sendable {
    /// The process's reactor, or why there is none (no epoll or eventfd, no thread).
    static let shared: Result<ReadinessReactor, LinuxError> = Result { () throws(LinuxError) in try ReadinessReactor() }

    private struct Waiter {
        let fd: Int32
        /// Monotonic nanoseconds; nil: none.
        let deadline: UInt64?
        let continuation: CheckedContinuation<Bool, any Error>
    }

    private struct State {
        var waiters: [UInt64: Waiter] = [:]
        /// Tokens cancelled before their waiter was registered.
        var cancelledEarly: Set<UInt64> = []
        var nextToken: UInt64 = 1
        /// When the thread's current `epoll_wait` ends by itself (nil: never).
        var plannedWake: UInt64?
    }

    private let epoll: Epoll
    /// Wakes the thread when a waiter's deadline is earlier than its planned wake.
    private let wakeup: EventFD
    private let state = Locked(State())
    /// Epoll data of ``wakeup`` (tokens start at 1).
    private static let wakeupData: UInt64 = 0

    private init() throws(LinuxError) {
        epoll = try Epoll()
        wakeup = try EventFD()
        try epoll.add(wakeup.descriptor.rawValue, for: .readable, data: Self.wakeupData)
        try PlatformThread.start(detached: true) { [self] in run() }
    }

    /// Waits until `fd` is readable (true) or `deadline` (monotonic ns) passes
    /// (false). Throws `CancellationError` as soon as the task is cancelled.
    /// One waiter per descriptor at a time (a peer belongs to one task).
    func readable(_ fd: Int32, deadline: UInt64?) async throws -> Bool {
        let token = state.withLock { state in
            defer { state.nextToken += 1 }
            return state.nextToken
        }
        defer {
            // A cancellation that came after the waiter was resumed left its token
            // here (it could not tell "too late" from "too early"): forget it.
            state.withLock { _ = $0.cancelledEarly.remove(token) }
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
                register(Waiter(fd: fd, deadline: deadline, continuation: continuation), token: token)
            }
        } onCancel: {
            cancel(token)
        }
    }

    private func register(_ waiter: Waiter, token: UInt64) {
        let outcome: Result<Bool, any Error> = state.withLock { state in
            if state.cancelledEarly.remove(token) != nil { return .failure(CancellationError()) }
            do throws(LinuxError) {
                do throws(LinuxError) {
                    try epoll.modify(waiter.fd, for: [.readable, .oneShot], data: token)
                } catch where error.code == ENOENT {
                    try epoll.add(waiter.fd, for: [.readable, .oneShot], data: token)
                }
            } catch {
                return .failure(Bus1Error.system(error))
            }
            state.waiters[token] = waiter
            guard let deadline = waiter.deadline, state.plannedWake.map({ deadline < $0 }) ?? true else { return .success(false) }
            state.plannedWake = deadline
            return .success(true)
        }
        switch outcome {
        case .failure(let error): waiter.continuation.resume(throwing: error)
        case .success(let poke): if poke { try? wakeup.signal() }  // a full counter is readable anyway
        }
    }

    private func cancel(_ token: UInt64) {
        let waiter: Waiter? = state.withLock { state in
            guard let waiter = removeWaiter(token, from: &state) else {
                state.cancelledEarly.insert(token)
                return nil
            }
            return waiter
        }
        waiter?.continuation.resume(throwing: CancellationError())
    }

    /// Takes a waiter out of the table (under the lock). Its descriptor stays in the
    /// epoll set: fired (one-shot, so disabled) or still armed with a token nobody
    /// answers to; the next wait on it re-arms it with its own.
    private func removeWaiter(_ token: UInt64, from state: inout State) -> Waiter? {
        state.waiters.removeValue(forKey: token)
    }

    private func run() {
        var events: [Epoll.Event] = []
        var resumed: [(Waiter, Bool)] = []
        while true {
            let timeout: Int? = state.withLock { state in
                let next = state.waiters.values.compactMap(\.deadline).min()
                state.plannedWake = next
                guard let next else { return nil }
                let now = monotonicNanoseconds()
                return next <= now ? 0 : Int((next - now + 999_999) / 1_000_000)
            }
            do { try epoll.wait(timeoutMilliseconds: timeout, into: &events) } catch { events.removeAll() }
            resumed.removeAll(keepingCapacity: true)
            state.withLock { state in
                for event in events where event.data != Self.wakeupData {
                    if let waiter = removeWaiter(event.data, from: &state) { resumed.append((waiter, true)) }
                }
                let now = monotonicNanoseconds()
                let expired = state.waiters.filter { $0.value.deadline.map { $0 <= now } ?? false }.map(\.key)
                for token in expired {
                    if let waiter = removeWaiter(token, from: &state) { resumed.append((waiter, false)) }
                }
            }
            if events.contains(where: { $0.data == Self.wakeupData }) { _ = try? wakeup.drain() }
            for (waiter, ready) in resumed { waiter.continuation.resume(returning: ready) }
        }
    }
}
