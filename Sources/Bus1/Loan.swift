import Bus1Core

/// A slice of the sender's own pool, loaned to be filled in place and then sent.
///
/// Write the payload into ``bytes`` and set ``count`` to the bytes to send (it
/// starts at the size asked for). Sending consumes the loan; dropping it returns
/// the slice to the pool.
public struct Loan: ~Copyable {
    /// Retained while the loan lives: the pool must outlive the slice.
    private let pool: Unmanaged<SegmentedPool>
    let offset: UInt64
    /// The whole slice (at least the size asked for), writable.
    public let bytes: UnsafeMutableRawBufferPointer
    /// Bytes to send, `0...bytes.count`.
    public var count: Int {
        didSet { precondition(count >= 0 && count <= bytes.count, "loan count outside the slice") }
    }

    /// The loaned block at `offset` of `pool`, `count` bytes of it to send.
    init(pool: SegmentedPool, offset: UInt64, count: Int) {
        self.pool = Unmanaged.passRetained(pool)
        self.offset = offset
        self.bytes = UnsafeMutableRawBufferPointer(start: pool.pointer(at: offset), count: pool.capacity(at: offset)!)
        self.count = count
    }

    /// The payload to send: the first ``count`` bytes.
    public var payload: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: bytes[..<count]) }

    /// Hands the slice over to a send: no free in `deinit`.
    consuming func detach() -> (offset: UInt64, count: Int) {
        let result = (offset, count)
        pool.release()
        discard self
        return result
    }

    deinit {
        pool.takeRetainedValue().freeLoan(offset)
    }
}
