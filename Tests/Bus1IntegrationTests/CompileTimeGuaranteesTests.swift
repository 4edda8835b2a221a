import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Glibc
import Testing

/// What the type system promises users, checked by the compiler itself: snippets
/// that use Bus1 are type-checked against this build's modules, and the ones that
/// would dangle or race must be refused (and the honest ones accepted, so a broken
/// harness cannot pass).
@Suite("Compile-time guarantees", .timeLimit(.minutes(10)))
struct CompileTimeGuaranteesTests {
    /// Compiles `source` to SIL against the debug build's Bus1 module (SIL, not only
    /// type checking: data-race safety is diagnosed on SIL); the exit status and
    /// the compiler's output.
    static func typecheck(_ source: String) throws -> (status: Bus1Linux.ExitStatus, output: String) {
        let root = String(#filePath.prefix(upTo: #filePath.range(of: "/Tests/")!.lowerBound))
        let build = ChildProcess.buildDirectory
        var template = Array("/tmp/bus1-typecheck-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + ".swift"
        rename(String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), path)
        defer { unlink(path) }
        _ = source.utf8.withContiguousStorageIfAvailable { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        var arguments = ["swiftc", "-emit-sil", "-o", "/dev/null", "-swift-version", "6", "-I", build + "/Modules"]
        for module in ["CBus1Wire", "CBus1Linux"] {
            arguments += ["-Xcc", "-fmodule-map-file=\(build)/\(module).build/module.modulemap",
                          "-Xcc", "-I", "-Xcc", "\(root)/Sources/\(module)/include"]
        }
        let compiler = try ChildProcess("/usr/bin/env", arguments + [path], mergeStandardError: true)
        let status = compiler.finish()
        return (status, compiler.lines.joined(separator: "\n"))
    }

    @Test("Honest uses compile: a borrowed payload read in place, an awaited message, a peer owned by an actor")
    func honestUsesCompile() throws {
        let (status, output) = try Self.typecheck("""
            import Bus1
            func firstByte(_ message: borrowing Message) -> UInt8? { message.payload.isEmpty ? nil : message.payload[0] }
            func next(_ peer: Peer) async throws -> Int { let message = try await peer.receive(); return message.payload.count }
            actor Service {
                let peer: Peer
                init(peer: sending Peer) { self.peer = peer }
                func serve() async throws { try await peer.forEachMessage { message in _ = message.copyPayload() } }
            }
            func start() throws -> Service { Service(peer: try Peer.connect()) }
            """)
        #expect(status == Bus1Linux.ExitStatus.exited(0), "\(output)")
    }

    @Test("A payload cannot outlive its message")
    func payloadCannotEscape() throws {
        let (status, output) = try Self.typecheck("""
            import Bus1
            func keep(_ message: borrowing Message) -> Span<UInt8> { message.payload }
            """)
        #expect(status != Bus1Linux.ExitStatus.exited(0), "returning the payload compiled: it would dangle once the message is dropped")
        #expect(output.contains("lifetime") || output.contains("escap") || output.contains("~Escapable"), "\(output)")
    }

    @Test("A loan's bytes cannot outlive the loan")
    func loanBytesCannotEscape() throws {
        let (status, output) = try Self.typecheck("""
            import Bus1
            func keep(_ loan: inout Loan) -> MutableSpan<UInt8> { loan.bytes }
            """)
        #expect(status != Bus1Linux.ExitStatus.exited(0), "returning a loan's bytes compiled: \(output)")
    }

    @Test("A peer handed to another task cannot be used by the one that handed it over")
    func peerUseAfterSendingIsRefused() throws {
        let (status, output) = try Self.typecheck("""
            import Bus1
            func race() throws {
                let peer = try Peer.connect()
                Task { _ = try? peer.tryReceive() }
                _ = try peer.tryReceive()
            }
            """)
        #expect(status != Bus1Linux.ExitStatus.exited(0), "a peer used from two tasks compiled")
        #expect(output.contains("data race"), "\(output)")
    }

    @Test("A message cannot cross to another actor without its peer")
    func messageStaysWithItsPeer() throws {
        let (status, output) = try Self.typecheck("""
            import Bus1
            actor Elsewhere { func take(_ message: consuming Message) {} }
            func leak(_ peer: Peer, to other: Elsewhere) async throws {
                let message = try await peer.receive()
                await other.take(message)
            }
            """)
        #expect(status != Bus1Linux.ExitStatus.exited(0), "a message crossed to another actor")
        #expect(output.contains("data race"), "\(output)")
    }
}
