import Bus1Coordinator
import Bus1Linux
import Glibc

/// Runs built binaries as another uid (65534, "nobody") through util-linux
/// `setpriv`, from a world-readable copy (the build tree's modes may not let that
/// uid in). Needs root and `setpriv` (see ``unavailableReason``).
package final class OtherUID {
    package static let uid: UInt32 = 65534
    package static let setpriv = "/usr/bin/setpriv"
    package let directory: String
    private let binaries: [String]

    /// Why tests cannot run binaries as another uid here, or nil if they can
    /// (for `.enabled(if:)`).
    package static var unavailableReason: String? {
        getuid() == 0 && access(setpriv, X_OK) == 0 ? nil : "needs root and \(setpriv) to run binaries as another uid"
    }

    /// A world-readable copy of `binaries` to run as ``uid``. Gate the test with
    /// `.enabled(unless: OtherUID.unavailableReason)`; here an unavailable
    /// `setpriv` or a non-root runner is an error, never a silent pass.
    package static func make(copying binaries: [String]) throws -> OtherUID {
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
    package func spawn(_ binary: String, _ arguments: [String], mergeStandardError: Bool = false) throws -> ChildProcess {
        try ChildProcess(Self.setpriv, ["--reuid=\(Self.uid)", "--regid=\(Self.uid)", "--clear-groups", directory + "/" + binary] + arguments,
                         mergeStandardError: mergeStandardError)
    }
}

extension BusFixture {
    /// Lets other uids reach the bus socket (the coordinator still decides who may connect).
    package func openDirectoryToOtherUIDs() {
        chmod(String(address[..<address.lastIndex(of: "/")!]), 0o755)
    }

    /// A bus that ``OtherUID/uid`` may use: the coordinator admits it (and, with
    /// `lookups`, lets it look up names this uid published), and the socket's
    /// directory lets it in. `configure` sets the rest.
    package static func admittingOtherUID(_ label: String, lookups: Bool = true,
                                          configure: (inout CoordinatorConfiguration) -> Void = { _ in }) throws -> BusFixture {
        let bus = try BusFixture(label) {
            $0.allowedUIDs.insert(OtherUID.uid)
            if lookups { $0.nameLookup = .anyAllowedUID }
            configure(&$0)
        }
        bus.openDirectoryToOtherUIDs()
        return bus
    }
}
