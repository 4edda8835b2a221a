import Bus1Linux
import Glibc

/// The service manager's end of `sd_notify`: a bound `AF_UNIX` `SOCK_DGRAM`
/// socket whose address a test hands to `bus1d` as `NOTIFY_SOCKET`, and what
/// arrived on it, one `KEY=value` assignment per line of each datagram.
final class NotifyReceiver {
    /// A path, or `@name` for the abstract namespace.
    let address: String
    private let socket: FileDescriptor
    private(set) var received: [String] = []

    init(address: String) throws {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw LinuxError("socket", code: errno) }
        socket = FileDescriptor(adopting: fd)
        self.address = address
        try UnixSocketAddress(address).withSockaddr { raw, length throws(LinuxError) in
            try retryingLibcOnInterrupt("bind \(address)") { bind(fd, raw, length) }
        }
    }

    deinit {
        if !address.hasPrefix("@") { unlink(address) }
    }

    /// Receives until `count` assignments in all satisfy `matches`; returns the
    /// last of them, or nil after `timeoutSeconds`.
    func awaitMatch(count: Int = 1, timeoutSeconds: Double = 60, where matches: (String) -> Bool) -> String? {
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while true {
            let hits = received.filter(matches)
            if hits.count >= count { return hits[count - 1] }
            let now = monotonicNanoseconds()
            guard now < deadline else { return nil }
            var p = pollfd(fd: socket.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(min(1000, (deadline - now) / 1_000_000 + 1))) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(socket.rawValue, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 { received += String(decoding: buffer[..<n], as: UTF8.self).split(separator: "\n").map(String.init) }
        }
    }

    /// Receives until `count` assignments equal `assignment`.
    func awaitAssignment(_ assignment: String, count: Int = 1, timeoutSeconds: Double = 60) -> Bool {
        awaitMatch(count: count, timeoutSeconds: timeoutSeconds) { $0 == assignment } != nil
    }
}
