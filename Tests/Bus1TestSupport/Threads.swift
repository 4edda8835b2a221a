import Bus1Linux
import Glibc

/// Runs `body` on a new pthread and returns it (for `pthread_join`). For tests and
/// test-peer roles that need a thread of their own, outside any actor and outside
/// the test runner's pool.
public func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    do { return try PlatformThread.start(body) } catch { preconditionFailure("\(error)") }
}

/// The kernel's id of the calling thread (from `/proc/thread-self`, which names
/// `<pid>/task/<tid>`).
public func currentThreadID() -> pid_t {
    var path = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/thread-self", &path, path.count - 1)
    precondition(n > 0, "cannot read /proc/thread-self")
    let text = String(decoding: path[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return pid_t(text.split(separator: "/").last!)!
}

/// Whether thread `tid` of this process is asleep in the kernel (state `S`,
/// interruptible: a futex wait, `io_uring_enter`, `poll`), read from
/// `/proc/self/task/<tid>/stat`. How a test learns that another of its threads
/// is blocked where it should be before it acts on it.
public func threadIsSleeping(_ tid: pid_t) -> Bool {
    let fd = open("/proc/self/task/\(tid)/stat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0, let close = buffer[..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return false }
    return buffer[close + 2] == UInt8(ascii: "S")  // "pid (comm) S ..."
}
