import Glibc

/// Resident set size of process `pid` in KiB (`VmRSS` of /proc/PID/status; -1
/// if it cannot be read). How tests check that memory stays flat under load.
public func residentKiB(of pid: pid_t = getpid()) -> Int {
    guard let file = fopen("/proc/\(pid)/status", "r") else { return -1 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmRSS:") { return Int(text.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1 }
    }
    return -1
}
