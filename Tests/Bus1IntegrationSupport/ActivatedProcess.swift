import Bus1Linux
import Glibc

extension ChildProcess {
    /// A built binary started the way a service manager starts an activated
    /// service: `socket` as fd 3, `LISTEN_FDS=1` and `LISTEN_PID` set to the
    /// child's own pid (through `/bin/sh -c 'export LISTEN_PID=$$; exec ...'`,
    /// since `posix_spawn` cannot know the pid in advance and `exec` keeps it), and
    /// none of the service manager's variables inherited from the test runner.
    /// Standard output and error go to one pipe.
    ///
    /// - Parameters:
    ///   - socket: placed at fd 3; nil passes no fd (and `LISTEN_FDS` only if `environment` says so).
    ///   - blockedSignals: the child's initial signal mask, as a careless parent would leave it.
    package static func activated(_ executable: String, _ arguments: [String], socket: Int32?, environment: [String: String] = [:],
                          blockedSignals: [Int32] = []) throws -> ChildProcess {
        let binary = executable.hasPrefix("/") ? executable : ChildProcess.buildDirectory + "/" + executable
        let script = socket == nil ? #"exec "$0" "$@""# : #"export LISTEN_PID=$$; exec "$0" "$@""#
        var variables = currentEnvironment()
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { variables[name] = nil }
        if socket != nil { variables["LISTEN_FDS"] = "1" }
        variables.merge(environment) { $1 }
        return try ChildProcess("/bin/sh", ["-c", script, binary] + arguments, environment: variables, replacingEnvironment: true,
                                mergeStandardError: true, descriptors: socket.map { [3: $0] } ?? [:], blockedSignals: blockedSignals)
    }
}
