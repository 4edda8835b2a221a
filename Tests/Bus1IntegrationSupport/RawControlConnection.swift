import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// A connection to a coordinator's control socket spoken by hand, one request and
/// its reply at a time: what an inspector, or a client that misbehaves on purpose,
/// does (no HELLO unless the test sends one).
package final class RawControlConnection {
    private let socket: FileDescriptor
    /// Larger than any datagram of the protocol (`BUS1_MSG_MAX`), so a reply that is
    /// too long still arrives whole and fails to decode.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * Int(BUS1_MSG_MAX), alignment: 8)

    package init(address: String) throws {
        socket = try SeqPacket.connect(path: address)
    }

    deinit { buffer.deallocate() }

    /// Sends `message` as request `id` and returns the reply, the request id it
    /// answers, and the descriptors it carried (the caller's to close).
    package func ask(_ message: ControlMessage, id: UInt32) throws -> (reply: ControlMessage, requestID: UInt32, descriptors: [Int32]) {
        try ask(datagram: message.encode(requestID: id))
    }

    /// ``ask(_:id:)`` with a datagram made by hand (a malformed one, say).
    package func ask(datagram bytes: [UInt8]) throws -> (reply: ControlMessage, requestID: UInt32, descriptors: [Int32]) {
        try SeqPacket.send(socket.rawValue, bytes)
        guard var datagram = try SeqPacket.receive(socket.rawValue, into: buffer) else { throw LinuxError("no reply", code: EIO) }
        let fds = datagram.takeDescriptors()
        do {
            let (reply, requestID) = try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[..<datagram.count]), descriptorCount: fds.count)
            return (reply, requestID, fds)
        } catch {
            for fd in fds { close(fd) }
            throw error
        }
    }

    /// ``ask(_:id:)`` for a reply whose descriptors do not matter: they are closed.
    package func askClosingDescriptors(_ message: ControlMessage, id: UInt32) throws -> (reply: ControlMessage, requestID: UInt32, descriptorCount: Int) {
        let (reply, requestID, fds) = try ask(message, id: id)
        for fd in fds { close(fd) }
        return (reply, requestID, fds.count)
    }
}
