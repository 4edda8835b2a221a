import Bus1Linux
import Glibc
import Synchronization

/// One shared object of the bus, mapped read-only at its whole size.
///
/// Nothing in it is trusted: every read is bounds-checked against the mapping,
/// and the mapping never extends past the file (the coordinator seals every
/// memfd against shrinking, and the size is taken from `fstat`), so a corrupt
/// offset can produce a wrong answer but never a fault.
final class MappedObject {
    let file: FileDescriptor
    /// Kept only to unmap at the end; reads go through `base`.
    private let mapping: Mapping?
    private let base: UnsafeRawPointer?
    let size: Int

    init(adopting fd: Int32) throws(LinuxError) {
        file = FileDescriptor(adopting: fd)
        size = try file.size()
        if size > 0 {
            let mapping = try Mapping(file, count: size, writable: false)
            base = UnsafeRawPointer(mapping.base)
            self.mapping = .some(consume mapping)
        } else {
            base = nil
            mapping = nil
        }
    }

    /// A copy of the `T` at `offset`, or nil if it does not lie inside the object.
    func load<T>(_: T.Type, at offset: Int) -> T? {
        guard let base, offset >= 0, offset <= size - MemoryLayout<T>.size else { return nil }
        return base.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    /// A live 64-bit word (ring index, ticket), read once; nil outside the object.
    /// Aligned loads of 8 bytes are single-copy atomic on every Linux target Bus1 runs on.
    func word(at offset: Int) -> UInt64? {
        guard let base, offset >= 0, offset <= size - 8, offset & 7 == 0 else { return nil }
        let value = base.load(fromByteOffset: offset, as: UInt64.self)
        atomicMemoryFence(ordering: .acquiring)  // keep the caller's reads in program order
        return value
    }

    /// Bytes `[offset, offset + count)`, clipped to the object.
    func bytes(at offset: Int, count: Int) -> [UInt8] {
        guard let base, offset >= 0, offset < size, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: base + offset, count: min(size - offset, count)))
    }

    /// The parts of `range` that hold data (holes are never touched).
    func dataRanges(in range: Range<Int>) -> [Range<Int>] {
        let lower = max(0, range.lowerBound), upper = min(range.upperBound, size)
        return lower < upper ? file.dataExtents(in: lower..<upper) : []
    }
}
