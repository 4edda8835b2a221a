import Bus1Linux
import Foundation
import Glibc

/// Child processes of the benchmark: this same executable, started as
/// `bus1-bench __child ROLE key=value...`, optionally pinned to a CPU, with
/// parent fds mapped to fixed numbers (3, 4, ...).
enum Child {
    static func spawn(_ role: String, _ settings: [String: String], fds: [Int32] = [], cpu: Int? = nil) throws -> pid_t {
        var arguments = ["__child", role]
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) { arguments.append("\(key)=\(value)") }
        if let cpu { arguments.append("cpu=\(cpu)") }
        let descriptors = Dictionary(uniqueKeysWithValues: fds.enumerated().map { (Int32(3 + $0.offset), $0.element) })
        return try spawnProcess("/proc/self/exe", arguments, descriptors: descriptors)
    }

    /// Waits for `pid`; throws if it did not exit 0.
    static func reap(_ pid: pid_t, _ what: String) throws {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let result = ExitStatus(waitStatus: status)
        guard result == .exited(0) else { throw BenchError("\(what) child \(result)") }
    }

    /// Parses `key=value` arguments of a child.
    static func settings(_ arguments: ArraySlice<String>) -> [String: String] {
        Dictionary(uniqueKeysWithValues: arguments.compactMap { argument in
            argument.firstIndex(of: "=").map { (String(argument[..<$0]), String(argument[argument.index(after: $0)...])) }
        })
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Pins the caller if `cpu` is given.
func pin(_ cpu: Int?) throws {
    if let cpu { try pinCurrentThread(toCPU: cpu) }
}

/// Reads exactly `count` bytes (streams: sockets, pipes).
func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws {
    try transferFully(count, "read") { done in read(fd, buffer + done, count - done) }
}

/// Writes exactly `count` bytes.
func writeFully(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws {
    try transferFully(count, "write") { done in write(fd, buffer + done, count - done) }
}

/// Repeats `transfer` (a read or write of the bytes from `done` on) until all
/// `count` bytes have moved, through short transfers and EINTR; throws
/// "short <what>" at end of stream or on another error.
private func transferFully(_ count: Int, _ what: String, _ transfer: (_ done: Int) -> Int) throws {
    var done = 0
    while done < count {
        let n = transfer(done)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw BenchError("short \(what) (\(n), errno \(errno))") }
        done += n
    }
}

/// Whether stderr is a terminal: the progress line is for people, not logs.
let progressShown = isatty(2) != 0

/// Prints a progress line on stderr, overwritten in place.
func progress(_ text: String) {
    if progressShown { FileHandle.standardError.write(("\r\u{1B}[K" + text).data(using: .utf8)!) }
}

func progressDone() {
    if progressShown { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
}
