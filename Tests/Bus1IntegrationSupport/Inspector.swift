import Bus1Linux
import Foundation
import Testing

/// One build of `shm-inspect`, pointed at one bus.
package struct Inspector {
    package let build: ToolBuild
    package let address: String

    package init(build: ToolBuild, address: String) {
        self.build = build
        self.address = address
    }

    /// Runs `shm-inspect args --bus address`; its exit status and output.
    package func run(_ arguments: [String]) throws -> (status: Bus1Linux.ExitStatus, output: String) {
        let process = try ChildProcess("shm-inspect", arguments + ["--bus", address], build: build, mergeStandardError: true)
        let status = process.finish(timeoutSeconds: 60)
        return (status, process.lines.joined(separator: "\n"))
    }

    /// Runs a listing with `--json` and returns the rows under `key`.
    package func rows(_ arguments: [String], _ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        let (status, output) = try run(arguments + ["--json"])
        #expect(status == .exited(0), "\(build): \(output)", sourceLocation: sourceLocation)
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        #expect(object?["bus"] as? String == address, sourceLocation: sourceLocation)
        return object?[key] as? [[String: Any]] ?? []
    }

    /// The integer `key` of a JSON row, if it has one.
    package static func number(_ row: [String: Any]?, _ key: String) -> Int? { (row?[key] as? NSNumber)?.intValue }
}
