import Bus1Core
import Bus1Linux
import CBus1Wire

/// Why a request was refused; becomes a `BUS1_MSG_ERROR` (through the wire
/// layer's `Refusal`, the one mapping of error codes).
enum RequestError: Error {
    case protocolError
    case state
    case nameTaken, nameUnknown
    case handleUnknown, notOwner, permission
    case quota(Refusal.Quota)
    case descriptorRefused(Refusal.DescriptorRefusal)
    /// A pool segment refused.
    case segment(Refusal.SegmentRefusal)
    /// A held reply's peer did not take what it waited for in time; undone.
    case timedOut
    case system(LinuxError)

    /// What the peer is told.
    var refusal: Refusal {
        switch self {
        case .protocolError: .protocolError
        case .state: .invalidState
        case .nameTaken: .nameTaken
        case .nameUnknown: .nameUnknown
        case .handleUnknown: .handleUnknown
        case .notOwner: .notOwner
        case .permission: .permissionDenied
        case .quota(let which): .quotaExceeded(which)
        case .descriptorRefused(let why): .descriptorRefused(why)
        case .segment(let why): .segment(why)
        case .timedOut: .timedOut
        case .system(let e): .internalError(errno: e.code)
        }
    }

    var message: ControlMessage { .refused(refusal) }
}

extension RequestError {
    /// Runs a step that makes, seals or maps a shared object; its failure (EMFILE
    /// at the fd limit, ENOMEM, ...) becomes ``system(_:)``, which the peer gets
    /// as `BUS1_ERR_INTERNAL` with the errno as detail.
    static func passingErrno<T: ~Copyable>(_ step: () throws(LinuxError) -> T) throws(RequestError) -> T {
        do { return try step() } catch { throw .system(error) }
    }
}
