import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// The peer's end of its control socket to the coordinator: the handshake's
/// round trips, numbered requests and their replies, and the events (datagrams
/// with request id 0 or another id) that arrive between them, which it hands to
/// the caller. Used from the peer's one thread.
final class ControlConnection {
    let socket: FileDescriptor
    /// The bus socket's path (for errors and logs).
    let address: String
    /// One control datagram; a byte larger than the largest valid one, so oversize
    /// shows. Allocated once the socket is connected (the last step that can
    /// throw), freed only in `deinit`: never twice.
    private let buffer: UnsafeMutableRawBufferPointer
    /// Ids 1 and 2 are the handshake's; requests wrap back to 3.
    private var nextRequestID: UInt32 = 3
    private(set) var isClosed = false

    /// Connects to the bus socket at `address`, giving up after `timeout`.
    init(address: String, timeout: Duration) throws(Bus1Error) {
        self.address = address
        let (seconds, attoseconds) = timeout.components
        do {
            socket = try SeqPacket.connect(path: address, timeoutNanoseconds: max(1, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        } catch {
            switch error.code {
            case ENOENT, ECONNREFUSED: throw .noBus(address: address, cause: error)
            case EAGAIN: throw .timedOut
            default: throw .system(error)
            }
        }
        buffer = .allocate(byteCount: Int(BUS1_MSG_MAX) + 1, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// Hangs up: the coordinator removes this peer. Further requests fail with
    /// ``Bus1Error/coordinatorGone``.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        shutdown(socket.rawValue, Int32(SHUT_RDWR))
    }

    // MARK: Handshake

    /// One request and its reply during the handshake (request id `requestID`),
    /// the reply's fds taken. A coordinator that refuses the connection (policy, a
    /// quota) sends its reason and closes: a send or receive that then fails with
    /// `EPIPE`/`ECONNRESET` looks for that reason before calling the coordinator gone.
    func handshake(_ message: ControlMessage, requestID: UInt32) throws(Bus1Error) -> ControlDatagram {
        do {
            try SeqPacket.send(socket.rawValue, message.encode(requestID: requestID))
        } catch {
            guard error.code == EPIPE || error.code == ECONNRESET else { throw .system(error) }
            throw pendingRefusal().map(Bus1Error.refused) ?? .coordinatorGone
        }
        let received: SeqPacket.Datagram?
        do {
            received = try SeqPacket.receive(socket.rawValue, into: buffer, maxDescriptors: Int(BUS1_MSG_MAX_FDS))
        } catch {
            if error.code == EAGAIN { throw .timedOut }  // the connect timeout passed
            guard error.code == ECONNRESET else { throw .system(error) }
            throw pendingRefusal().map(Bus1Error.refused) ?? .coordinatorGone
        }
        guard var datagram = received, !datagram.isHangUp else { throw .coordinatorGone }
        let fds = ReceivedDescriptors(datagram.takeDescriptors())  // closed if the datagram is refused
        let (reply, replyID) = try decode(datagram, descriptorCount: fds.count)
        guard replyID == requestID || replyID == 0 else { throw .protocolViolation("reply to another request") }
        if case .error(let code, let detail) = reply { throw .refused(Refusal(code: code, detail: detail)) }
        return ControlDatagram(message: reply, requestID: replyID, fds: fds)
    }

    /// Ends the handshake: requests from now on wait as their callers ask.
    func handshakeDone() throws(Bus1Error) {
        do { try SeqPacket.setTimeouts(socket.rawValue, nanoseconds: nil) } catch { throw .system(error) }
    }

    /// The refusal the coordinator left in the socket before closing it, if any.
    private func pendingRefusal() -> Refusal? {
        guard let datagram = try? SeqPacket.receive(socket.rawValue, into: buffer, dontWait: true), !datagram.isHangUp,
              let (message, _) = try? decode(datagram, descriptorCount: datagram.fds.count), case .error(let code, let detail) = message
        else { return nil }
        return Refusal(code: code, detail: detail)
    }

    // MARK: Requests and events

    /// Sends a request and reads until its reply, handing every event that
    /// arrives first to `onEvent`. A refusal throws ``Bus1Error/refused(_:)``.
    func request(_ message: ControlMessage, fds attached: [Int32],
                 onEvent: (consuming ControlDatagram) throws(Bus1Error) -> Void) throws(Bus1Error) -> ControlDatagram {
        guard !isClosed else { throw .coordinatorGone }
        let requestID = nextRequestID
        nextRequestID = nextRequestID == .max ? 3 : nextRequestID + 1
        do {
            try SeqPacket.send(socket.rawValue, message.encode(requestID: requestID), fds: attached)
        } catch {
            throw error.code == EPIPE || error.code == ECONNRESET ? .coordinatorGone : .system(error)
        }
        while true {
            let datagram = try receive(blocking: true)!
            guard datagram.requestID == requestID else {
                try onEvent(datagram)
                continue
            }
            if case .error(let code, let detail) = datagram.message { throw .refused(Refusal(code: code, detail: detail)) }
            return datagram
        }
    }

    /// The next datagram (nil: none waiting, when not `blocking`), its fds taken.
    func receive(blocking: Bool) throws(Bus1Error) -> ControlDatagram? {
        var datagram: SeqPacket.Datagram
        do {
            guard let d = try SeqPacket.receive(socket.rawValue, into: buffer, maxDescriptors: Int(BUS1_MSG_MAX_FDS), dontWait: !blocking)
            else { return nil }
            datagram = d
        } catch {
            throw error.code == ECONNRESET ? .coordinatorGone : .system(error)
        }
        if datagram.isHangUp { throw .coordinatorGone }
        let fds = ReceivedDescriptors(datagram.takeDescriptors())  // closed if the datagram is refused
        let (message, requestID) = try decode(datagram, descriptorCount: fds.count)
        return ControlDatagram(message: message, requestID: requestID, fds: fds)
    }

    /// Whether the coordinator hung up, and whether a datagram is waiting.
    func poll() throws(Bus1Error) -> (hangUp: Bool, readable: Bool) {
        if isClosed { throw .coordinatorGone }
        let state = pollNow(socket.rawValue)
        return (state.hangUp, state.readable)
    }

    private func decode(_ datagram: borrowing SeqPacket.Datagram, descriptorCount: Int) throws(Bus1Error) -> (ControlMessage, UInt32) {
        do {
            if datagram.truncated { throw ProtocolError.cutByKernel }
            return try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[..<datagram.count]), descriptorCount: descriptorCount)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }
}
