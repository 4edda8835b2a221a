import Bus1Core
import CBus1Wire

extension CoordinatorConfiguration {
    /// The pool a HELLO gets: asked for `requested` bytes in all (0: the default
    /// payload size), it gets the smallest power-of-two payload area whose whole
    /// pool is at least that, within ``maximumPoolDataSize``. Nil when no pool
    /// fits: the caller refuses with a pool-bytes quota.
    ///
    /// Never traps, whatever the request or the configuration: the payload size
    /// only doubles while it is below a limit of at most 2^47
    /// (``poolDataSizeLimits``), sizes stay in `UInt64` until the wire's own
    /// `bus1_pool_layout_of()` accepted them, and a size it refuses is `nil`.
    func pool(forRequest requested: UInt64) -> (size: Int, layout: bus1_pool_layout)? {
        let limits = Self.poolDataSizeLimits
        let ceiling = min(maximumPoolDataSize, limits.upperBound)
        var dataSize = defaultPoolDataSize
        if requested != 0 {
            dataSize = limits.lowerBound
            while dataSize < ceiling, bus1_pool_size_for(UInt64(dataSize)) < requested { dataSize <<= 1 }
        }
        guard limits.contains(dataSize), dataSize <= maximumPoolDataSize, dataSize & (dataSize - 1) == 0 else { return nil }
        let size = bus1_pool_size_for(UInt64(dataSize))
        guard size >= requested, let layout = bus1_pool_layout(poolSize: Int(size)) else { return nil }
        return (Int(size), layout)
    }
}
