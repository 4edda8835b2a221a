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
    /// One control datagram; a byte larger than the largest valid one, so oversize shows.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(BUS1_MSG_MAX) + 1, alignment: 8)
    /// Ids 1 and 2 are the handshake's; requests wrap back to 3.
    private var nextRequestID: UInt32 = 3
    private(set) var isClosed = false

    /// Connects to the bus socket at `address`, giving up after `timeout`.
    init(address: String, timeout: Duration) throws(Bus1Error) {
        let (seconds, attoseconds) = timeout.components
        do {
            socket = try SeqPacket.connect(path: address, timeoutNanoseconds: max(1, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        } catch {
            buffer.deallocate()
            switch error.code {
            case ENOENT, ECONNREFUSED: throw .noBus(address: address, cause: error)
            case EAGAIN: throw .timedOut
            default: throw .system(error)
            }
        }
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
    func handshake(_ message: ControlMessage, requestID: UInt32) throws(Bus1Error) -> (ControlMessage, [Int32]) {
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
        let (reply, replyID) = try decode(datagram)
        guard replyID == requestID || replyID == 0 else { throw .protocolViolation("reply to another request") }
        let fds = datagram.takeDescriptors()
        if case .error(let code, let detail) = reply {
            for fd in fds { Glibc.close(fd) }
            throw .refused(Refusal(code: code, detail: detail))
        }
        return (reply, fds)
    }

    /// Ends the handshake: requests from now on wait as their callers ask.
    func handshakeDone() throws(Bus1Error) {
        do { try SeqPacket.setTimeouts(socket.rawValue, nanoseconds: nil) } catch { throw .system(error) }
    }

    /// The refusal the coordinator left in the socket before closing it, if any.
    private func pendingRefusal() -> Refusal? {
        guard let datagram = try? SeqPacket.receive(socket.rawValue, into: buffer, dontWait: true), !datagram.isHangUp,
              let (message, _) = try? decode(datagram), case .error(let code, let detail) = message
        else { return nil }
        return Refusal(code: code, detail: detail)
    }

    // MARK: Requests and events

    /// Sends a request and reads until its reply, handing every event that
    /// arrives first to `onEvent`. A refusal throws ``Bus1Error/refused(_:)``.
    func request(_ message: ControlMessage, fds attached: [Int32],
                 onEvent: (ControlMessage, [Int32]) throws(Bus1Error) -> Void) throws(Bus1Error) -> (message: ControlMessage, fds: [Int32]) {
        guard !isClosed else { throw .coordinatorGone }
        let requestID = nextRequestID
        nextRequestID = nextRequestID == .max ? 3 : nextRequestID + 1
        do {
            try SeqPacket.send(socket.rawValue, message.encode(requestID: requestID), fds: attached)
        } catch {
            throw error.code == EPIPE || error.code == ECONNRESET ? .coordinatorGone : .system(error)
        }
        while true {
            let (reply, replyID, fds) = try receive(blocking: true)!
            if replyID == requestID {
                if case .error(let code, let detail) = reply {
                    for fd in fds { Glibc.close(fd) }
                    throw .refused(Refusal(code: code, detail: detail))
                }
                return (reply, fds)
            }
            try onEvent(reply, fds)
        }
    }

    /// The next datagram (nil: none waiting, when not `blocking`), its fds taken.
    func receive(blocking: Bool) throws(Bus1Error) -> (ControlMessage, UInt32, [Int32])? {
        var datagram: SeqPacket.Datagram
        do {
            guard let d = try SeqPacket.receive(socket.rawValue, into: buffer, maxDescriptors: Int(BUS1_MSG_MAX_FDS), dontWait: !blocking)
            else { return nil }
            datagram = d
        } catch {
            throw error.code == ECONNRESET ? .coordinatorGone : .system(error)
        }
        if datagram.isHangUp { throw .coordinatorGone }
        let (message, requestID) = try decode(datagram)
        return (message, requestID, datagram.takeDescriptors())
    }

    /// Whether the coordinator hung up, and whether a datagram is waiting.
    func poll() throws(Bus1Error) -> (hangUp: Bool, readable: Bool) {
        if isClosed { throw .coordinatorGone }
        let state = pollNow(socket.rawValue)
        return (state.hangUp, state.readable)
    }

    private func decode(_ datagram: borrowing SeqPacket.Datagram) throws(Bus1Error) -> (ControlMessage, UInt32) {
        do {
            if datagram.truncated { throw ProtocolError.cutByKernel }
            return try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[..<datagram.count]), descriptorCount: datagram.fds.count)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }
}
