import CBus1Linux
import Glibc

/// Pins the calling thread to one CPU (`sched_setaffinity`).
public func pinCurrentThread(toCPU cpu: Int) throws(LinuxError) {
    try retryingOnInterrupt("sched_setaffinity") { b1l_pin_to_cpu(Int32(cpu)) }
}

/// How a child process ended (decoded `waitpid` status).
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public init(waitStatus status: Int32) {
        if b1l_wifexited(status) != 0 {
            self = .exited(b1l_wexitstatus(status))
        } else {
            self = .signaled(b1l_wtermsig(status))
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// Monotonic clock in nanoseconds.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// CLOCK_MONOTONIC_COARSE in milliseconds, low 32 bits: a timestamp for ages
/// measured in seconds, a few nanoseconds to read (no syscall, no TSC read).
@inline(__always)
public func coarseMonotonicMilliseconds() -> UInt32 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
    return UInt32(truncatingIfNeeded: UInt64(ts.tv_sec) &* 1000 &+ UInt64(ts.tv_nsec) / 1_000_000)
}
