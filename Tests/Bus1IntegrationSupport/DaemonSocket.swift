import Bus1TestSupport
import Glibc

/// A fresh directory for one daemon's socket: `/tmp/bus1d-<label>-XXXXXX/bus`.
package func freshSocketPath(_ label: String) -> String {
    var template = Array("/tmp/bus1d-\(label)-XXXXXX".utf8CString)
    precondition(mkdtemp(&template) != nil)
    return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/bus"
}

/// Waits until something exists at `path` (a daemon bound its socket there).
package func waitForSocket(_ path: String, timeoutSeconds: Double = 10) -> Bool {
    waitUntil(timeoutSeconds: timeoutSeconds, pollMicroseconds: 5000) { access(path, F_OK) == 0 }
}

extension ChildProcess {
    /// Reads a daemon's log until it says it is listening: by then it holds every fd
    /// of an idle bus (clock, stop pipe, io_uring), so its fd count is a baseline.
    /// Needs the daemon's log at level info or lower (the default) on its stdout.
    package func awaitListening() -> Bool {
        awaitLine(containing: "coordinator listening", timeoutSeconds: 30)
    }
}
