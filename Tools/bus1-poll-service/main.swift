// bus1-poll-service: a service that receives Bus1 messages on its own event loop.
//
// The loop waits in poll(2) on two descriptors: the peer's readiness descriptor
// and stdin. A message wakes it through the first, a command line through the
// second; neither blocks the other and no thread waits anywhere else. epoll,
// io_uring and SwiftNIO take the readiness descriptor the same way (see the
// README's "Event loops").
//
//   bus1-poll-service --name NAME [--address PATH]
//
// Prints "READY peer=P name=NAME", then a line per message ("MESSAGE from=S
// ticket=T bytes=N text=..."), per notification ("NOTE kind=K node=H") and per
// command ("stats" prints "STATS received=N parks=P"); stdin at end of file
// ends it with "BYE received=N" and exit status 0.
import ArgumentParser
import Bus1
import Glibc

@main
struct PollService: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1-poll-service",
        abstract: "Receive Bus1 messages on a poll(2) event loop beside stdin.")

    @Option(help: "Name to publish the service's node under.") var name: String
    @Option(help: "Bus socket path (default: $BUS1_ADDRESS, then the user bus).") var address: String?

    func run() throws {
        var options = PeerOptions(address: address)
        options.waitMode = .park
        let peer = try Peer.connect(options: options)
        try peer.publish(try peer.createNode(), as: name)
        var loop = EventLoop(peer: peer, readiness: try peer.readinessDescriptor())
        print("READY peer=\(peer.id) name=\(name)")
        fflush(nil)
        try loop.run()
    }
}

/// The loop: drain the peer, arm its descriptor, wait for either descriptor.
struct EventLoop {
    let peer: Peer
    let readiness: Int32
    var received = 0
    var input = LineReader(fd: STDIN_FILENO)

    mutating func run() throws {
        while true {
            while let message = try peer.tryReceive() { handle(message) }
            if try peer.armReadiness() { continue }  // one arrived while arming: drain again
            var fds = [pollfd(fd: readiness, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, -1) >= 0 || errno == EINTR else { throw PollFailed(code: errno) }
            if fds[1].revents != 0 {
                let (lines, ended) = input.read()
                for line in lines { command(line) }
                if ended { return say("BYE received=\(received)") }
            }
            // A readable readiness descriptor needs nothing here: the drain above looks.
        }
    }

    mutating func handle(_ message: borrowing Message) {
        switch message.kind {
        case .data:
            received += 1
            let text = String(decoding: message.copyPayload().prefix(64), as: UTF8.self)
            say("MESSAGE from=\(message.sender) ticket=\(message.ticket) bytes=\(message.payload.count) text=\(text)")
        case .nodeDestroyed, .nodeReleased:
            say("NOTE kind=\(message.kind) node=\(message.node.id)")
        }
    }

    func command(_ line: String) {
        switch line {
        case "stats": say("STATS received=\(received) parks=\(peer.currentStatistics.parks)")
        default: say("UNKNOWN \(line)")
        }
    }

    func say(_ line: String) {
        print(line)
        fflush(nil)
    }
}

/// Lines from a descriptor, as they become readable.
struct LineReader {
    let fd: Int32
    var pending: [UInt8] = []

    /// The complete lines readable now, and whether the descriptor reached its end.
    mutating func read() -> (lines: [String], ended: Bool) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = Glibc.read(fd, &buffer, buffer.count)
        if n > 0 { pending += buffer[..<n] }
        var lines: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: pending[..<newline], as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        return (lines, n == 0)
    }
}

struct PollFailed: Error, CustomStringConvertible {
    let code: Int32
    var description: String { "poll: \(String(cString: strerror(code)))" }
}
