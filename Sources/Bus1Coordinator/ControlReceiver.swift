import Bus1Core
import Bus1Linux
import CBus1Wire

/// Reads a peer's control datagrams, one at a time, into one buffer, and decodes
/// them. A datagram's fds belong to the request only if it decodes (only ATTACH
/// carries any, and the decoder checked their count); otherwise they close with it.
final class ControlReceiver {
    /// What one read from a peer's socket gave.
    enum Received {
        /// Nothing is queued.
        case nothing
        /// The peer hung up, or its socket failed: `reason` says which.
        case gone(reason: String)
        /// A datagram that is no valid request (answered with `BUS1_ERR_PROTOCOL`).
        case malformed(any Error)
        /// A request, and the fds it carried, now the coordinator's.
        case request(ControlMessage, requestID: UInt32, attached: [OwnedDescriptor])
    }

    /// One datagram; a byte larger than the largest valid one, so oversize shows as such.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(BUS1_MSG_MAX) + 1, alignment: 8)

    deinit { buffer.deallocate() }

    /// Reads and decodes the next datagram queued on `socket`, without blocking.
    func receive(from socket: Int32) -> Received {
        var datagram: SeqPacket.Datagram
        do {
            guard let received = try SeqPacket.receive(socket, into: buffer, maxDescriptors: Int(BUS1_MSG_MAX_FDS), dontWait: true)
            else { return .nothing }
            datagram = received
        } catch {
            return .gone(reason: "recvmsg failed: \(error)")
        }
        if datagram.isHangUp { return .gone(reason: "disconnected") }
        let decoded: (message: ControlMessage, requestID: UInt32)
        do {
            if datagram.truncated { throw ProtocolError.cutByKernel }
            decoded = try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[..<datagram.count]),
                                                descriptorCount: datagram.fds.count)
        } catch {
            return .malformed(error)  // the datagram's fds are closed with it
        }
        let attached = datagram.takeDescriptors().map { OwnedDescriptor(FileDescriptor(adopting: $0)) }
        return .request(decoded.message, requestID: decoded.requestID, attached: attached)
    }
}
