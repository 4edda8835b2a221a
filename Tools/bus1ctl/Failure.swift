import ArgumentParser
import Bus1
import Glibc

/// What a command was doing when it failed, so the one line on stderr can name
/// the cause in the user's terms ("no topic demo.topic", not "refused: name unknown").
struct Context {
    /// "topic", "service" or "name": what `name` is to this command.
    var kind: String
    var name: String
    var address: String
    /// How long the command waited, as text ("5 s"), if it waited.
    var waited: String?
}

/// Prints `bus1ctl: <why>` to stderr and returns the exit status for a runtime
/// failure (1). A plain function, not a `catch` pattern: Swift 6.3.1's SILGen
/// crashes on `catch .refused(.x)` in async functions.
func failure(_ error: any Error, _ context: Context) -> ExitCode {
    writeLine("bus1ctl: " + explanation(of: error, context), to: STDERR_FILENO)
    return ExitCode(1)
}

/// One line naming the cause of `error`.
func explanation(of error: any Error, _ context: Context) -> String {
    let waited = context.waited.map { " within \($0)" } ?? ""
    guard let error = error as? Bus1Error else { return "\(error)" }
    switch error {
    case .noBus:
        return error.description
    case .refused(.nameUnknown):
        return "no \(context.kind) \(escaped(context.name)) on the bus at \(context.address) (not published\(waited))"
    case .refused(.nameTaken):
        return "the name \(escaped(context.name)) is taken on the bus at \(context.address)"
    case .invalidName:
        return "\(escaped(context.name)) is not a valid name (empty, too long, or containing NUL)"
    case .timedOut:
        return "timed out: \(context.kind) \(escaped(context.name)) did not answer\(waited)"
    case .coordinatorGone:
        return "the bus at \(context.address) went away"
    default:
        return error.description
    }
}

/// Writes `text` and a newline to `fd` at once (one write(2) where it fits), so
/// a reader on a pipe gets each line as soon as it is printed. Not through
/// `print`: stdio's buffer would hold it back, and `stdout` is not
/// concurrency-safe in Swift 6.
func writeLine(_ text: String, to fd: Int32 = STDOUT_FILENO) {
    var bytes = Array(text.utf8)
    bytes.append(UInt8(ascii: "\n"))
    var written = 0
    while written < bytes.count {
        let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return }  // the reader went away: nothing more to tell it
        written += n
    }
}
