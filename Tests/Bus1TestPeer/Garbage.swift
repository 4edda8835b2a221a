import Bus1
import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// The `garbage` role: `[address=]` (else `BUS1_ADDRESS`). Sends malformed
/// control datagrams to the coordinator on a raw socket (short, bad magic, bad
/// version, unknown type, size mismatch, trailing bytes, a reply type, an empty
/// name, an unexpected fd), printing "REFUSED <what>" for each that got
/// `BUS1_ERR_PROTOCOL`; then connects as a real peer, publishes a node and prints "OK".
///
/// Driven by HostileTests "Malformed control messages" and DaemonTests "Replaces a stale socket file".
@MainActor
func runGarbage() {
    let address = settings["address"] ?? Peer.defaultAddress()
    let socket: Int32  // a raw number: the nested function below captures it
    do { socket = try SeqPacket.connect(path: address).release() } catch { fail("connect: \(error)") }
    var buffer = [UInt8](repeating: 0, count: 1024)
    func expectProtocolError(_ datagram: [UInt8], fds: [Int32] = [], _ what: String) {
        do { try SeqPacket.send(socket, datagram, fds: fds) } catch { fail("send \(what): \(error)") }
        let reply = buffer.withUnsafeMutableBytes { raw -> ControlMessage? in
            guard let d = try? SeqPacket.receive(socket, into: raw) else { return nil }
            return try? ControlMessage.decode(UnsafeRawBufferPointer(rebasing: raw[..<d.count]), descriptorCount: d.fds.count).message
        }
        guard reply == .error(code: BUS1_ERR_PROTOCOL.rawValue, detail: 0) else { fail("\(what): got \(String(describing: reply))") }
        say("REFUSED \(what)")
    }
    var valid = ControlMessage.nodeCreate.encode(requestID: 9)
    expectProtocolError([1, 2, 3], "short datagram")
    var badMagic = valid; badMagic[0] ^= 0xFF
    expectProtocolError(badMagic, "bad magic")
    var badVersion = valid; badVersion[4] = 99
    expectProtocolError(badVersion, "bad version")
    var badType = valid; badType[6] = 200
    expectProtocolError(badType, "unknown type")
    var badSize = valid; badSize[8] = 200
    expectProtocolError(badSize, "size mismatch")
    valid.append(contentsOf: [0, 0, 0, 0])
    expectProtocolError(valid, "trailing bytes")
    expectProtocolError(ControlMessage.ok.encode(requestID: 5), "reply type sent by a peer")
    var name = ControlMessage.nameLookup(name: "x").encode(requestID: 6)
    name[24] = 0  // length field = 0
    expectProtocolError(name, "empty name")
    expectProtocolError(ControlMessage.nodeCreate.encode(requestID: 7), fds: [1], "unexpected fd")
    // The same bus still serves a well-behaved peer.
    let peer = connect()
    let node: Handle
    do { node = try peer.createNode() } catch { fail("createNode after garbage: \(error)") }
    do { try peer.publish(node, as: "garbage-survivor-\(peer.id)") } catch { fail("publish after garbage: \(error)") }
    say("OK")
}
