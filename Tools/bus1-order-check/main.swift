// bus1-order-check: proves (or refutes) Bus1's ordering guarantee with real processes.
//
// S sender processes send random unicasts and multicasts to R receiver processes.
// Senders form a ring of pipes (a side channel outside the bus): now and then sender j
// tells sender j+1 "I have sent seq s"; j+1's next message then depends on (j, s).
// Each receiver records what it saw; the parent then checks:
//   1. per-sender FIFO at every receiver;
//   2. every two receivers see their common messages in the same relative order;
//   3. causality: a message that depends on (j, s) is delivered after every message of
//      j with seq <= s that the receiver gets at all.
// It prints the counts and exits 1 on any violation.
import ArgumentParser
import Bus1
import Bus1Coordinator
import Bus1Linux
import Glibc
import Logging

@main
struct OrderCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1-order-check",
        abstract: "Run senders and receivers as processes and verify FIFO, common order and causality.",
        version: Bus1Version.string)

    @Option(help: "Sender processes.") var senders: Int = 4
    @Option(help: "Receiver processes.") var receivers: Int = 4
    @Option(help: "Messages in total (split between the senders).") var messages: Int = 100_000
    @Option(help: "Wait mode: busy, park or spin.") var mode: WaitMode = .default
    @Option(help: "Bus ordering: global or fifo (fifo must show violations).") var ordering: BusOrdering = .global
    @Option(help: "Percentage of sends that are multicasts.") var multicastPercent: Int = 30
    @Option(help: "Receiver stall timeout in ms (a descheduled sender is not a dead one).") var stallTimeoutMs: Int = 5000
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: .hidden) var role: String = "parent"
    @Option(help: .hidden) var index: Int = 0
    @Option(help: .hidden) var address: String = ""
    @Option(help: .hidden) var logDirectory: String = ""

    /// Refuses nonsense at start, before any process is spawned.
    func validate() throws {
        guard (1...64).contains(senders), (1...64).contains(receivers) else { throw ValidationError("--senders and --receivers: 1 ... 64") }
        // A sender's seq is a UInt32 below the two markers (stop, none).
        guard messages >= 1, messages / senders < Int(Self.stopSeq) else {
            throw ValidationError("--messages: 1 ... \(Int(Self.stopSeq) - 1) per sender")
        }
        guard (0...100).contains(multicastPercent) else { throw ValidationError("--multicast-percent: 0 ... 100") }
        guard (1...3_600_000).contains(stallTimeoutMs) else { throw ValidationError("--stall-timeout-ms: 1 ... 3600000 (one hour)") }
        switch role {
        case "parent": break
        case "sender", "receiver":
            guard (0..<(role == "sender" ? senders : receivers)).contains(index), !address.isEmpty, !logDirectory.isEmpty else {
                throw ValidationError("a \(role) needs --index, --address and --log-directory from its parent")
            }
        default: throw ValidationError("--role: parent, sender or receiver")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        switch role {
        case "sender": try runSender()
        case "receiver": try runReceiver()
        default: try runParent()
        }
    }

    func connect() throws -> Peer {
        var options = PeerOptions(address: address)
        options.waitMode = mode
        options.orderingStallTimeout = .milliseconds(stallTimeoutMs)
        return try Peer.connect(options: options)
    }

    // MARK: Payload: sender, seq, dependency sender, dependency seq (UInt32 each; 0xFFFFFFFF: none)

    static let none = UInt32.max
    static let stopSeq = UInt32.max - 1

    // MARK: Sender

    func runSender() throws {
        let peer = try connect()
        var targets: [Handle] = []
        for r in 0..<receivers { targets.append(try peer.lookup("order.r\(r)", timeout: .seconds(20))) }
        // fd 3: read end of the pipe from the previous sender; fd 4: write end to the next.
        // Both non-blocking: a token is only a causal edge to test, so when the next
        // sender has stopped reading (it finished, or is waiting for its last slices)
        // a full pipe drops it rather than stalling this sender; a next sender that
        // has exited is EPIPE (the pipes are close-on-exec, so nobody else holds its
        // read end open).
        _ = fcntl(3, F_SETFL, O_NONBLOCK)
        _ = fcntl(4, F_SETFL, O_NONBLOCK)
        var rng = SplitMix(seed: seed &* 1_000_003 &+ UInt64(index))
        let count = messages / senders + (index < messages % senders ? 1 : 0)
        var dependency: (UInt32, UInt32) = (Self.none, Self.none)
        for seq in 0..<count {
            var token = (UInt32(0), UInt32(0))
            while read(3, &token, 8) == 8 { dependency = token }  // the newest wins
            let destinations: [Handle]
            if receivers > 1 && Int(rng.next() % 100) < multicastPercent {
                var chosen = targets.filter { _ in rng.next() % 2 == 0 }
                if chosen.count < 2 { chosen = Array(targets.shuffled(using: &rng).prefix(2)) }
                destinations = chosen
            } else {
                destinations = [targets[Int(rng.next() % UInt64(receivers))]]
            }
            try send(peer, [UInt32(index), UInt32(seq), dependency.0, dependency.1], to: destinations)
            dependency = (Self.none, Self.none)
            if rng.next() % 8 == 0 {  // tell the next sender what we have sent
                var out = (UInt32(index), UInt32(seq))
                _ = write(4, &out, 8)
            }
        }
        try send(peer, [UInt32(index), Self.stopSeq, Self.none, Self.none], to: targets)
        for _ in 0..<200_000 where peer.currentStatistics.slicesInUse > 0 {
            try peer.reclaimCompleted()
            usleep(100)
        }
    }

    func send(_ peer: Peer, _ words: [UInt32], to destinations: [Handle]) throws {
        var loan = try peer.loan(16, for: destinations, wait: mode)
        for (i, w) in words.enumerated() { loan.storeBytes(of: w, toByteOffset: i * 4, as: UInt32.self) }
        try peer.send(loan, to: destinations, wait: mode)
    }

    // MARK: Receiver

    func runReceiver() throws {
        let peer = try connect()
        let node = try peer.createNode()
        try peer.publish(node, as: "order.r\(index)")
        print("READY")
        fflush(nil)
        var log: [UInt64] = []  // sender << 32 | seq, in delivery order
        var dependencies: [UInt64] = []  // parallel: dependency (sender << 32 | seq) or .max
        var stopped = 0
        while stopped < senders {
            let message = try peer.receive(timeout: .seconds(600))
            guard message.kind == .data else { continue }  // a notification (a node released or destroyed)
            guard message.payload.count == 16 else { throw ValidationError("bad payload size") }
            let sender = message.payload.bytes.unsafeLoad(fromByteOffset: 0, as: UInt32.self)
            let seq = message.payload.bytes.unsafeLoad(fromByteOffset: 4, as: UInt32.self)
            if seq == Self.stopSeq { stopped += 1; continue }
            let depSender = message.payload.bytes.unsafeLoad(fromByteOffset: 8, as: UInt32.self)
            let depSeq = message.payload.bytes.unsafeLoad(fromByteOffset: 12, as: UInt32.self)
            log.append(UInt64(sender) << 32 | UInt64(seq))
            dependencies.append(depSender == Self.none ? .max : UInt64(depSender) << 32 | UInt64(depSeq))
        }
        let stats = peer.currentStatistics
        let path = "\(logDirectory)/r\(index)"
        guard let file = fopen(path, "wxe") else { throw LinuxError("fopen \(path)", code: errno) }
        for (entry, dep) in zip(log, dependencies) {
            var pair = (entry, dep)
            fwrite(&pair, 16, 1, file)
        }
        fclose(file)
        print("DONE received=\(log.count) stalls=\(stats.orderingStalls)")
    }

    // MARK: Parent

    /// Runs the check: a private bus, the receivers (each publishes its node),
    /// then the senders; once every child has exited, the three checks over the
    /// receivers' logs. Exits 2 if a child failed, 1 on any violation.
    func runParent() throws {
        Self.logErrorsOnly()
        let bus = try EmbeddedCoordinator.onPrivateSocket(named: "order") { [ordering] in $0.ordering = ordering }
        defer { bus.stop() }
        let logs = try Self.makeLogDirectory()
        defer {
            for r in 0..<receivers { unlink("\(logs)/r\(r)") }
            rmdir(logs)
        }
        let common = childArguments(address: bus.address, logDirectory: logs)
        let started = monotonicNanoseconds()
        let (receiverPIDs, outputs) = try spawnReceivers(common)
        let senderPIDs = try spawnSenders(common)
        let failed = Self.reapFailed(receiverPIDs + senderPIDs)
        let stalls = Self.stallsReported(outputs)
        let elapsed = Double(monotonicNanoseconds() - started) / 1e9
        guard !failed else { throw ExitCode(2) }
        let result = Verifier.verify(try readLogs(logs))
        printReport(result, stalls: stalls, elapsed: elapsed)
        if result.total > 0 { throw ExitCode(1) }
    }

    /// Only errors of the embedded coordinator reach stderr: the report is the output.
    static func logErrorsOnly() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
    }

    /// A fresh directory under /tmp for the receivers' delivery logs.
    static func makeLogDirectory() throws -> String {
        var template = Array("/tmp/bus1-order-logs-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw LinuxError("mkdtemp", code: errno) }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The arguments every child gets: the bus, this run's settings and the log directory.
    func childArguments(address: String, logDirectory: String) -> [String] {
        ["--address", address, "--senders", "\(senders)", "--receivers", "\(receivers)", "--messages", "\(messages)",
         "--mode", mode.argument, "--multicast-percent", "\(multicastPercent)", "--stall-timeout-ms", "\(stallTimeoutMs)",
         "--seed", "\(seed)", "--log-directory", logDirectory]
    }

    /// Spawns the receivers, each with its stdout on a pipe, and waits until every
    /// one has published its node (the first byte of its "READY"). Returns their
    /// pids and the pipes' read ends, which later carry their "DONE" lines.
    func spawnReceivers(_ common: [String]) throws -> (pids: [pid_t], outputs: [Int32]) {
        var pids: [pid_t] = []
        var outputs: [Int32] = []
        for r in 0..<receivers {
            let ready = try ChildDescriptors.pipe()
            defer { close(ready.write) }
            outputs.append(ready.read)
            pids.append(try spawn(common + ["--role", "receiver", "--index", "\(r)"], descriptors: [1: ready.write]))
        }
        for fd in outputs {
            var byte: UInt8 = 0
            _ = read(fd, &byte, 1)
        }
        return (pids, outputs)
    }

    /// Spawns the senders on the side-channel ring: pipe j carries sender j -> sender j+1.
    /// Close-on-exec, so each sender holds only its own two ends: were the read
    /// ends inherited by every later child, a sender writing to a neighbour that
    /// had exited would never get EPIPE (long runs hung that way).
    func spawnSenders(_ common: [String]) throws -> [pid_t] {
        var ring: [(read: Int32, write: Int32)] = []
        for _ in 0..<senders { ring.append(try ChildDescriptors.pipe()) }
        var pids: [pid_t] = []
        for s in 0..<senders {
            let previous = ring[(s + senders - 1) % senders].read, next = ring[s].write
            pids.append(try spawn(common + ["--role", "sender", "--index", "\(s)"], descriptors: [3: previous, 4: next]))
        }
        for (r, w) in ring { close(r); close(w) }
        return pids
    }

    /// Waits for every child; prints each that did not exit 0 and returns whether any did not.
    static func reapFailed(_ children: [pid_t]) -> Bool {
        var failed = false
        for pid in children {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            if ExitStatus(waitStatus: status) != .exited(0) { failed = true; print("child \(pid): \(ExitStatus(waitStatus: status))") }
        }
        return failed
    }

    /// The ordering stalls the receivers report on their "DONE" lines, added up;
    /// closes their output pipes.
    static func stallsReported(_ outputs: [Int32]) -> Int {
        var output = [UInt8](repeating: 0, count: 4096)
        var stalls = 0
        for fd in outputs {
            let n = read(fd, &output, output.count)
            if n > 0, let line = String(decoding: output[..<n], as: UTF8.self).split(separator: "\n").last(where: { $0.hasPrefix("DONE") }),
               let s = line.split(separator: " ").first(where: { $0.hasPrefix("stalls=") }) { stalls += Int(s.dropFirst(7)) ?? 0 }
            close(fd)
        }
        return stalls
    }

    /// Every receiver's delivery log as it wrote it: (sender << 32 | seq, dependency) pairs.
    func readLogs(_ directory: String) throws -> [[(id: UInt64, dep: UInt64)]] {
        var logsByReceiver: [[(id: UInt64, dep: UInt64)]] = []
        for r in 0..<receivers {
            guard let file = fopen("\(directory)/r\(r)", "re") else { throw LinuxError("fopen", code: errno) }
            var entries: [(UInt64, UInt64)] = []
            var pair = (UInt64(0), UInt64(0))
            while fread(&pair, 16, 1, file) == 1 { entries.append(pair) }
            fclose(file)
            logsByReceiver.append(entries)
        }
        return logsByReceiver
    }

    /// The three report lines: the run's settings and time, what was checked, the violations.
    func printReport(_ result: Verifier.Result, stalls: Int, elapsed: Double) {
        print("bus1-order-check: \(senders) senders, \(receivers) receivers, \(messages) sends (\(multicastPercent)% multicast), "
              + "ordering \(ordering.rawValue), mode \(mode.argument), seed \(seed), \(Int(elapsed * 1000)) ms")
        print("  deliveries checked: \(result.deliveries); receiver pairs compared: \(result.pairs); ordering stalls: \(stalls)")
        print("  violations: fifo \(result.fifo), common-order \(result.commonOrder), causality \(result.causality)")
    }

    /// Spawns this executable with `arguments`; `descriptors` maps child fd numbers
    /// to the parent's fds.
    func spawn(_ arguments: [String], descriptors: [Int32: Int32]) throws -> pid_t {
        try spawnProcess("/proc/self/exe", arguments, descriptors: descriptors)
    }
}

/// The three checks over every receiver's delivery log.
enum Verifier {
    struct Result {
        var deliveries = 0, pairs = 0, fifo = 0, commonOrder = 0, causality = 0
        var total: Int { fifo + commonOrder + causality }
    }

    static func verify(_ logs: [[(id: UInt64, dep: UInt64)]]) -> Result {
        var result = Result()
        for log in logs {
            result.deliveries += log.count
            var lastSeq: [UInt64: UInt64] = [:]  // per sender
            var floor: [UInt64: UInt64] = [:]  // per sender: deliveries from it must now exceed this seq
            for (id, dep) in log {
                let sender = id >> 32, seq = id & 0xFFFF_FFFF
                if let last = lastSeq[sender], seq <= last { result.fifo += 1 }
                lastSeq[sender] = seq
                if let f = floor[sender], seq <= f { result.causality += 1 }
                if dep != .max {
                    let depSender = dep >> 32, depSeq = dep & 0xFFFF_FFFF
                    floor[depSender] = max(floor[depSender] ?? 0, depSeq)
                }
            }
        }
        // Common relative order, pairwise.
        for a in 0..<logs.count {
            for b in (a + 1)..<logs.count {
                result.pairs += 1
                var position: [UInt64: Int] = [:]
                for (i, entry) in logs[b].enumerated() { position[entry.id] = i }
                var last = -1
                for entry in logs[a] {
                    guard let p = position[entry.id] else { continue }
                    if p < last { result.commonOrder += 1 }
                    last = max(last, p)
                }
            }
        }
        return result
    }
}

/// A small seeded generator (SplitMix64).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `--mode` takes the wait modes by their command-line names (`WaitMode.argumentNames`).
extension WaitMode: ExpressibleByArgument {
    public var defaultValueDescription: String { argument }
}
extension BusOrdering: ExpressibleByArgument {}
