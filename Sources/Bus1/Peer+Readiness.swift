import Bus1Core
import Bus1Linux
import Glibc

extension Peer {
    // MARK: Readiness for event loops

    /// A descriptor that turns readable when a message, a notification or credit
    /// may be waiting, for an event loop (epoll, poll, io_uring, SwiftNIO): put it
    /// in the loop's set, and before each wait call ``armReadiness()``.
    ///
    /// The loop: drain with ``tryReceive()`` until it returns nil, then
    /// ``armReadiness()``: if it returns true a message is ready already (receive
    /// again), otherwise wait for the descriptor (the next ``tryReceive()`` disarms it).
    /// It is an io_uring with a futex wait on this peer's doorbell and a poll of its
    /// control socket in flight, or, where the kernel has no io_uring futex wait
    /// (before 6.7) or ``PeerOptions/parkBackend`` is `.futex`, an eventfd that a
    /// helper thread parked on the doorbell signals (``readinessMechanism``). Owned
    /// by the peer: do not read or close it. Costs nothing while not armed; armed,
    /// every sender pays a wake-up, as for a parked receiver.
    public func readinessDescriptor() throws(Bus1Error) -> Int32 {
        try readinessSource().descriptor
    }

    /// What waits behind the readiness descriptor: "io_uring FUTEX_WAIT" or
    /// "futex(2) helper thread" (see ``readinessDescriptor()``); made on first use.
    public var readinessMechanism: String {
        get throws(Bus1Error) { try readinessSource().mechanism }
    }

    /// Prepares the readiness descriptor to report the next arrival. Returns true
    /// if a message is ready now (nothing is armed; the next ``tryReceive()``
    /// returns it), false if the descriptor is armed: wait for it to turn
    /// readable. Serves control events and throws ``Bus1Error/coordinatorGone``
    /// when the coordinator hung up (the descriptor reports that too), and
    /// ``Bus1Error/interrupted`` for a pending ``PeerInterrupter/interrupt()``.
    ///
    /// While a staged sender holds delivery back the descriptor may stay quiet:
    /// wait at most ``PeerOptions/orderingStallTimeout`` before calling
    /// ``tryReceive()`` again (only on a globally ordered bus with more than one
    /// inbound channel).
    public func armReadiness() throws(Bus1Error) -> Bool {
        if received != nil { return true }
        let readiness = try readinessSource()
        try wakeFromReadiness()
        let ready = try arm(readiness) { () throws(Bus1Error) -> Bool in try self.stashNextMessage() }
        readinessArmed = !ready
        return ready
    }

    /// Ends an armed wait without receiving: senders stop ringing this peer's
    /// doorbell. Optional: ``tryReceive()`` and the next arm do it as well.
    public func disarmReadiness() {
        settleReadiness()
    }

    /// Disarms and remembers whether the control socket fired (for the next arm).
    func settleReadiness() {
        readinessArmed = false
        if readiness?.disarm().contains(.socket) == true { coordinatorCheckDue = true }
    }

    /// Disarms, and serves the control socket at once if it fired since the last
    /// look (a hung-up coordinator rings no doorbell, so nothing else would notice):
    /// ``tryReceive()`` and ``armReadiness()`` start with it.
    func wakeFromReadiness() throws(Bus1Error) {
        settleReadiness()
        if coordinatorCheckDue {
            coordinatorCheckDue = false
            try checkCoordinatorAlive()
        }
    }

    /// This peer's readiness source, made on first use.
    func readinessSource() throws(Bus1Error) -> any DoorbellReadiness {
        if let readiness { return readiness }
        do {
            let made = try options.parkBackend.makeReadiness(page: wake, socket: control.socket.rawValue, keepingAlive: wakeMapping)
            readiness = made
            return made
        } catch {
            throw .system(LinuxError(error.reason, code: ENOSYS))
        }
    }

    /// Arms `readiness` unless `ready` (or a pending interrupt) holds: returns true
    /// if it does.
    func arm(_ readiness: any DoorbellReadiness, _ ready: () throws(Bus1Error) -> Bool) throws(Bus1Error) -> Bool {
        do {
            return try readiness.arm { () throws -> Bool in try self.readyOrInterrupted(ready) }
        } catch let error as Bus1Error {
            throw error
        } catch {
            throw .system(error as? LinuxError ?? LinuxError("arm readiness", code: EIO))
        }
    }

    /// `ready()`, after throwing ``Bus1Error/interrupted`` for a pending interrupt.
    @inline(__always)
    func readyOrInterrupted(_ ready: () throws(Bus1Error) -> Bool) throws(Bus1Error) -> Bool {
        if interrupter.take() { throw .interrupted }
        return try ready()
    }
}
