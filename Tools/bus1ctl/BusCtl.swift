import ArgumentParser
import Bus1
import Bus1Linux
import Glibc

/// `bus1ctl`: talks to a live bus as a user does (like `busctl` or `iox2`): lists
/// the published names, publishes to and subscribes to topics, calls and serves
/// services. See README.md for an example session.
///
/// Exit status, as `shm-inspect`'s: 0 success; 1 a runtime failure (no bus, no
/// such name, timed out, the other side gone), with one line on stderr naming the
/// cause; 2 a usage error (bad arguments).
@main
struct BusCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1ctl",
        abstract: "Talks to a Bus1 bus: lists names, publishes and subscribes to topics, calls and serves services.",
        version: Bus1Version.string,
        subcommands: [List.self, Publish.self, Subscribe.self, Call.self, Serve.self, Hz.self])

    /// `--bus` before the verb (`bus1ctl --bus PATH list`); after it, the verb's own wins.
    @OptionGroup var bus: BusOptions

    /// ArgumentParser's own entry point, except that a command line it refuses
    /// (unknown option, missing argument, a `validate()` failure) exits with 2,
    /// this tool's status for "called wrongly", instead of its default 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                writeLine(fullMessage(for: error), to: STDERR_FILENO)
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Options every subcommand takes: which bus.
struct BusOptions: ParsableArguments {
    @Option(name: .customLong("bus"), help: ArgumentHelp(
        "The bus's socket (default: $BUS1_ADDRESS, else $XDG_RUNTIME_DIR/bus1/bus, else /tmp/bus1-<uid>/bus).",
        valueName: "path"))
    var path: String?

    func validate() throws {
        if path?.isEmpty == true { throw ValidationError("--bus: a socket path, not an empty string") }
    }

    /// The socket this command talks to.
    var address: String { path ?? Peer.defaultAddress() }

    /// Options for this command's peer: the bus, and parking when it waits (a
    /// tool sits idle most of the time; spinning would take a CPU from others).
    var peerOptions: PeerOptions {
        var options = PeerOptions(address: address)
        options.waitMode = .park
        return options
    }
}

/// A verb: takes `--bus` before or after its name.
protocol BusCommand {
    var busOption: BusOptions { get }
    var root: BusCtl { get }
}

extension BusCommand {
    /// The bus this verb talks to: its own `--bus`, else the one before the verb, else the default.
    var bus: BusOptions { busOption.path == nil ? root.bus : busOption }
}

/// `--timeout SECONDS`, for the subcommands that wait for a name or a reply.
struct TimeoutOption: ParsableArguments {
    @Option(help: ArgumentHelp("How long to wait for the name to be published, and for what follows (0.001 ... 86400).",
                               valueName: "seconds"))
    var timeout: Double = 5

    func validate() throws {
        guard timeout.isFinite, (0.001...86_400).contains(timeout) else {
            throw ValidationError("--timeout: 0.001 ... 86400 seconds")
        }
    }

    var duration: Duration { .nanoseconds(Int64(timeout * 1e9)) }
    /// The timeout as the messages say it: "5 s", "0.2 s".
    var text: String { "\(formatted(timeout, decimals: 3)) s" }
}
