import Bus1Linux

/// Why the coordinator could not start or had to stop.
public enum CoordinatorError: Error, CustomStringConvertible, Sendable {
    /// A live bus already serves this socket path.
    case addressInUse(String)
    /// The path exists and is not a socket (a file, a directory, a symlink): left untouched.
    case addressNotASocket(String)
    /// The socket's directory is not one only its owner (or root) can change: another
    /// user could swap the socket for its own. `reason` says what is wrong.
    case unsafeDirectory(String, reason: String)
    /// A socket handed over (socket activation) that a bus cannot serve on.
    case unusableListener(String)
    /// A setting out of range (``CoordinatorConfiguration/validate()``).
    case invalidConfiguration(ConfigurationError)
    case system(LinuxError)

    public var description: String {
        switch self {
        case .addressInUse(let path): "a bus is already running at \(path)"
        case .addressNotASocket(let path): "\(path) exists and is not a socket; refusing to replace it"
        case .unsafeDirectory(let path, let reason): "refusing to serve in \(path): \(reason)"
        case .unusableListener(let why): "cannot serve on the socket handed over: \(why)"
        case .invalidConfiguration(let error): "invalid configuration: \(error)"
        case .system(let error): "\(error)"
        }
    }
}
