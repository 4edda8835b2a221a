import Bus1Linux
import Glibc

/// A real child process (posix_spawn) whose stdout the test reads line by line.
/// Reaped with `waitpid(pid)`, never `waitpid(-1)`; killed in `deinit` if still running.
final class ChildProcess {
    let pid: pid_t
    let name: String
    private let stdoutFD: Int32
    private var buffered: [UInt8] = []
    private(set) var lines: [String] = []
    private var status: ExitStatus?

    /// Directory of the running test binary, where SwiftPM puts the package's executables.
    static let buildDirectory: String = {
        var path = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &path, path.count - 1)
        precondition(n > 0, "cannot read /proc/self/exe")
        let exe = String(decoding: path[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<exe.lastIndex(of: "/")!])
    }()

    /// Spawns `executable` (a product of this package, or an absolute path) with `arguments`.
    /// `mergeStandardError`: the child's stderr goes to the same pipe (daemon logs).
    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], mergeStandardError: Bool = false) throws {
        let path = executable.hasPrefix("/") ? executable : Self.buildDirectory + "/" + executable
        name = "\(executable) \(arguments.first ?? "")"
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw LinuxError("pipe", code: errno) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        if mergeStandardError { posix_spawn_file_actions_adddup2(&actions, fds[1], 2) }
        posix_spawn_file_actions_addclose(&actions, fds[1])
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var env = [String: String]()
        var e = environ
        while let entry = e.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            e += 1
        }
        for (k, v) in environment { env[k] = v }
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        // Children start with an empty signal mask and default dispositions, whatever
        // the test runner's threads block or ignore.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw LinuxError("posix_spawn \(path)", code: rc)
        }
        self.pid = pid
        self.stdoutFD = fds[0]
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            var s: Int32 = 0
            waitpid(pid, &s, 0)
        }
        close(stdoutFD)
    }

    /// The next line of stdout, or nil at EOF or after `timeoutSeconds`.
    func readLine(timeoutSeconds: Double = 120) -> String? {
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                lines.append(line)
                return line
            }
            let now = monotonicNanoseconds()
            guard now < deadline else { return nil }
            var p = pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(min(1000, (deadline - now) / 1_000_000 + 1)))
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(stdoutFD, &chunk, chunk.count)
            if n <= 0 {
                if buffered.isEmpty { return nil }
                let line = String(decoding: buffered, as: UTF8.self)
                buffered.removeAll()
                lines.append(line)
                return line
            }
            buffered.append(contentsOf: chunk[..<n])
        }
    }

    /// Reads lines until one starts with `prefix`; nil on EOF/timeout.
    func awaitLine(prefix: String, timeoutSeconds: Double = 120) -> String? {
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while monotonicNanoseconds() < deadline {
            guard let line = readLine(timeoutSeconds: Double(deadline - monotonicNanoseconds()) / 1e9) else { return nil }
            if line.hasPrefix(prefix) { return line }
        }
        return nil
    }

    /// Reads stdout to EOF, then reaps the process.
    func finish(timeoutSeconds: Double = 300) -> ExitStatus {
        while readLine(timeoutSeconds: timeoutSeconds) != nil {}
        return waitForExit()
    }

    /// The exit status if the process has ended, without waiting (reaps it).
    func exitStatusIfEnded() -> ExitStatus? {
        if let status { return status }
        var s: Int32 = 0
        guard waitpid(pid, &s, WNOHANG) == pid else { return nil }
        status = ExitStatus(waitStatus: s)
        return status
    }

    func waitForExit() -> ExitStatus {
        if let status { return status }
        var s: Int32 = 0
        while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
        let result = ExitStatus(waitStatus: s)
        status = result
        return result
    }

    func signal(_ signal: Int32) { kill(pid, signal) }

    var transcript: String { "\(name):\n  " + lines.joined(separator: "\n  ") }
}
