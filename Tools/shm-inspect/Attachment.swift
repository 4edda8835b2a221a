import Bus1Linux
import CBus1Wire
import Glibc

/// Why the tool could not show the bus.
enum InspectError: Error, CustomStringConvertible {
    case noBus(String, LinuxError)
    case refused(String)
    case coordinator(code: UInt32, detail: UInt32)
    case protocolViolation(String)
    case corruptSnapshot(String)
    case system(LinuxError)
    case usage(String)

    var description: String {
        switch self {
        case .noBus(let path, let error): "no bus at \(path): \(error)"
        case .refused(let why): "introspection refused: \(why)"
        case .coordinator(let code, let detail): "the coordinator answered error \(code) (detail \(detail))"
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

        var fds = try Self.request(socket.rawValue, address: address, type: BUS1_MSG_INTROSPECT, body: [], id: 1, expect: BUS1_MSG_SNAPSHOT, buffer: buffer)
        let reply = buffer.loadUnaligned(fromByteOffset: MemoryLayout<bus1_msg_header>.size, as: bus1_msg_snapshot.self)
        guard fds.count == 1 else { for fd in fds { close(fd) }; throw .protocolViolation("SNAPSHOT with \(fds.count) fds") }
        do { snapshot = try MappedObject(adopting: fds[0]) } catch { throw .system(error) }
        guard snapshot.size == Int(reply.size) else { throw .corruptSnapshot("memfd has \(snapshot.size) bytes, reply says \(reply.size)") }
        guard reply.object_count <= 1 << 20 else { throw .corruptSnapshot("\(reply.object_count) objects") }

        var objects: [MappedObject] = []
        while objects.count < Int(reply.object_count) {
            let ask = bus1_msg_objects(first: UInt32(objects.count), count: 0)
            fds = try Self.request(socket.rawValue, address: address, type: BUS1_MSG_GET_OBJECTS, body: withUnsafeBytes(of: ask) { Array($0) }, id: UInt32(2 + objects.count), expect: BUS1_MSG_OBJECTS, buffer: buffer)
            let got = buffer.loadUnaligned(fromByteOffset: MemoryLayout<bus1_msg_header>.size, as: bus1_msg_objects.self)
            guard got.first == UInt32(objects.count), got.count >= 1, Int(got.count) == fds.count else {
                for fd in fds { close(fd) }
                throw .protocolViolation("OBJECTS first \(got.first) count \(got.count) with \(fds.count) fds")
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

    /// Sends one request and waits for its reply of type `expect`; returns the fds
    /// that came with it (owned by the caller). The reply's bytes are in `buffer`.
    ///
    /// `body` is the request's body, already encoded (empty for `INTROSPECT`). It is
    /// bytes, not a generic value, on purpose: this used to take `body: Body` and
    /// append `withUnsafeBytes(of: body)`, called with `()` for `INTROSPECT`. A
    /// zero-sized value has no storage, so in an optimised build the "address" the
    /// closure got was LLVM `undef`: the buffer's start and end were whatever two
    /// registers held, its `count` (end − start) was garbage, and `prefix(_:)`
    /// trapped on every command of the release binary (debug builds materialise a
    /// dummy address with count 0 and passed). Never take the bytes of a value that
    /// may be zero-sized.
    private static func request(_ socket: Int32, address: String, type: bus1_msg_type, body: [UInt8], id: UInt32, expect: bus1_msg_type,
                                buffer: UnsafeMutableRawBufferPointer) throws(InspectError) -> [Int32] {
        var header = bus1_msg_header()
        header.magic = BUS1_MAGIC_MESSAGE
        header.version = UInt16(BUS1_WIRE_VERSION)
        header.type = UInt16(type.rawValue)
        header.size = UInt32(MemoryLayout<bus1_msg_header>.size + body.count)
        header.request_id = id
        let bytes = withUnsafeBytes(of: header) { Array($0) } + body
        do { try SeqPacket.send(socket, bytes) } catch { throw .system(error) }

        var datagram: SeqPacket.Datagram
        do {
            guard let received = try SeqPacket.receive(socket, into: buffer, maxDescriptors: Int(BUS1_MSG_MAX_FDS)) else {
                throw InspectError.protocolViolation("no reply")
            }
            datagram = received
        } catch let error as InspectError {
            throw error
        } catch let error as LinuxError {
            throw .system(error)
        } catch {
            throw .protocolViolation("\(error)")
        }
        if datagram.isHangUp { throw .refused("the coordinator closed the connection") }
        guard !datagram.truncated, datagram.count >= MemoryLayout<bus1_msg_header>.size else {
            throw .protocolViolation("datagram of \(datagram.count) bytes\(datagram.truncated ? ", truncated" : "")")
        }
        let reply = buffer.loadUnaligned(as: bus1_msg_header.self)
        guard reply.magic == BUS1_MAGIC_MESSAGE else { throw .protocolViolation("bad magic") }
        guard reply.version == UInt16(BUS1_WIRE_VERSION) else {
            throw .protocolViolation("wire version \(reply.version); this shm-inspect speaks \(BUS1_WIRE_VERSION)")
        }
        guard Int(reply.size) == datagram.count else { throw .protocolViolation("size field \(reply.size), datagram \(datagram.count)") }
        if reply.type == UInt16(BUS1_MSG_ERROR.rawValue), datagram.count == MemoryLayout<bus1_msg_header>.size + MemoryLayout<bus1_msg_error>.size {
            let error = buffer.loadUnaligned(fromByteOffset: MemoryLayout<bus1_msg_header>.size, as: bus1_msg_error.self)
            if error.code == BUS1_ERR_PERMISSION.rawValue {
                throw .refused("uid \(getuid()) may not inspect the bus at \(address); only the bus's own uid and root may")
            }
            throw .coordinator(code: error.code, detail: error.detail)
        }
        guard reply.type == UInt16(expect.rawValue) else { throw .protocolViolation("message type \(reply.type), expected \(expect.rawValue)") }
        let bodySize = type == BUS1_MSG_INTROSPECT ? MemoryLayout<bus1_msg_snapshot>.size : MemoryLayout<bus1_msg_objects>.size
        guard datagram.count == MemoryLayout<bus1_msg_header>.size + bodySize else { throw .protocolViolation("reply body of \(datagram.count) bytes") }
        return datagram.takeDescriptors()
    }
}
