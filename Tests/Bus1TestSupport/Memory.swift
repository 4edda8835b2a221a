import Glibc

/// Resident memory of process `pid` in KiB, from /proc/PID/status (-1 if it
/// cannot be read): `VmRSS`, everything resident, or `RssAnon`, the anonymous part
/// (heap, stacks), which leaves out shared memory such as a peer's pool, whose
/// pages become resident as its slices are first used. How tests check that
/// memory stays flat under load.
public func residentKiB(of pid: pid_t = getpid(), field: String = "VmRSS") -> Int {
    guard let file = fopen("/proc/\(pid)/status", "r") else { return -1 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix(field + ":") { return Int(text.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1 }
    }
    return -1
}
