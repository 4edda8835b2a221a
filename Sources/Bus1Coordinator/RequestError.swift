import Bus1Core
import Bus1Linux
import CBus1Wire

/// Why a request was refused; becomes a `BUS1_MSG_ERROR`.
enum RequestError: Error {
    case protocolError
    case state
    case nameTaken, nameUnknown
    case handleUnknown, notOwner, permission
    case quota(UInt32)
    case descriptorRefused(UInt32)
    /// A pool segment refused (`bus1_segment_refusal`).
    case segment(UInt32)
    /// A held reply's peer did not take what it waited for in time; undone.
    case timedOut
    case system(LinuxError)

    var message: ControlMessage {
        switch self {
        case .protocolError: .error(code: BUS1_ERR_PROTOCOL.rawValue, detail: 0)
        case .state: .error(code: BUS1_ERR_STATE.rawValue, detail: 0)
        case .nameTaken: .error(code: BUS1_ERR_NAME_TAKEN.rawValue, detail: 0)
        case .nameUnknown: .error(code: BUS1_ERR_NAME_UNKNOWN.rawValue, detail: 0)
        case .handleUnknown: .error(code: BUS1_ERR_HANDLE_UNKNOWN.rawValue, detail: 0)
        case .notOwner: .error(code: BUS1_ERR_NOT_OWNER.rawValue, detail: 0)
        case .permission: .error(code: BUS1_ERR_PERMISSION.rawValue, detail: 0)
        case .quota(let which): .error(code: BUS1_ERR_QUOTA.rawValue, detail: which)
        case .descriptorRefused(let why): .error(code: BUS1_ERR_FD_REFUSED.rawValue, detail: why)
        case .segment(let why): .error(code: BUS1_ERR_SEGMENT.rawValue, detail: why)
        case .timedOut: .error(code: BUS1_ERR_TIMEOUT.rawValue, detail: 0)
        case .system(let e): .error(code: BUS1_ERR_INTERNAL.rawValue, detail: UInt32(bitPattern: e.code))
        }
    }
}

extension RequestError {
    /// Runs a step that makes, seals or maps a shared object; its failure (EMFILE
    /// at the fd limit, ENOMEM, ...) becomes ``system(_:)``, which the peer gets
    /// as `BUS1_ERR_INTERNAL` with the errno as detail.
    static func passingErrno<T: ~Copyable>(_ step: () throws(LinuxError) -> T) throws(RequestError) -> T {
        do { return try step() } catch { throw .system(error) }
    }
}
