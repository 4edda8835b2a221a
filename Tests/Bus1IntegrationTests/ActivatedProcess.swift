import Bus1Linux
import Glibc

/// A built binary started the way a service manager starts an activated service:
/// `socket` as fd 3, `LISTEN_FDS=1` and `LISTEN_PID` set to the child's own pid
/// (through `/bin/sh -c 'export LISTEN_PID=$$; exec ...'`, since `posix_spawn`
/// cannot know the pid in advance and `exec` keeps it). `ChildProcess` cannot
/// place an fd at a given number, hence this second spawner; it also lets a test
/// start the child with signals already blocked, as a careless parent would.
/// Standard output and error go to one pipe; killed in `deinit` if still running.
final class ActivatedProcess {
    let pid: pid_t
    private let output: Int32
    private var buffered: [UInt8] = []
    private(set) var transcript: [String] = []
    private var status: ExitStatus?

    /// - Parameters:
    ///   - socket: placed at fd 3; nil passes no fd (and `LISTEN_FDS` only if `environment` says so).
    ///   - blockedSignals: the child's initial signal mask.
    init(_ executable: String, _ arguments: [String], socket: Int32?, environment: [String: String] = [:],
         blockedSignals: [Int32] = []) throws {
        let pipe = try ChildDescriptors.pipe()  // close-on-exec from birth: no parallel spawn inherits it
        let pipeFDs = [pipe.read, pipe.write]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        if let socket { posix_spawn_file_actions_adddup2(&actions, socket, 3) }  // dup2 clears close-on-exec on fd 3 only

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

        let binary = executable.hasPrefix("/") ? executable : ChildProcess.buildDirectory + "/" + executable
        let script = socket == nil ? #"exec "$0" "$@""# : #"export LISTEN_PID=$$; exec "$0" "$@""#
        let argv: [UnsafeMutablePointer<CChar>?] = (["/bin/sh", "-c", script, binary] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var variables: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") { variables[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            entry += 1
        }
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { variables[name] = nil }
        if socket != nil { variables["LISTEN_FDS"] = "1" }
        for (name, value) in environment { variables[name] = value }
        let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }

        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            throw LinuxError("posix_spawn /bin/sh", code: rc)
        }
        self.pid = pid
        output = pipeFDs[0]
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            _ = waitForExit()
        }
        close(output)
    }

    /// Reads output until a line contains `text`; false at EOF or after `timeoutSeconds`.
    func awaitLine(containing text: String, timeoutSeconds: Double = 60) -> Bool {
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        var seen = transcript.count
        while true {
            while seen < transcript.count {
                if transcript[seen].contains(text) { return true }
                seen += 1
            }
            let now = monotonicNanoseconds()
            guard now < deadline, readSome(timeoutMilliseconds: Int32(min(1000, (deadline - now) / 1_000_000 + 1))) else { return false }
        }
    }

    /// Reads output to EOF, then reaps the process.
    func finish(timeoutSeconds: Double = 60) -> ExitStatus {
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while monotonicNanoseconds() < deadline, readSome(timeoutMilliseconds: 1000) {}
        return waitForExit()
    }

    func signal(_ signal: Int32) { kill(pid, signal) }

    var lines: String { transcript.joined(separator: "\n") }

    /// Waits up to `timeoutMilliseconds` for output and splits it into lines; false at EOF.
    private func readSome(timeoutMilliseconds: Int32) -> Bool {
        var p = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutMilliseconds) > 0 else { return true }
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = read(output, &chunk, chunk.count)
        guard n > 0 else {
            if !buffered.isEmpty { transcript.append(String(decoding: buffered, as: UTF8.self)); buffered.removeAll() }
            return false
        }
        buffered += chunk[..<n]
        while let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
            transcript.append(String(decoding: buffered[..<newline], as: UTF8.self))
            buffered.removeSubrange(...newline)
        }
        return true
    }

    private func waitForExit() -> ExitStatus {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        let result = ExitStatus(waitStatus: raw)
        status = result
        return result
    }
}
