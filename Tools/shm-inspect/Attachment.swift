import Bus1Linux
import Bus1Wire
import CBus1Wire
import Glibc

/// Why the tool could not show the bus.
enum InspectError: Error, CustomStringConvertible {
    case noBus(String, LinuxError)
    case refused(String)
    case coordinator(Refusal)
    case protocolViolation(String)
    case corruptSnapshot(String)
    case system(LinuxError)
    case usage(String)

    var description: String {
        switch self {
        case .noBus(let path, let error): "no bus at \(path): \(error)"
        case .refused(let why): "introspection refused: \(why)"
        case .coordinator(let refusal): "the coordinator refused: \(refusal)"
        case .protocolViolation(let what): "unexpected reply from the coordinator: \(what)"
        case .corruptSnapshot(let what): "the snapshot is corrupt: \(what)"
        case .system(let error): "\(error)"
        case .usage(let what): what
        }
    }
}

/// A read-only attachment to a live bus: the coordinator's sealed snapshot of its
/// tables and every shared object it names, mapped read-only.
///
/// Speaks the control protocol from the wire header directly (not through the
/// runtime), so it still works against a coordinator or segment of another version
/// far enough to say what is wrong.
final class Attachment {
    let address: String
    let snapshot: MappedObject
    /// By object index (`BUS1_NO_OBJECT` never appears here).
    let objects: [MappedObject]

    init(address: String) throws(InspectError) {
        self.address = address
        let socket: FileDescriptor
        do { socket = try SeqPacket.connect(path: address) } catch { throw .noBus(address, error) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(BUS1_MSG_MAX), alignment: 8)
        defer { buffer.deallocate() }

        var (reply, fds) = try Self.request(socket.rawValue, address: address, .introspect, id: 1, buffer: buffer)
        guard case .snapshot(let size, let objectCount) = reply else { for fd in fds { close(fd) }; throw .protocolViolation("expected SNAPSHOT, got \(reply)") }
        do { snapshot = try MappedObject(adopting: fds[0]) } catch { throw .system(error) }
        guard snapshot.size == Int(size) else { throw .corruptSnapshot("memfd has \(snapshot.size) bytes, reply says \(size)") }
        guard objectCount <= 1 << 20 else { throw .corruptSnapshot("\(objectCount) objects") }

        var objects: [MappedObject] = []
        while objects.count < Int(objectCount) {
            (reply, fds) = try Self.request(socket.rawValue, address: address, .getObjects(first: UInt32(objects.count)),
                                            id: UInt32(2 + objects.count), buffer: buffer)
            guard case .objects(let first, let count) = reply, first == UInt32(objects.count), count >= 1 else {
                for fd in fds { close(fd) }
                throw .protocolViolation("expected OBJECTS from \(objects.count), got \(reply)")
            }
            for (i, fd) in fds.enumerated() {
                do { objects.append(try MappedObject(adopting: fd)) } catch {
                    for later in fds[(i + 1)...] { close(later) }
                    throw .system(error)
                }
            }
        }
        self.objects = objects
    }

    /// The object at `index`, if the index names one.
    func object(_ index: UInt32) -> MappedObject? {
        index == BUS1_NO_OBJECT || Int(index) >= objects.count ? nil : objects[Int(index)]
    }

    /// Sends one request and waits for its reply (the runtime's own codec, so the
    /// framing and every check of a reply are written once); returns the reply and
    /// the fds that came with it (owned by the caller, as many as the reply's type
    /// carries). A refusal throws.
    private static func request(_ socket: Int32, address: String, _ message: ControlMessage, id: UInt32,
                                buffer: UnsafeMutableRawBufferPointer) throws(InspectError) -> (ControlMessage, [Int32]) {
        do { try SeqPacket.send(socket, message.encode(requestID: id)) } catch { throw .system(error) }
        let received: SeqPacket.Datagram?
        do { received = try SeqPacket.receive(socket, into: buffer, maxDescriptors: Int(BUS1_MSG_MAX_FDS)) } catch { throw .system(error) }
        guard var datagram = received else { throw .protocolViolation("no reply") }
        if datagram.isHangUp { throw .refused("the coordinator closed the connection") }
        guard !datagram.truncated else { throw .protocolViolation("datagram of \(datagram.count) bytes, truncated") }
        let fds = datagram.takeDescriptors()
        let reply: ControlMessage
        do {
            reply = try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[..<datagram.count]), descriptorCount: fds.count).message
        } catch {
            for fd in fds { close(fd) }
            if case .versionMismatch(let version) = error {
                throw .protocolViolation("wire version \(version); this shm-inspect speaks \(BUS1_WIRE_VERSION)")
            }
            throw .protocolViolation("\(error)")
        }
        if case .error(let code, let detail) = reply {
            let refusal = Refusal(code: code, detail: detail)
            if refusal == .permissionDenied {
                throw .refused("uid \(getuid()) may not inspect the bus at \(address); only the bus's own uid and root may")
            }
            throw .coordinator(refusal)
        }
        return (reply, fds)
    }
}
