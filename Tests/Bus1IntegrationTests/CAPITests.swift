import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// libbus1 and bus1.h as a C programmer uses them: C programs compiled here
/// with the toolchain's clang against the header and `libbus1.so` of each build,
/// run as real processes on a live `bus1d`, beside Swift peers in this process.
@Suite("C API (libbus1, bus1.h)", .timeLimit(.minutes(5)))
struct CAPITests {
    @Test("The C example's consumer gets a Swift producer's messages, and a Swift consumer the C producer's, byte for byte",
          .enabled(if: CProgram.clang != nil, "no clang on PATH"), arguments: CProgram.builtLibraries)
    func exampleBothWays(build: ToolBuild) throws {
        let example = try CProgram.compile("Tools/bus1-c-example/bus1-c-example.c", build: build)
        let daemon = try LiveDaemon("capi", build)
        let count = 2000
        // Swift → C.
        let consumer = try ChildProcess(example, ["consumer", "capi.c", "\(count)"], environment: ["BUS1_ADDRESS": daemon.address],
                                        mergeStandardError: true)
        #expect(consumer.awaitLine(prefix: "READY") != nil, "\(consumer.transcript)")
        let producer = try daemon.connect()
        let target = try producer.lookup("capi.c")
        for i in 0..<count { try producer.send(copying: CProgram.message(i), to: target, wait: .park) }
        #expect(consumer.finish() == .exited(0) && consumer.lines.contains("OK received=\(count)"), "\(consumer.transcript)")
        // C → Swift.
        let swiftConsumer = try daemon.connect()
        try swiftConsumer.publish(try swiftConsumer.createNode(), as: "capi.swift")
        let cProducer = try ChildProcess(example, ["producer", "capi.swift", "\(count)"], environment: ["BUS1_ADDRESS": daemon.address],
                                         mergeStandardError: true)
        var received = 0
        while received < count {
            let message = try swiftConsumer.receive(timeout: .seconds(60))
            guard message.kind == .data else { continue }
            #expect(message.copyPayload() == CProgram.message(received), "message \(received)")
            #expect(message.senderCredentials?.pid == cProducer.pid)
            received += 1
        }
        #expect(cProducer.finish() == .exited(0) && cProducer.lines.contains("OK sent=\(count)"), "\(cProducer.transcript)")
    }

    @Test("Every function of bus1.h refuses NULL, a disconnected peer, unknown handles and sizes out of range with its error code",
          .enabled(if: CProgram.clang != nil, "no clang on PATH"), arguments: CProgram.builtLibraries)
    func badArguments(build: ToolBuild) throws {
        // The program must call every function the header declares.
        let header = try CProgram.source("Sources/CBus1API/include/bus1.h")
        let program = try CProgram.source("Tests/CAPI/bad_arguments.c")
        let functions = CProgram.declaredFunctions(header)
        #expect(functions.count == 53, "bus1.h declares \(functions.count) functions: \(functions)")
        for function in functions { #expect(program.contains(function + "("), "bad_arguments.c never calls \(function)") }
        let binary = try CProgram.compile("Tests/CAPI/bad_arguments.c", build: build)
        let daemon = try LiveDaemon("capi-bad", build)
        let run = try ChildProcess(binary, [], environment: ["BUS1_ADDRESS": daemon.address], mergeStandardError: true)
        #expect(run.finish() == .exited(0), "\(run.transcript)")
        #expect(run.lines.last?.hasPrefix("OK checks=") == true, "\(run.transcript)")
    }
}

/// Compiling and describing the C programs of the tests.
enum CProgram {
    /// The package's root directory (this file is Tests/Bus1IntegrationTests/CAPITests.swift).
    static let root: String = {
        var path = "\(#filePath)"
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()

    /// The toolchain's clang (Swift ships one), if it is on PATH.
    static let clang: String? = {
        for directory in (getenv("PATH").map { String(cString: $0) } ?? "").split(separator: ":") {
            let candidate = "\(directory)/clang"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }()

    /// The builds whose libbus1.so exists (`swift build --product bus1`, and
    /// `-c release`; Scripts/test.sh builds both).
    static var builtLibraries: [ToolBuild] {
        ToolBuild.allCases.filter { access($0.path("libbus1.so"), R_OK) == 0 }
    }

    static func source(_ relative: String) throws -> String {
        let fd = open("\(root)/\(relative)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LinuxError("open \(relative)", code: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while case let n = read(fd, &chunk, chunk.count), n > 0 { bytes += chunk[..<n] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The names of the functions a header declares (`bus1_...(` at the start of a declaration).
    static func declaredFunctions(_ header: String) -> [String] {
        header.split(separator: "\n").compactMap { line -> String? in
            guard let first = line.first, first.isLetter, !line.hasPrefix("typedef"), !line.hasPrefix("#"),
                  let open = line.firstIndex(of: "(") else { return nil }
            let name = line[..<open].split(whereSeparator: { $0 == " " || $0 == "*" }).last.map(String.init)
            return name?.hasPrefix("bus1_") == true ? name : nil
        }
    }

    /// Compiles `relative` (C11, every warning an error) against bus1.h and
    /// `build`'s libbus1.so; returns the binary's path.
    static func compile(_ relative: String, build: ToolBuild) throws -> String {
        var template = Array("/tmp/bus1-capi-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw LinuxError("mkdtemp", code: errno) }
        let output = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/program"
        let compiler = try ChildProcess(clang!, ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", "\(root)/Sources/CBus1API/include",
                                                 "\(root)/\(relative)", "-L", build.directory, "-lbus1",
                                                 "-Wl,-rpath,\(build.directory)", "-o", output], mergeStandardError: true)
        try #require(compiler.finish() == .exited(0), "\(compiler.transcript)")
        return output
    }

    /// Message `i` of the C example: `i` as a little-endian UInt64, then bytes (i + k) & 0xff.
    static func message(_ i: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt64(i).littleEndian) { Array($0) } + (8..<64).map { UInt8(truncatingIfNeeded: i + $0) }
    }
}
