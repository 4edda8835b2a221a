import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// The systemd units shipped in `Tools/bus1d/systemd/` pass `systemd-analyze
/// verify` (system and user), with `ExecStart=` pointed at the built `bus1d`
/// (verify insists the binary exists).
@Suite("bus1d systemd units", .timeLimit(.minutes(10)))
struct UnitFileTests {
    static let analyze = "/usr/bin/systemd-analyze"
    /// `Tools/bus1d/systemd` of this checkout, found from this file's path.
    static let unitDirectory: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/Bus1IntegrationTests/UnitFileTests.swift
        return parts.joined(separator: "/") + "/Tools/bus1d/systemd"
    }()

    static func contents(of path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LinuxError("open \(path)", code: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 4096)
        while case let n = read(fd, &chunk, chunk.count), n > 0 { bytes += chunk[..<n] }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LinuxError("open \(path)", code: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw LinuxError("write \(path)", code: errno) }
    }

    @Test("systemd-analyze verify accepts the system and the user units",
          .enabled(if: access(analyze, X_OK) == 0, "needs \(analyze) (Debian package systemd)"),
          arguments: ["", "user"])
    func verify(flavour: String) throws {
        let directory = String(freshSocketPath("units-\(flavour.isEmpty ? "system" : flavour)").dropLast(4))
        let runtime = directory + "/runtime"
        #expect(mkdir(runtime, 0o700) == 0)
        var units: [String] = []
        for name in ["bus1.socket", "bus1.service"] {
            let source = Self.unitDirectory + (flavour.isEmpty ? "" : "/\(flavour)") + "/" + name
            let text = try Self.contents(of: source)
            #expect(text.contains("ExecStart=/usr/local/bin/bus1d") || name.hasSuffix(".socket"), "\(source)")
            try Self.write(text.replacing("/usr/local/bin/bus1d", with: ChildProcess.buildDirectory + "/bus1d"), to: directory + "/" + name)
            units.append(directory + "/" + name)
        }
        let verify = try ChildProcess(Self.analyze, (flavour.isEmpty ? [] : ["--user"]) + ["verify"] + units,
                                      environment: ["XDG_RUNTIME_DIR": runtime, "SYSTEMD_LOG_LEVEL": "notice"], mergeStandardError: true)
        #expect(verify.finish(timeoutSeconds: 90) == .exited(0), "\(verify.transcript)")
        #expect(verify.lines.allSatisfy { $0.isEmpty }, "\(verify.transcript)")
    }
}
