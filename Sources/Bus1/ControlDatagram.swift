import Bus1Core
import Bus1Linux
import Glibc

/// The fds that came with one control datagram, owned until taken: each is taken
/// once, as a `FileDescriptor` (``take(_:)``) or raw by an owner that closes it
/// (``takeAll()``), and whatever nobody took closes with the set. No call site
/// closes fds by hand, so none can leak one on an early return or close one twice.
struct ReceivedDescriptors: ~Copyable {
    private var fds: [Int32]

    init(_ fds: [Int32]) { self.fds = fds }

    var count: Int { fds.count }

    /// Takes fd `index`, once.
    mutating func take(_ index: Int) -> FileDescriptor {
        let fd = fds[index]
        precondition(fd >= 0, "a received descriptor taken twice")
        fds[index] = -1
        return FileDescriptor(adopting: fd)
    }

    /// Takes every fd not taken yet, raw, for an owner that closes them itself.
    mutating func takeAll() -> [Int32] {
        defer { fds = [] }
        return fds.filter { $0 >= 0 }
    }

    deinit {
        for fd in fds where fd >= 0 { close(fd) }
    }
}

/// One control datagram as the peer received it: the message, its request id
/// (0 or another request's for an event) and the fds that came with it.
struct ControlDatagram: ~Copyable {
    let message: ControlMessage
    let requestID: UInt32
    var fds: ReceivedDescriptors
}
