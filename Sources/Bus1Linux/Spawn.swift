import CBus1Linux
import Glibc

/// Descriptors for talking to child processes, and the one way Bus1's tools and
/// tests start them.
///
/// Every descriptor here is created close-on-exec: `posix_spawn` hands each
/// descriptor without it to every child, and a child that holds a copy of some
/// other pipe's end keeps that pipe open. (That hung `bus1-order-check`: its
/// senders inherited every side-channel pipe's read end, so a sender writing to a
/// neighbour that had exited never got `EPIPE` and blocked forever once the pipe
/// was full.) A child gets exactly the descriptors ``spawnProcess(_:_:descriptors:environment:)``
/// maps into it.
public enum ChildDescriptors {
    /// A pipe with both ends close-on-exec (`pipe2(O_CLOEXEC)`). The caller owns
    /// and closes both numbers.
    public static func pipe() throws(LinuxError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        try retryingOnInterrupt("pipe2") { b1l_pipe_cloexec(&fds) }
        return (fds[0], fds[1])
    }

    /// A connected `AF_UNIX` stream socket pair, both ends close-on-exec. The caller
    /// owns and closes both numbers.
    public static func streamSocketPair() throws(LinuxError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        try retryingLibcOnInterrupt("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return (fds[0], fds[1])
    }
}

/// Starts `path` with `arguments` (`argv[0]` is `path`) and returns its pid; the
/// caller reaps it with `waitpid(pid)`.
///
/// - `descriptors` maps a child's descriptor number to the parent's descriptor
///   that it gets (for example `[1: pipeWriteEnd, 3: sidePipe]`). The child has
///   those and its parent's 0, 1 and 2 (unless remapped), nothing else, as long as
///   the parent opens everything close-on-exec. Each source is first duplicated
///   above every target number, so one mapping can never overwrite the source of
///   another (`[3: 4, 4: 3]` swaps).
/// - `environment`: the child's whole environment; nil passes the parent's.
///
/// The child starts with default dispositions and with only `blockedSignals`
/// blocked (none by default): `posix_spawn` would otherwise pass on whatever the
/// spawning thread blocks (a test runner's threads block SIGTERM, and a daemon
/// started from one could not be stopped). Tests that play a careless parent
/// block some on purpose.
public func spawnProcess(_ path: String, _ arguments: [String], descriptors: [Int32: Int32] = [:],
                         environment: [String: String]? = nil, blockedSignals: [Int32] = []) throws(LinuxError) -> pid_t {
    let floor = (descriptors.keys.max() ?? 2) + 1
    var sources: [(target: Int32, source: Int32)] = []
    defer { for (_, source) in sources { close(source) } }  // close: never retried (LinuxError.swift)
    for (target, source) in descriptors.sorted(by: { $0.key < $1.key }) {
        let high = try retryingLibcOnInterrupt("fcntl(F_DUPFD_CLOEXEC)") { fcntl(source, F_DUPFD_CLOEXEC, floor) }
        sources.append((target, high))
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    // dup2 to another number clears close-on-exec on the child's copy only.
    for (target, source) in sources { posix_spawn_file_actions_adddup2(&actions, source, target) }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var mask = sigset_t(), all = sigset_t()
    sigemptyset(&mask)
    for signal in blockedSignals { sigaddset(&mask, signal) }
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &mask)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer { for p in envp ?? [] { free(p) } }
    var pid: pid_t = 0
    // posix_spawn returns the error number itself; negated, it is the shim's -errno.
    try retryingOnInterrupt("posix_spawn \(path)") {
        -(envp.map { envp in posix_spawn(&pid, path, &actions, &attributes, argv, envp) }
            ?? posix_spawn(&pid, path, &actions, &attributes, argv, environ))
    }
    return pid
}

/// The calling process's environment, as a dictionary (to extend for a child).
public func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let equals = text.firstIndex(of: "=") { result[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
        entry += 1
    }
    return result
}
