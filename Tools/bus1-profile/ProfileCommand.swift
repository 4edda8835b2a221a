// bus1-profile: the workloads Scripts/profile.sh runs under callgrind, and the
// report that turns two callgrind runs into instructions per message.
import ArgumentParser
import Bus1Linux
import Glibc

@main
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1-profile",
        abstract: "Instructions per message of Bus1's message path (run by Scripts/profile.sh under callgrind).",
        discussion: """
            `run` passes messages between two peers on one thread, so nothing ever waits: every \
            instruction inside the measured function is message-path work. `report` takes the \
            callgrind outputs of two runs that differ only in their message count and prints the \
            difference per message, with the top functions.
            """,
        version: Bus1Version.string,
        subcommands: [Run.self, Report.self])
}

/// The message paths measured.
enum ProfilePath: String, ExpressibleByArgument, CaseIterable {
    /// Unicast send → receive → release, a → b then b → a (two messages per round trip).
    case roundTrip = "round-trip"
    /// `sendBatch` of `--batch` messages a → b, then b receives and releases each.
    case batch

    /// The function callgrind collects in (Workload.swift fixes its symbol name).
    var symbol: String {
        switch self {
        case .roundTrip: "bus1_profile_round_trips"
        case .batch: "bus1_profile_batches"
        }
    }
}

extension Profile {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pass --messages messages on one path and print one line of key=value pairs.")
        @Option(help: "round-trip or batch.") var path: ProfilePath = .roundTrip
        @Option(help: "Messages to pass (even for round-trip; a multiple of --batch for batch).") var messages: Int = 20_000
        @Option(help: "Payload bytes per message.") var size: Int = 64
        @Option(help: "Messages per batch (the batch path).") var batch: Int = 64

        func validate() throws {
            guard (1...1 << 20).contains(size) else { throw ValidationError("--size: 1 ... 1048576") }
            guard (1...256).contains(batch) else { throw ValidationError("--batch: 1 ... 256") }
            guard (1...100_000_000).contains(messages) else { throw ValidationError("--messages: 1 ... 100000000") }
            switch path {
            case .roundTrip: guard messages % 2 == 0 else { throw ValidationError("--messages: even for round-trip (two per round trip)") }
            case .batch: guard messages % batch == 0 else { throw ValidationError("--messages: a multiple of --batch (\(batch))") }
            }
        }

        func run() throws {
            signal(SIGPIPE, SIG_IGN)
            let workload = try Workload(size: size, batch: batch)
            defer { workload.stop() }
            let start = monotonicNanoseconds()
            let checksum = switch path {
            case .roundTrip: try roundTrips(workload, messages / 2)
            case .batch: try batches(workload, messages / batch, batch: batch)
            }
            let elapsed = monotonicNanoseconds() - start
            let expected = path == .roundTrip ? messages / 2 * 3 : messages * 3
            guard checksum == expected else { throw ProfileError("checksum \(checksum), expected \(expected)") }
            let perMessage = Double(elapsed) / Double(messages)
            print("path=\(path.rawValue) messages=\(messages) size=\(size) batch=\(path == .batch ? batch : 1) "
                  + "symbol=\(path.symbol) ns-per-message=\(fixed(perMessage))")
        }
    }

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Instructions per message from two callgrind runs of `run` (the difference, divided by the extra messages).")
        @Option(help: "The path both runs measured.") var path: ProfilePath = .roundTrip
        @Option(help: "Payload bytes per message (for the heading).") var size: Int = 64
        @Option(help: "Messages per batch (the batch path).") var batch: Int = 64
        @Option(help: "Callgrind output of the smaller run.") var small: String
        @Option(help: "Messages the smaller run passed.") var smallMessages: Int
        @Option(help: "Callgrind output of the larger run.") var large: String
        @Option(help: "Messages the larger run passed.") var largeMessages: Int
        @Option(help: "Functions listed.") var top: Int = 10

        func validate() throws {
            guard smallMessages > 0, largeMessages > smallMessages else {
                throw ValidationError("--large-messages must exceed --small-messages (> 0)")
            }
            guard top >= 0 else { throw ValidationError("--top: 0 or more") }
        }

        func run() throws {
            let result = try PerMessage(small: try CallgrindProfile(path: small), smallMessages: smallMessages,
                                        large: try CallgrindProfile(path: large), largeMessages: largeMessages)
            switch path {
            case .roundTrip:
                print("== round-trip: \(size) B unicast, a → b then b → a, each sent, received and released on one thread")
            case .batch:
                print("== batch: \(size) B, sendBatch of \(batch) a → b, each received and released, on one thread")
            }
            print("callgrind runs of \(smallMessages) and \(largeMessages) messages; per message = difference ÷ \(result.messages)")
            print("instructions/message: \(fixed(result.instructions))")
            switch path {
            case .roundTrip: print("instructions/round-trip: \(fixed(result.instructions * 2))")
            case .batch: print("instructions/batch: \(fixed(result.instructions * Double(batch)))")
            }
            print("syscalls/message: " + (result.syscalls.map { fixed($0, 3) } ?? "not collected"))
            print("vdso-calls/message: \(fixed(result.vdsoSyscalls, 3)) (clock_gettime & co.: no syscall natively, one under valgrind; not in syscalls/message)")
            print("once per run: \(fixed(result.constant, 0)) instructions (the smaller run less \(smallMessages) × instructions/message)")
            print("top \(top) functions by exclusive instructions/message (inclusive beside):")
            print(String(repeating: " ", count: 6) + "excl" + String(repeating: " ", count: 6) + "incl  function")
            for f in result.functions.prefix(top) {
                print(pad(fixed(f.exclusive), 10) + pad(fixed(f.inclusive), 10) + "  " + f.name)
            }
        }

        func pad(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: max(0, width - text.count)) + text
        }
    }
}
