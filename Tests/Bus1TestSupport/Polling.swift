import Glibc

/// Checks `condition` until it holds or `timeoutSeconds` pass, and says whether it
/// held (it is checked once more after the deadline).
///
/// How a test waits for a state it can observe but is not told of (a counter
/// reached, a table emptied, a process's fd count back where it was): with a
/// deadline, never with a sleep of a guessed length. `pollMicroseconds` is the
/// pause between checks; make it longer when a check is costly (one that runs
/// `shm-inspect`, say). The condition may do work (serve a socket) and may throw.
public func waitUntil(timeoutSeconds: Double, pollMicroseconds: UInt32 = 1000, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = monotonicNow() + UInt64(timeoutSeconds * 1e9)
    while true {
        if try condition() { return true }
        if monotonicNow() >= deadline { return try condition() }
        usleep(pollMicroseconds)
    }
}

/// CLOCK_MONOTONIC in nanoseconds (this target links nothing of the package).
private func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
