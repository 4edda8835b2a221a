import Bus1Linux
import Glibc

/// io_uring `IORING_OP_POLL_ADD` (one-shot) per armed fd; all submissions go in
/// with the wait, one `io_uring_enter` per loop turn.
///
/// A burst of work never surfaces as an error: when the submission queue is full
/// (more fds armed in one turn than it has slots: a connection burst arms two per
/// peer) the queue is submitted early and the arm retried; when the kernel has no
/// room for completions (`EBUSY`/`EAGAIN`), the completions are reaped into
/// `early` first and handed out by the next ``wait(timeoutNanoseconds:)``.
final class IOURingReadiness: ReadinessSource {
    private let ring: IOURing
    private var armed: Set<UInt64> = []
    private var completions: [(userData: UInt64, result: Int32)] = []
    /// Tokens that fired while making room in the queues, not yet returned.
    private var early: [UInt64] = []
    /// User data of POLL_REMOVE requests; their completions are ignored.
    private static let removalMarker: UInt64 = .max
    var mechanism: String { "io_uring" }

    /// 1024 submission slots (2048 completion slots): a turn's re-arms fit without
    /// an early submit for hundreds of busy peers; more only costs extra submits.
    init() throws(LinuxError) { ring = try IOURing(entries: 1024) }

    func watch(_ fd: Int32, token: UInt64, writable: Bool) throws(LinuxError) {
        guard armed.insert(token).inserted else { return }
        do {
            try queueMakingRoom { () throws(LinuxError) in
                try ring.queuePoll(fd, events: UInt32(writable ? POLLOUT : POLLIN), userData: token)
            }
        } catch {
            armed.remove(token)
            throw error
        }
    }

    func unwatch(_ token: UInt64) throws(LinuxError) {
        guard armed.remove(token) != nil else { return }
        try queueMakingRoom { () throws(LinuxError) in
            try ring.queuePollRemoval(of: token, userData: Self.removalMarker)
        }
    }

    func wait(timeoutNanoseconds: Int64?) throws(LinuxError) -> [UInt64] {
        // Tokens reaped early are due now: only look, never block.
        try submitMakingRoom(waitingNanoseconds: early.isEmpty ? timeoutNanoseconds : 0)
        collect()
        defer { early.removeAll(keepingCapacity: true) }
        return early
    }

    /// Runs `queue`; on a full submission queue submits what is there and runs it
    /// once more.
    private func queueMakingRoom(_ queue: () throws(LinuxError) -> Void) throws(LinuxError) {
        do {
            try queue()
        } catch where error.code == EBUSY {
            try submitMakingRoom(waitingNanoseconds: nil, waitForCompletion: false)
            try queue()
        }
    }

    /// Submits (and waits when asked); while the kernel refuses for lack of room
    /// for completions, reaps them into `early` and tries again.
    private func submitMakingRoom(waitingNanoseconds: Int64?, waitForCompletion: Bool = true) throws(LinuxError) {
        for _ in 0..<64 {
            do {
                if waitForCompletion { try ring.submitAndWait(timeoutNanoseconds: waitingNanoseconds) } else { try ring.submit() }
                return
            } catch where error.code == EBUSY || error.code == EAGAIN {
                collect()
                if waitForCompletion && !early.isEmpty { return }  // something to serve already
            }
        }
        throw LinuxError("io_uring_enter: no room for completions after reaping", code: EBUSY)
    }

    /// Moves the ring's completions into `early` (skipping removals and
    /// cancellations of tokens already unwatched).
    private func collect() {
        ring.reap(into: &completions)
        for c in completions where c.userData != Self.removalMarker {
            // A cancelled poll (-ECANCELED) belongs to a token already unwatched.
            if armed.remove(c.userData) != nil { early.append(c.userData) }
        }
    }
}
