import Glibc

/// An `AF_UNIX` socket address: a filesystem path, or a name in the abstract
/// namespace, written `@name` (as systemd and `ss` write it; the kernel's form
/// is a leading NUL byte).
public struct UnixSocketAddress: Equatable, Sendable, CustomStringConvertible {
    /// The path, or `@` and the abstract name.
    public let description: String

    /// Checks that `text` fits `sun_path` (108 bytes with a path's terminating NUL)
    /// and holds no NUL byte of its own; `ENAMETOOLONG` or `EINVAL` otherwise.
    public init(_ text: String) throws(LinuxError) {
        guard !text.isEmpty, !text.utf8.contains(0) else { throw LinuxError("socket address '\(text)'", code: EINVAL) }
        guard text.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            throw LinuxError("socket address \(text)", code: ENAMETOOLONG)
        }
        description = text
    }

    /// The address `fd` is bound to (`getsockname`); nil for an unnamed socket.
    /// The corresponding C function is `getsockname(2)`.
    public static func bound(to fd: Int32) throws(LinuxError) -> UnixSocketAddress? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        try retryingLibcOnInterrupt("getsockname") {
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
        }
        guard address.sun_family == sa_family_t(AF_UNIX) else { throw LinuxError("getsockname (not AF_UNIX)", code: EAFNOSUPPORT) }
        let count = Int(length) - MemoryLayout<sa_family_t>.size
        guard count > 0 else { return nil }
        let bytes = withUnsafeBytes(of: address.sun_path) { Array($0.prefix(count)) }
        if bytes[0] == 0 { return try UnixSocketAddress("@" + String(decoding: bytes.dropFirst(), as: UTF8.self)) }
        return try UnixSocketAddress(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))
    }

    /// Calls `body` with the address as a `sockaddr` and its length: for a path,
    /// up to and including its NUL; for an abstract name, exactly its bytes.
    @discardableResult
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(LinuxError) -> R) throws(LinuxError) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let abstract = description.hasPrefix("@")
        let name = Array(description.utf8.dropFirst(abstract ? 1 : 0))
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: abstract ? [0] + name : name)  // the rest stays 0: a path's NUL
        }
        let length = MemoryLayout<sa_family_t>.size + name.count + 1
        return try withUnsafePointer(to: &address) { pointer throws(LinuxError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw throws(LinuxError) in try body(raw, socklen_t(length)) }
        }
    }
}
