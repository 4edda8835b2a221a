import Synchronization

/// A 64-bit word in memory shared with other processes, accessed only atomically.
///
/// Every access names its ordering; call sites say what they publish to whom.
/// The pointer must stay mapped for the life of every copy of this value (its
/// owner holds the ``Mapping``).
/// Sendable: a pointer into shared memory that is only ever accessed atomically.
@frozen
public struct SharedWord64: @unchecked Sendable {
    @usableFromInline let pointer: UnsafeMutablePointer<Atomic<UInt64>>

    @inlinable
    public init(_ base: UnsafeMutableRawPointer, offset: Int) {
        precondition(offset % 8 == 0, "misaligned shared word")
        pointer = (base + offset).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    @inlinable @inline(__always)
    public func loadAcquiring() -> UInt64 { pointer.pointee.load(ordering: .acquiring) }

    @inlinable @inline(__always)
    public func loadRelaxed() -> UInt64 { pointer.pointee.load(ordering: .relaxed) }

    @inlinable @inline(__always)
    public func storeReleasing(_ value: UInt64) { pointer.pointee.store(value, ordering: .releasing) }

    @inlinable @inline(__always)
    public func storeRelaxed(_ value: UInt64) { pointer.pointee.store(value, ordering: .relaxed) }

    /// Returns the old value.
    @inlinable @inline(__always)
    public func fetchAddReleasing(_ value: UInt64) -> UInt64 { pointer.pointee.wrappingAdd(value, ordering: .releasing).oldValue }

    /// Returns the old value.
    @inlinable @inline(__always)
    public func fetchAddAcquiringAndReleasing(_ value: UInt64) -> UInt64 {
        pointer.pointee.wrappingAdd(value, ordering: .acquiringAndReleasing).oldValue
    }
}

/// A 32-bit word in shared memory (futex words), accessed only atomically.
/// Sendable: the same as ``SharedWord64``.
@frozen
public struct SharedWord32: @unchecked Sendable {
    @usableFromInline let pointer: UnsafeMutablePointer<Atomic<UInt32>>

    @inlinable
    public init(_ base: UnsafeMutableRawPointer, offset: Int) {
        precondition(offset % 4 == 0, "misaligned shared word")
        pointer = (base + offset).assumingMemoryBound(to: Atomic<UInt32>.self)
    }

    /// The raw address, for `futex(2)`.
    @inlinable
    public var address: UnsafeMutablePointer<UInt32> { UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: UInt32.self) }

    @inlinable @inline(__always)
    public func loadAcquiring() -> UInt32 { pointer.pointee.load(ordering: .acquiring) }

    @inlinable @inline(__always)
    public func loadRelaxed() -> UInt32 { pointer.pointee.load(ordering: .relaxed) }

    @inlinable @inline(__always)
    public func storeReleasing(_ value: UInt32) { pointer.pointee.store(value, ordering: .releasing) }

    @inlinable @inline(__always)
    public func storeRelaxed(_ value: UInt32) { pointer.pointee.store(value, ordering: .relaxed) }

    /// Returns the old value.
    @inlinable @inline(__always)
    public func fetchAddReleasing(_ value: UInt32) -> UInt32 { pointer.pointee.wrappingAdd(value, ordering: .releasing).oldValue }

    /// Returns the old value.
    @inlinable @inline(__always)
    public func fetchAddAcquiringAndReleasing(_ value: UInt32) -> UInt32 {
        pointer.pointee.wrappingAdd(value, ordering: .acquiringAndReleasing).oldValue
    }
}

/// Byte offset of a field in a wire struct.
@inlinable
func wireOffset<Root>(_ path: PartialKeyPath<Root>) -> Int {
    MemoryLayout<Root>.offset(of: path)!
}
