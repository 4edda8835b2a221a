/// A shared object or control message that does not match the wire format.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooSmall(String)
    case badMagic(String)
    case versionMismatch(String, UInt32)
    case mismatch(String)

    public var description: String {
        switch self {
        case .tooSmall(let what): "\(what): too small"
        case .badMagic(let what): "\(what): bad magic"
        case .versionMismatch(let what, let v): "\(what): wire version \(v), expected \(1)"
        case .mismatch(let what): "\(what): does not match what the coordinator announced"
        }
    }
}
