import CBus1Wire

/// A control datagram that does not follow the wire format.
public enum ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(Int)
    case badMagic(UInt32)
    case versionMismatch(UInt16)
    case sizeMismatch(declared: UInt32, actual: Int)
    case bodySize(type: UInt16, size: Int)
    case unknownType(UInt16)
    case badName
    case badField(String)
    case descriptorCount(type: UInt16, expected: Int, actual: Int)
    case cutByKernel

    public var description: String {
        switch self {
        case .truncated(let n): "datagram of \(n) bytes is shorter than a header"
        case .badMagic(let m): "bad magic 0x\(String(m, radix: 16))"
        case .versionMismatch(let v): "wire version \(v), expected \(BUS1_WIRE_VERSION)"
        case .sizeMismatch(let d, let a): "header says \(d) bytes, datagram has \(a)"
        case .bodySize(let t, let s): "message type \(t) with a body of \(s) bytes"
        case .unknownType(let t): "unknown message type \(t)"
        case .badName: "name must be 1...\(BUS1_NAME_MAX) bytes of UTF-8 without NUL"
        case .badField(let f): "invalid field \(f)"
        case .descriptorCount(let t, let e, let a): "message type \(t) needs \(e) fds, came with \(a)"
        case .cutByKernel: "datagram or its fds were truncated"
        }
    }
}
