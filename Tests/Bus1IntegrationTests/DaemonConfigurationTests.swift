import Bus1
import Bus1Coordinator
import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// `bus1d`'s configuration file against the built binary: defaults < file <
/// flags, strict keys, errors naming the key and its line.
@Suite("bus1d configuration file", .timeLimit(.minutes(10)))
struct DaemonConfigurationTests {
    /// Writes `text` to a fresh file and returns its path.
    static func file(_ label: String, _ text: String) -> String {
        let path = freshSocketPath(label).dropLast(3) + "bus1d.toml"
        let fd = open(String(path), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0)
        let bytes = Array(text.utf8)
        precondition(write(fd, bytes, bytes.count) == bytes.count)
        close(fd)
        return String(path)
    }

    /// `bus1d --print-config` with `arguments`, as `key = value` pairs ("limits.pool-size" for sections).
    static func effective(_ arguments: [String]) throws -> [String: String] {
        let process = try ChildProcess("bus1d", arguments + ["--print-config"], mergeStandardError: true)
        #expect(process.finish(timeoutSeconds: 60) == .exited(0), "\(process.transcript)")
        var section = "", values: [String: String] = [:]
        for line in process.lines where !line.hasPrefix("#") && !line.isEmpty {
            if line.hasPrefix("[") { section = String(line.dropFirst().dropLast()) + "."; continue }
            let parts = line.split(separator: " = ", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[section + parts[0]] = parts[1] }
        }
        return values
    }

    static let example = """
        # a user bus
        ordering = "fifo"
        log-level = "debug"

        [limits]
        pool-size = 131072
        max-nodes = 12
        ring-capacity = 64

        [policy]
        allow-uid = [1000, 1001]
        names = "any-allowed-uid"
        """

    @Test("A file sets values, a flag overrides the file, and what is not set keeps CoordinatorConfiguration's default")
    func precedence() throws {
        let path = Self.file("config-values", Self.example)
        let defaults = CoordinatorConfiguration(address: "")
        let values = try Self.effective(["--config", path, "--max-nodes", "99", "--allow-uid", "7"])
        #expect(values["ordering"] == "\"fifo\"")
        #expect(values["log-level"] == "\"debug\"")
        #expect(values["limits.pool-size"] == "131072")
        #expect(values["limits.ring-capacity"] == "64")
        #expect(values["limits.max-nodes"] == "99", "the flag wins over the file")
        #expect(values["limits.max-handles"] == "\(defaults.maximumHandlesPerPeer)")
        #expect(values["policy.allow-uid"] == "[7]", "the flag's list replaces the file's")
        #expect(values["policy.names"] == "\"any-allowed-uid\"")
    }

    @Test("The daemon serves with the file's settings: its address, FIFO ordering and pool size reach a peer")
    func servesFileSettings() throws {
        let socket = freshSocketPath("config-serve")
        let path = Self.file("config-serve", "address = \"\(socket)\"\n" + Self.example)
        let daemon = try ChildProcess("bus1d", ["--config", path], mergeStandardError: true)
        #expect(waitForSocket(socket))
        var options = PeerOptions(address: socket)
        options.waitMode = .park
        let peer = try Peer.connect(options: options)
        #expect(peer.ordering == .fifo)
        #expect(peer.maximumPayload <= 131072)
        daemon.signal(SIGTERM)
        #expect(daemon.finish(timeoutSeconds: 60) == .exited(0), "\(daemon.transcript)")
    }

    @Test("Unknown keys, wrong types and out-of-range values are refused, naming the key and its line",
          arguments: [
            ("[limits]\npool-siz = 65536\n", "bus1d.toml:2: unknown key limits.pool-siz"),
            ("pool-size = 65536\n", "bus1d.toml:1: unknown key pool-size (did you mean limits.pool-size?)"),
            ("[limtis]\n", "bus1d.toml:1: unknown key limtis"),
            ("\n[limits]\nring-capacity = \"big\"\n", "bus1d.toml:3: limits.ring-capacity must be an integer"),
            ("ordering = \"random\"\n", "bus1d.toml:1: ordering must be one of \"global\", \"fifo\""),
            ("[policy]\nallow-uid = [-1]\n", "bus1d.toml:2: policy.allow-uid must be an array of uids"),
            ("[limits]\n\n\nring-capacity = 3\n", "bus1d.toml:4: ring-capacity 3 is not allowed: must be a power of two in 2...65536"),
            ("[limits\n", "bus1d.toml:1: "),
          ])
    func refusals(text: String, message: String) throws {
        let path = Self.file("config-bad", text)
        let process = try ChildProcess("bus1d", ["--config", path, "--print-config"], mergeStandardError: true)
        #expect(process.finish(timeoutSeconds: 60) == .exited(2), "\(process.transcript)")
        #expect(process.lines.contains { $0.hasPrefix("bus1d: \(path.dropLast(10))") && $0.contains(message) }, "\(process.transcript)")
    }

    @Test("A flag fixes a value the file got wrong; a file named with --config must exist")
    func flagRescuesAndMissingFile() throws {
        let path = Self.file("config-rescue", "[limits]\nring-capacity = 3\n")
        #expect(try Self.effective(["--config", path, "--ring-capacity", "8"])["limits.ring-capacity"] == "8")
        let missing = try ChildProcess("bus1d", ["--config", path + ".missing"], mergeStandardError: true)
        #expect(missing.finish(timeoutSeconds: 60) == .exited(2), "\(missing.transcript)")
        #expect(missing.lines.contains { $0.contains("bus1d.toml.missing: cannot open") }, "\(missing.transcript)")
    }
}
