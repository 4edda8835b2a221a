import Bus1Linux
import Glibc

/// A real child process (posix_spawn) whose stdout the test reads line by line.
/// Reaped with `waitpid(pid)`, never `waitpid(-1)`; killed in `deinit` if still running.
package final class ChildProcess {
    package let pid: pid_t
    package let name: String
    private let stdoutFD: Int32
    private var buffered: [UInt8] = []
    package private(set) var lines: [String] = []
    private var status: ExitStatus?

    /// Directory of the running test binary, where SwiftPM puts the package's executables.
    package static let buildDirectory: String = {
        var path = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &path, path.count - 1)
        precondition(n > 0, "cannot read /proc/self/exe")
        let exe = String(decoding: path[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<exe.lastIndex(of: "/")!])
    }()

    /// Spawns `executable` (a product of this package in `build`, or an absolute
    /// path) with `arguments`. `mergeStandardError`: the child's stderr goes to the
    /// same pipe (daemon logs).
    ///
    /// The pipe is close-on-exec: tests spawn children from several threads at
    /// once, and a child that inherited another child's stdout pipe would hold it
    /// open, so that child's reader would wait for EOF until both had exited.
    ///
    /// - `environment` adds to (or, with `replacingEnvironment`, replaces) the
    ///   test runner's environment.
    /// - `descriptors`: more fds the child gets, by number (`[3: socket]`).
    /// - `blockedSignals`: the child's initial signal mask (none by default).
    package init(_ executable: String, _ arguments: [String], build: ToolBuild = .debug, environment: [String: String] = [:],
         replacingEnvironment: Bool = false, mergeStandardError: Bool = false, descriptors extra: [Int32: Int32] = [:],
         blockedSignals: [Int32] = []) throws {
        let path = executable.hasPrefix("/") ? executable : build.path(executable)
        name = "\(executable)\(build == .debug ? "" : " (\(build.rawValue))") \(arguments.first ?? "")"
        let output = try ChildDescriptors.pipe()
        defer { close(output.write) }
        var descriptors: [Int32: Int32] = extra.merging([1: output.write]) { $1 }
        if mergeStandardError { descriptors[2] = output.write }
        do {
            pid = try spawnProcess(path, arguments, descriptors: descriptors,
                                   environment: replacingEnvironment ? environment : currentEnvironment().merging(environment) { $1 },
                                   blockedSignals: blockedSignals)
        } catch {
            close(output.read)
            throw error
        }
        stdoutFD = output.read
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
    package func readLine(timeoutSeconds: Double = 120) -> String? {
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

    /// Reads lines until one contains `text`; false on EOF/timeout.
    package func awaitLine(containing text: String, timeoutSeconds: Double = 60) -> Bool {
        if lines.contains(where: { $0.contains(text) }) { return true }
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while monotonicNanoseconds() < deadline {
            guard let line = readLine(timeoutSeconds: Double(deadline - monotonicNanoseconds()) / 1e9) else { return false }
            if line.contains(text) { return true }
        }
        return false
    }

    /// Reads lines until one starts with `prefix`; nil on EOF/timeout.
    package func awaitLine(prefix: String, timeoutSeconds: Double = 120) -> String? {
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while monotonicNanoseconds() < deadline {
            guard let line = readLine(timeoutSeconds: Double(deadline - monotonicNanoseconds()) / 1e9) else { return nil }
            if line.hasPrefix(prefix) { return line }
        }
        return nil
    }

    /// Reads stdout to EOF, then reaps the process.
    package func finish(timeoutSeconds: Double = 300) -> ExitStatus {
        while readLine(timeoutSeconds: timeoutSeconds) != nil {}
        return waitForExit()
    }

    /// The exit status if the process has ended, without waiting (reaps it).
    package func exitStatusIfEnded() -> ExitStatus? {
        if let status { return status }
        var s: Int32 = 0
        guard waitpid(pid, &s, WNOHANG) == pid else { return nil }
        status = ExitStatus(waitStatus: s)
        return status
    }

    package func waitForExit() -> ExitStatus {
        if let status { return status }
        var s: Int32 = 0
        while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
        let result = ExitStatus(waitStatus: s)
        status = result
        return result
    }

    /// Sends `signal` unless the process was reaped already: pids are reused (this
    /// machine's `pid_max` is 32,768, and a test run starts thousands of processes),
    /// so signalling a reaped pid can hit another test's process (it once killed a
    /// daemon mid-test). An unreaped pid is still ours, even as a zombie.
    package func signal(_ signal: Int32) {
        guard status == nil else { return }
        kill(pid, signal)
    }

    package var transcript: String { "\(name):\n  " + lines.joined(separator: "\n  ") }
}
