import CBus1Linux
import Glibc

/// Pins the calling thread to one CPU (`sched_setaffinity`).
public func pinCurrentThread(toCPU cpu: Int) throws(LinuxError) {
    try retryingOnInterrupt("sched_setaffinity") { b1l_pin_to_cpu(Int32(cpu)) }
}

/// The CPUs the calling thread may run on, ascending (`sched_getaffinity`; the
/// kernel leaves out offline CPUs). Pinning to any other CPU fails or, worse for a
/// benchmark, silently puts two processes on one.
public func allowedCPUs() throws(LinuxError) -> [Int] {
    var cpus = [Int32](repeating: 0, count: 1024)
    let count = try retryingOnInterrupt("sched_getaffinity") { b1l_allowed_cpus(&cpus, Int32(cpus.count)) }
    return cpus.prefix(Int(count)).map(Int.init)
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

/// The command name of process `pid`: `/proc/<pid>/comm` (at most 15 bytes, what
/// the process set or its executable's name), without the trailing newline; nil if
/// it cannot be read (the process is gone, or `/proc` is another pid namespace's).
public func processCommand(of pid: Int32) -> String? {
    guard let raw = try? retryingLibcOnInterrupt("open /proc/\(pid)/comm", { open("/proc/\(pid)/comm", O_RDONLY | O_CLOEXEC) })
    else { return nil }
    let fd = FileDescriptor(adopting: raw)
    var buffer = [UInt8](repeating: 0, count: 64)
    guard let count = try? retryingLibcOnInterrupt("read /proc/\(pid)/comm", { read(fd.rawValue, &buffer, buffer.count) })
    else { return nil }
    var bytes = buffer.prefix(count)
    if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
    return String(decoding: bytes, as: UTF8.self)
}
