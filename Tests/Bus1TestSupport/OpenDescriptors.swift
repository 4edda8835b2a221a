import Glibc

/// How many fds process `pid` has open (`/proc/<pid>/fd`), or -1 if unreadable;
/// `nil` counts the calling process (its own directory handle excluded).
public func openDescriptorCount(of pid: pid_t? = nil) -> Int {
    guard let dir = opendir(pid.map { "/proc/\($0)/fd" } ?? "/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = pid == nil ? -1 : 0  // opendir's own descriptor shows up in /proc/self/fd
    while let entry = readdir(dir) { if entry.pointee.d_name.0 != 0x2e { count += 1 } }
    return count
}
