import Bus1Core

/// A slice of the sender's own pool, loaned to be filled in place and then sent.
///
/// Write the payload into ``bytes`` (or with ``write(_:)`` and
/// ``storeBytes(of:toByteOffset:as:)``) and set ``count`` to the bytes to send (it
/// starts at the size asked for). Sending consumes the loan; dropping it returns
/// the slice to the pool. The slice's memory is reachable only through spans and
/// closures that cannot outlive the loan.
public struct Loan: ~Copyable {
    /// Retained while the loan lives: the pool must outlive the slice.
    private let pool: Unmanaged<SegmentedPool>
    let offset: UInt64
    /// Where the caller's bytes start: `headroom` bytes into the slice.
    @usableFromInline let start: UnsafeMutableRawPointer
    /// Bytes at the slice's start kept for a pattern's frame header (``Topic``,
    /// ``Service``), written by the pattern when it sends; 0 for plain loans.
    let headroom: Int
    /// Bytes in the slice for the caller (at least the size asked for).
    public let capacity: Int
    /// Bytes to send, `0...capacity`.
    public var count: Int {
        didSet { precondition(count >= 0 && count <= capacity, "loan count outside the slice") }
    }

    /// The block at `offset` of `pool` that an allocation of `headroom + count`
    /// bytes returned, `count` bytes of it to send after `headroom` bytes of header.
    init(pool: SegmentedPool, offset: UInt64, count: Int, headroom: Int = 0) {
        self.pool = Unmanaged.passRetained(pool)
        self.offset = offset
        self.headroom = headroom
        self.start = pool.pointer(at: offset) + headroom
        self.capacity = PoolAllocator.blockBytes(for: headroom + count) - headroom
        self.count = count
    }

    /// The headroom, for a pattern to write its frame header into when it sends.
    mutating func withUnsafeHeadroom<Result>(_ body: (UnsafeMutableRawBufferPointer) -> Result) -> Result {
        body(UnsafeMutableRawBufferPointer(start: start - headroom, count: headroom))
    }

    /// The whole slice, writable in place; a span that cannot outlive the loan.
    @inlinable
    public var bytes: MutableSpan<UInt8> {
        @_lifetime(&self)
        mutating get {
            // The slice is this loan's alone until it is sent or dropped; the lifetime is tied to `self`.
            let slice = UnsafeMutableBufferPointer(start: start.assumingMemoryBound(to: UInt8.self), count: capacity)
            return _overrideLifetime(MutableSpan(_unsafeElements: slice), mutating: &self)
        }
    }

    /// The whole slice as a raw buffer, for C and other code that takes pointers.
    /// The pointer is valid only inside `body`.
    @inlinable
    public mutating func withUnsafeMutableBytes<Result, Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeMutableRawBufferPointer(start: start, count: capacity))
    }

    /// Copies `source` to the start of the slice and makes it the payload
    /// (``count`` becomes its length).
    public mutating func write(_ source: some Collection<UInt8>) {
        precondition(source.count <= capacity, "\(source.count) bytes written to a slice of \(capacity)")
        let slice = UnsafeMutableBufferPointer(start: start.assumingMemoryBound(to: UInt8.self), count: capacity)
        _ = slice.initialize(fromContentsOf: source)
        count = source.count
    }

    /// Stores `value`'s bytes at `offset` of the slice (unaligned is fine).
    /// Inlinable: a generic call across modules would copy each value through
    /// its metadata (a `memcpy` per store).
    @inlinable
    public mutating func storeBytes<T: BitwiseCopyable>(of value: T, toByteOffset offset: Int = 0, as type: T.Type) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= capacity, "store outside the slice")
        start.storeBytes(of: value, toByteOffset: offset, as: type)
    }

    /// Hands the slice over to a send: no free in `deinit`.
    consuming func detach() -> (offset: UInt64, count: Int) {
        let result = (offset, headroom + count)
        pool.release()
        discard self
        return result
    }

    deinit {
        pool.takeRetainedValue().freeLoan(offset)
    }
}
