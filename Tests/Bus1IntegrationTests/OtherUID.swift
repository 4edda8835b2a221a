import Bus1Linux
import Glibc

/// Runs built binaries as another uid (65534, "nobody") through util-linux
/// `setpriv`, from a world-readable copy (the build tree's modes may not let that
/// uid in). Needs root and `setpriv` (see ``unavailableReason``).
final class OtherUID {
    static let uid: UInt32 = 65534
    static let setpriv = "/usr/bin/setpriv"
    let directory: String
    private let binaries: [String]

    /// Why tests cannot run binaries as another uid here, or nil if they can
    /// (for `.enabled(if:)`).
    static var unavailableReason: String? {
        getuid() == 0 && access(setpriv, X_OK) == 0 ? nil : "needs root and \(setpriv) to run binaries as another uid"
    }

    /// A world-readable copy of `binaries` to run as ``uid``. Gate the test with
    /// `.enabled(if: OtherUID.unavailableReason == nil, …)`; here an unavailable
    /// `setpriv` or a non-root runner is an error, never a silent pass.
    static func make(copying binaries: [String]) throws -> OtherUID {
        if let reason = unavailableReason { throw LinuxError(reason, code: EPERM) }
        return try OtherUID(binaries)
    }

    private init(_ binaries: [String]) throws {
        var template = Array("/tmp/bus1-other-uid-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw LinuxError("mkdtemp", code: errno) }
        directory = String(cString: made)
        chmod(directory, 0o755)
        self.binaries = binaries
        for binary in binaries {
            let copy = try ChildProcess("/bin/cp", [ChildProcess.buildDirectory + "/" + binary, directory + "/" + binary])
            guard copy.finish() == .exited(0) else { throw LinuxError("cp \(binary)", code: EIO) }
        }
    }

    deinit {
        for binary in binaries { unlink(directory + "/" + binary) }
        rmdir(directory)
    }

    /// Spawns the copy of `binary` as ``uid``.
    func spawn(_ binary: String, _ arguments: [String], mergeStandardError: Bool = false) throws -> ChildProcess {
        try ChildProcess(Self.setpriv, ["--reuid=\(Self.uid)", "--regid=\(Self.uid)", "--clear-groups", directory + "/" + binary] + arguments,
                         mergeStandardError: mergeStandardError)
    }
}

extension BusFixture {
    /// Lets other uids reach the bus socket (the coordinator still decides who may connect).
    func openDirectoryToOtherUIDs() {
        chmod(String(address[..<address.lastIndex(of: "/")!]), 0o755)
    }
}
