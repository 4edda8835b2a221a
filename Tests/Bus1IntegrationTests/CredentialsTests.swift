import Bus1
import Bus1Core
import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import CBus1Wire
import Foundation
import Glibc
import Testing

/// "Who sent it": the coordinator stamps each peer's uid and pid (SO_PEERCRED) on
/// what it tells others, and lists published names with their owners. The other
/// peers are real processes (the test peer's `namer` role), so the pids checked
/// are those of other processes.
@Suite("Sender credentials and the name listing", .timeLimit(.minutes(10)))
struct CredentialsTests {
    /// A message from a child process carries the child's pid and uid; a handle
    /// to its node names it as the owner; notifications carry none.
    @Test("A message from another process carries that process's pid and uid")
    func messageFromAnotherProcess() throws {
        let bus = try BusFixture("creds-message")
        let peer = try bus.connect()
        let node = try peer.createNode()
        try peer.publish(node, as: "creds.sink")
        let child = try bus.peer("namer", ["names": "creds.child", "target": "creds.sink"])
        let expected = try Self.credentials(of: child)
        #expect(expected.uid == geteuid(), "the child runs as this test's user")

        let message = try peer.receive(timeout: .seconds(30))
        let kind = message.kind, stamped = message.senderCredentials, sender = message.sender
        let payload = message.copyPayload()
        #expect(kind == .data)
        #expect(payload == Array("hello".utf8))
        #expect(stamped == expected, "\(child.transcript)")
        #expect(sender == expected.peer)

        let handle = try peer.lookup("creds.child")
        #expect(peer.credentials(of: handle) == expected)
        #expect(peer.credentials == PeerCredentials(peer: peer.id, uid: geteuid(), pid: getpid()))
        #expect(peer.credentials(of: node) == peer.credentials)
        #expect(peer.credentials(of: Handle(id: 999_999)) == nil)

        // The child ends on a message; its node is destroyed and its handle to ours
        // released: the coordinator's notifications name no sender credentials.
        try [UInt8](repeating: 1, count: 1).withUnsafeBytes { try peer.send(copying: $0, to: handle) }
        #expect(child.finish(timeoutSeconds: 60) == .exited(0), "\(child.transcript)")
        for _ in 0..<2 {
            let note = try peer.receive(timeout: .seconds(30))
            let noteKind = note.kind, noteCredentials = note.senderCredentials
            #expect(noteKind == .nodeDestroyed || noteKind == .nodeReleased)
            #expect(noteCredentials == nil)
        }
        #expect(peer.credentials(of: handle) == expected, "a held handle to a destroyed node still names its owner")
    }

    /// Names of this process and of a child, listed sorted with the right owners
    /// and commands; the child's go when it disconnects.
    @Test("publishedNames() lists every peer's names, sorted, with owner and command")
    func listsNamesOfTwoPeers() throws {
        let bus = try BusFixture("creds-list")
        let peer = try bus.connect()
        try peer.publish(try peer.createNode(), as: "list.b")
        let child = try bus.peer("namer", ["names": "list.c,list.a"])
        let childCredentials = try Self.credentials(of: child)
        let childCommand = try Self.command(of: child.pid), ownCommand = try Self.command(of: getpid())
        #expect(childCommand == "bus1-test-peer")

        let names = try peer.publishedNames().map { "\($0.name) \($0.owner) \($0.command)" }
        #expect(names == [
            "list.a \(childCredentials) \(childCommand)",
            "list.b \(peer.credentials) \(ownCommand)",
            "list.c \(childCredentials) \(childCommand)",
        ])

        let handle = try peer.lookup("list.a")
        try [UInt8](repeating: 1, count: 1).withUnsafeBytes { try peer.send(copying: $0, to: handle) }
        #expect(child.finish(timeoutSeconds: 60) == .exited(0), "\(child.transcript)")
        // The coordinator serves the hang-up asynchronously: wait until it has.
        #expect(try waitUntil(timeoutSeconds: 10) { try peer.publishedNames().map(\.name) == ["list.b"] })
    }

    /// More names than one NAMES reply holds: the client pages after the last
    /// name it got until none remain.
    @Test("publishedNames() pages through more names than fit in one reply")
    func pagesThroughManyNames() throws {
        let bus = try BusFixture("creds-pages")
        let peer = try bus.connect()
        let count = 3 * Int(BUS1_NAME_LIST_MAX) + 3
        let sorted = (0..<count).map { "page.\(String(repeating: "x", count: $0 % 3)).\(1000 + $0)" }.sorted()
        for name in sorted.reversed() { try peer.publish(try peer.createNode(), as: name) }
        let names = try peer.publishedNames()
        #expect(names.map(\.name) == sorted)
        #expect(names.allSatisfy { $0.owner == peer.credentials })
        // A page boundary that falls on a name withdrawn meanwhile still moves on.
        try peer.destroy([try peer.lookup(sorted[Int(BUS1_NAME_LIST_MAX) - 1])])
        #expect(try peer.publishedNames().map(\.name) == sorted.filter { $0 != sorted[Int(BUS1_NAME_LIST_MAX) - 1] })
    }

    /// NAME_LIST datagrams that are malformed get BUS1_ERR_PROTOCOL, one sent
    /// before HELLO a state refusal, and the coordinator goes on serving.
    @Test("Malformed NAME_LIST requests are refused and the coordinator keeps serving")
    func malformedNameListRefused() throws {
        let bus = try BusFixture("creds-garbage")
        let raw = try RawControlConnection(address: bus.address)
        let first = ControlMessage.nameList(after: nil).encode(requestID: 1)
        var tooLong = first; tooLong[16] = 0x2C; tooLong[17] = 1      // after_length 300
        var strayCursor = first; strayCursor[20] = UInt8(ascii: "x")  // "from the first" with a cursor byte
        var reserved = first; reserved[276] = 1
        var notUTF8 = ControlMessage.nameList(after: "ab").encode(requestID: 1); notUTF8[21] = 0xFF
        var short = Array(first.dropLast(8)); short[8] = UInt8(truncatingIfNeeded: short.count); short[9] = UInt8(short.count >> 8)
        for datagram in [tooLong, strayCursor, reserved, notUTF8, short] {
            #expect(try raw.ask(datagram: datagram).reply == .refused(.protocolError))
        }
        #expect(try raw.ask(.nameList(after: nil), id: 2).reply == .refused(.invalidState), "NAME_LIST needs a finished handshake")
        #expect(bus.coordinator.protocolErrors >= 5)

        let peer = try bus.connect()
        try peer.publish(try peer.createNode(), as: "still.serving")
        #expect(try peer.publishedNames().map(\.name) == ["still.serving"])
    }

    /// A `namer` child's credentials, from its READY line (peer id, uid) and its pid.
    private static func credentials(of child: ChildProcess) throws -> PeerCredentials {
        let ready = try #require(child.awaitLine(prefix: "READY", timeoutSeconds: 60), "\(child.transcript)")
        #expect(numberField(ready, "pid") == UInt64(child.pid), "\(child.transcript)")
        return PeerCredentials(peer: try #require(numberField(ready, "peer")), uid: UInt32(try #require(numberField(ready, "uid"))),
                               pid: child.pid)
    }

    /// `/proc/<pid>/comm` without its newline, read here independently of the coordinator.
    private static func command(of pid: Int32) throws -> String {
        let comm = try String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)
        return comm.hasSuffix("\n") ? String(comm.dropLast()) : comm
    }
}
