import ArgumentParser
import Bus1
import Glibc

/// `bus1ctl publish`: one message to a topic another process hosts.
struct Publish: ParsableCommand, BusCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publishes one message to a topic: the TEXT words joined by spaces, or a file's bytes.",
        discussion: """
            Waits up to --timeout for the topic to be hosted, sends the message to its host, and exits once the \
            host has taken it (a process that leaves takes its unread messages with it).
            """)
    @OptionGroup var busOption: BusOptions
    @ParentCommand var root: BusCtl
    @OptionGroup var wait: TimeoutOption
    @Argument(help: "The topic's name.") var topic: String
    @Argument(help: "The message: these words, joined by spaces.") var text: [String] = []
    @Option(help: ArgumentHelp("Publish this file's bytes instead (- for stdin).", valueName: "file")) var file: String?

    func validate() throws {
        if file != nil && !text.isEmpty { throw ValidationError("give the message as TEXT or as --file, not both") }
        if file == nil && text.isEmpty { throw ValidationError("no message: give TEXT, or --file F (--file - reads stdin)") }
        if file?.isEmpty == true { throw ValidationError("--file: a path, or - for stdin") }
    }

    func run() throws {
        let bytes: [UInt8]
        if let file {
            do { bytes = try readAll(file) } catch {
                writeLine("bus1ctl: cannot read \(file): \(error)", to: STDERR_FILENO)
                throw ExitCode(1)
            }
        } else {
            bytes = Array(text.joined(separator: " ").utf8)
        }
        do {
            let contributor = try TopicContributor(topic: topic, connecting: bus.peerOptions, timeout: wait.duration)
            try contributor.publish(copying: bytes, timeout: wait.duration)
            try contributor.flush(timeout: wait.duration)
        } catch {
            throw failure(error, Context(kind: "topic", name: topic, address: bus.address, waited: wait.text))
        }
    }
}

/// Why a file could not be read.
struct ReadFailure: Error, CustomStringConvertible {
    let code: Int32
    var description: String { String(cString: strerror(code)) }
}

/// Every byte of `path` (`-`: stdin).
func readAll(_ path: String) throws(ReadFailure) -> [UInt8] {
    let fd = path == "-" ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ReadFailure(code: errno) }
    defer { if fd != STDIN_FILENO { close(fd) } }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw ReadFailure(code: errno) }
        if n == 0 { return bytes }
        bytes += chunk[..<n]
    }
}
