import Bus1Core
import Bus1Linux

/// The async API: the sync calls' twins that suspend the task instead of blocking
/// its thread.
///
/// Each spins first as its wait mode says (``WaitMode/default``: 20 µs, which
/// catches a busy peer's reply without a wake-up), then arms the peer's readiness
/// descriptor and suspends on the process's reactor thread (``ReadinessReactor``)
/// until the descriptor turns readable, the deadline passes, or the task is
/// cancelled. Nothing is buffered on the way: a message is taken from its ring
/// only when the caller asked for it, so a slow consumer leaves messages in its
/// rings and its producers wait for credit (``PeerStatistics/creditWaits``), as
/// with the sync API.
///
/// The functions are `nonisolated(nonsending)`: they run in the caller's isolation
/// (an actor that owns the peer, a task), so the peer never crosses to another
/// one. Cancellation ends a wait at once with `CancellationError` and takes
/// nothing: a message that arrives later is delivered by the next receive, a loan
/// being sent is freed.
extension Peer {
    /// The next message: ``receive(mode:timeout:)-8yrg1`` without blocking a thread.
    /// Throws `CancellationError` when the task is cancelled,
    /// ``Bus1Error/timedOut`` after `timeout`.
    nonisolated(nonsending)
    public func receive(mode: WaitMode? = nil, timeout: Duration? = nil) async throws -> Message {
        if let message = try tryReceive() { return message }
        try await awaitUntil(mode: mode ?? options.waitMode, deadline: .after(timeout), slice: receiveSliceNanoseconds) { () throws(Bus1Error) -> Bool in
            try self.stashNextMessage()
        }
        return received.take()!
    }

    /// Receives messages and hands each to `body`, borrowed, until the task is
    /// cancelled (`CancellationError`) or `body` or a receive throws. Each message
    /// goes back to its sender when `body` returns: a slow `body` throttles the
    /// senders through the rings. (Not an `AsyncSequence`: its elements must be
    /// copyable, and a message is not; it owns a slice of the sender's pool.)
    nonisolated(nonsending)
    public func forEachMessage(mode: WaitMode? = nil, _ body: nonisolated(nonsending) (borrowing Message) async throws -> Void) async throws {
        while true {
            let message = try await receive(mode: mode)
            try await body(message)
        }
    }

    /// A loan of `byteCount` bytes readable by this peer's uid, awaiting free pool
    /// space if there is none (``loan(_:wait:timeout:)`` without blocking).
    nonisolated(nonsending)
    public func loan(_ byteCount: Int, timeout: Duration? = nil) async throws -> Loan {
        try await loan(byteCount, segment: 0, deadline: .after(timeout))
    }

    /// A loan readable by the owner of `destination`'s node (``loan(_:for:wait:timeout:)-(_,Handle,_,_)``).
    nonisolated(nonsending)
    public func loan(_ byteCount: Int, for destination: Handle, timeout: Duration? = nil) async throws -> Loan {
        try await loan(byteCount, segment: try segment(readableBy: destination), deadline: .after(timeout))
    }

    /// A loan readable by the owners of `destinations`' nodes (``loan(_:for:wait:timeout:)-(_,[Handle],_,_)``).
    nonisolated(nonsending)
    public func loan(_ byteCount: Int, for destinations: [Handle], timeout: Duration? = nil) async throws -> Loan {
        try await loan(byteCount, segment: try segment(readableBy: destinations), deadline: .after(timeout))
    }

    nonisolated(nonsending)
    private func loan(_ byteCount: Int, segment: Int, deadline: Deadline) async throws -> Loan {
        if let loan = try loanNow(byteCount, segment: segment) { return loan }
        statistics.loanWaits += 1
        var found: Loan?
        try await awaitUntil(mode: options.waitMode, deadline: deadline) { () throws(Bus1Error) -> Bool in
            found = try self.loanNow(byteCount, segment: segment)
            return found != nil
        }
        return found.take()!
    }

    /// Sends a filled loan to `handle`, awaiting credit if the receiver's ring is
    /// full (``send(_:to:wait:timeout:)-(_,Handle,_,_)`` without blocking). Cancelled or timed
    /// out, the loan goes back to the pool.
    nonisolated(nonsending)
    public func send(_ loan: consuming Loan, to handle: Handle, timeout: Duration? = nil) async throws {
        guard let pending = try trySend(loan, to: handle) else { return }
        statistics.creditWaits += 1
        let channel = handles[handle.id]!.channel!  // trySend returns the loan only for an open channel short of credit
        try await awaitUntil(mode: options.waitMode, deadline: .after(timeout)) { () throws(Bus1Error) -> Bool in
            try self.creditOrClose(on: channel)
        }
        // Credit (or a close) arrived; this task owns the peer, so it cannot vanish again.
        if try trySend(pending, to: handle) != nil { preconditionFailure("credit vanished while waiting") }
    }

    /// Sends one slice to every node in `destinations`, atomically, awaiting
    /// credit on all of them (``send(_:to:wait:timeout:)-(_,[Handle],_,_)`` for many, without blocking).
    nonisolated(nonsending)
    public func send(_ loan: consuming Loan, to destinations: [Handle], timeout: Duration? = nil) async throws {
        if destinations.count == 1 { return try await send(loan, to: destinations[0], timeout: timeout) }
        let plan = try planMulticast(of: loan, to: destinations)
        if try plan.firstBlocked(self) != nil {
            statistics.creditWaits += 1
            try await awaitUntil(mode: options.waitMode, deadline: .after(timeout)) { () throws(Bus1Error) -> Bool in
                try self.serviceControl()
                return try plan.firstBlocked(self) == nil
            }
        }
        publish(loan, as: plan)
    }

    /// ``lookup(_:timeout:)`` that sleeps the task, not the thread, between tries.
    nonisolated(nonsending)
    public func lookup(_ name: String, timeout: Duration) async throws -> Handle {
        let deadline = Deadline.after(timeout)
        while true {
            if let handle = try lookupIfPublished(name) { return handle }
            if deadline.hasPassed { throw Bus1Error.refused(.nameUnknown) }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Suspends until `ready` holds: spins as `mode` says, then awaits the readiness
    /// descriptor on the reactor, in slices of `slice` ns after which it checks
    /// the coordinator (and a receive re-runs the merge's stall clock).
    nonisolated(nonsending)
    func awaitUntil(mode: WaitMode, deadline: Deadline, slice: UInt64 = 200_000_000,
                    _ ready: () throws(Bus1Error) -> Bool) async throws {
        if readinessArmed { settleReadiness() }  // this wait owns `sleeping` now
        if try await spin(mode: mode, deadline: deadline, ready) { return }
        let readiness = try readinessSource()
        let reactor: ReadinessReactor
        switch ReadinessReactor.shared {
        case .success(let shared): reactor = shared
        case .failure(let error): throw Bus1Error.system(error)
        }
        while true {
            try Task.checkCancellation()
            if try arm(readiness, ready) { return }
            statistics.parks += 1
            recordMetricsAtPark()
            let sliceEnd = monotonicNanoseconds() &+ slice
            let readable: Bool
            do {
                readable = try await reactor.readable(readiness.descriptor, deadline: min(deadline.nanoseconds ?? .max, sliceEnd))
            } catch {
                readiness.disarm()
                throw error
            }
            let fired = readiness.disarm()
            if fired.contains(.socket) || !readable { try checkCoordinatorAlive() }
            if try readyOrInterrupted(ready) { return }
            if deadline.hasPassed { throw Bus1Error.timedOut }
        }
    }

    /// The spinning part of a wait in `mode`: true once `ready` holds; false when
    /// it is time to park. Checks cancellation and the deadline every 64 spins;
    /// busy-polling yields its thread to other tasks every 4,096.
    nonisolated(nonsending)
    private func spin(mode: WaitMode, deadline: Deadline, _ ready: () throws(Bus1Error) -> Bool) async throws -> Bool {
        let spinUntil: UInt64
        switch mode {
        case .park: return false  // the arm re-checks `ready` before anything sleeps
        case .busyPoll: spinUntil = .max
        case .spinThenPark(let nanoseconds): spinUntil = monotonicNanoseconds() &+ nanoseconds
        }
        var spins = 0
        while true {
            if try readyOrInterrupted(ready) { return true }
            spins &+= 1
            if spins & 63 == 0 {
                try Task.checkCancellation()
                let now = monotonicNanoseconds()
                if let end = deadline.nanoseconds, now >= end { throw Bus1Error.timedOut }
                if now >= spinUntil { return false }
                if spins & 0xFFFF == 0 { try checkCoordinatorAlive() }  // busy-poll never parks
                if spins & 0xFFF == 0 { await Task.yield() }  // never pin a thread of the pool
            }
        }
    }
}
