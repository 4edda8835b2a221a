import CBus1Linux
import Glibc

/// memfd creation and sealing: the only way Bus1 makes shared memory.
public enum MemFD {
    /// The seals Bus1 uses (`F_SEAL_*`).
    public struct Seals: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let seal = Seals(rawValue: UInt32(B1L_SEAL_SEAL))
        public static let shrink = Seals(rawValue: UInt32(B1L_SEAL_SHRINK))
        public static let grow = Seals(rawValue: UInt32(B1L_SEAL_GROW))
        public static let write = Seals(rawValue: UInt32(B1L_SEAL_WRITE))
        /// Forbids new writable mappings and `write(2)`; existing writable mappings stay.
        public static let futureWrite = Seals(rawValue: UInt32(B1L_SEAL_FUTURE_WRITE))
    }

    /// A sealable, close-on-exec memfd of `size` bytes (zero-filled, lazily backed).
    public static func create(name: String, size: Int) throws(LinuxError) -> FileDescriptor {
        let fd = FileDescriptor(adopting: try retryingOnInterrupt("memfd_create") { b1l_memfd_create(name) })
        try retryingLibcOnInterrupt("ftruncate") { ftruncate(fd.rawValue, off_t(size)) }
        return fd
    }

    /// Adds seals (`fcntl(F_ADD_SEALS)`).
    public static func addSeals(_ seals: Seals, to fd: borrowing FileDescriptor) throws(LinuxError) {
        try retryingOnInterrupt("fcntl(F_ADD_SEALS)") { b1l_add_seals(fd.rawValue, seals.rawValue) }
    }

    /// The seals in force (`fcntl(F_GET_SEALS)`).
    public static func seals(of fd: borrowing FileDescriptor) throws(LinuxError) -> Seals {
        Seals(rawValue: UInt32(try retryingOnInterrupt("fcntl(F_GET_SEALS)") { b1l_get_seals(fd.rawValue) }))
    }

    /// A new open file description of the same file through `/proc/self/fd`,
    /// read-only unless `writable`. A read-only one can never be mapped writable.
    public static func reopen(_ fd: borrowing FileDescriptor, writable: Bool = false) throws(LinuxError) -> FileDescriptor {
        FileDescriptor(adopting: try retryingOnInterrupt("open(/proc/self/fd)") { b1l_reopen(fd.rawValue, writable ? 1 : 0) })
    }
}
