import Glibc

/// A shared mapping of a file, unmapped in `deinit`.
///
/// The base address is stable for the mapping's lifetime; Bus1 never stores it in
/// shared memory (offsets only).
/// Sendable: immutable address and size, owned by one value (~Copyable); what is
/// read or written through it is synchronised by the protocols of the views built on it.
public struct Mapping: ~Copyable, @unchecked Sendable {
    /// Start of the mapping.
    public let base: UnsafeMutableRawPointer
    /// Bytes mapped.
    public let count: Int
    /// Whether the mapping was made `PROT_WRITE`.
    public let isWritable: Bool

    /// Maps `count` bytes of `fd` from offset 0, `MAP_SHARED`.
    public init(_ fd: borrowing FileDescriptor, count: Int, writable: Bool) throws(LinuxError) {
        let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        self.base = try retryingLibcOnInterrupt("mmap", failure: MAP_FAILED) {
            mmap(nil, count, protection, MAP_SHARED, fd.rawValue, 0)
        }
        self.count = count
        self.isWritable = writable
    }

    /// Maps the whole file.
    public init(wholeFile fd: borrowing FileDescriptor, writable: Bool) throws(LinuxError) {
        try self.init(fd, count: try fd.size(), writable: writable)
    }

    /// The bytes of the mapping, read-only.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    deinit {
        _ = try? retryingLibcOnInterrupt("munmap") { munmap(base, count) }
    }
}
