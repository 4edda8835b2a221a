import CBus1Wire
import Glibc

extension CoordinatorConfiguration {
    /// Payload sizes a pool may have: from `BUS1_POOL_DATA_MIN` up to the largest
    /// power of two whose whole pool (header page, ledger, payload) still has a
    /// layout under `bus1_pool_layout_of()` (which caps pools at 2^48 bytes, so
    /// sizes computed from it cannot overflow 64 bits): 2^47.
    public static var poolDataSizeLimits: ClosedRange<Int> {
        let smallest = Int(BUS1_POOL_DATA_MIN)
        var largest = smallest
        while bus1_pool_layout(poolSize: bus1_pool_layout.poolSize(forDataSize: largest << 1)) != nil { largest <<= 1 }
        return smallest...largest
    }

    /// Entries a ring may have (a power of two): what `ChannelGeometry` and every
    /// receiver's validation accept.
    public static var ringCapacityLimits: ClosedRange<Int> { 2...65536 }

    /// Whether `value` is a ring capacity a bus can serve (a power of two in ``ringCapacityLimits``).
    static func isRingCapacity(_ value: Int) -> Bool { ringCapacityLimits.contains(value) && value & (value - 1) == 0 }

    /// What every count limit (peers, nodes, handles, channels, queued messages and
    /// fds) accepts: at least one, and small enough that sums of a few never overflow.
    public static var countLimits: ClosedRange<Int> { 1...Int(Int32.max) }
    /// Handshake and held-reply timeouts: a millisecond to an hour.
    public static var timeoutMillisecondLimits: ClosedRange<Int> { 1...3_600_000 }

    /// The longest socket path: `sun_path` holds 108 bytes with the terminating NUL.
    public static var addressLengthLimit: Int { MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1 }

    /// Checks every setting against what the bus can serve; throws for the first
    /// one out of range, naming it. ``Coordinator`` calls this before it binds, so
    /// bus1d, its configuration file and embedded coordinators share one rule.
    public func validate() throws(ConfigurationError) {
        let address = self.address.utf8
        guard !address.isEmpty, !address.contains(0), address.count <= Self.addressLengthLimit else {
            throw ConfigurationError(.address, value: self.address,
                                     allowed: "a socket path of 1...\(Self.addressLengthLimit) bytes without NUL")
        }
        let pools = Self.poolDataSizeLimits
        try Self.require(.maxPoolSize, maximumPoolDataSize, in: pools, powerOfTwo: false)
        try Self.require(.poolSize, defaultPoolDataSize, in: pools.lowerBound...maximumPoolDataSize, powerOfTwo: true)
        try Self.require(.ringCapacity, defaultRingCapacity, in: Self.ringCapacityLimits, powerOfTwo: true)
        try Self.require(.coordinatorRingCapacity, coordinatorRingCapacity, in: Self.ringCapacityLimits, powerOfTwo: true)
        for (field, value) in [(Field.maxPeersPerUID, maximumPeersPerUID), (.maxNodes, maximumNodesPerPeer),
                               (.maxHandles, maximumHandlesPerPeer), (.maxChannels, maximumChannelsPerPeer),
                               (.maxQueuedControlMessages, maximumQueuedControlMessages),
                               (.maxQueuedFDsPerUID, maximumQueuedDescriptorsPerUID),
                               (.maxNodesPerUID, maximumNodesPerUID),
                               (.maxHandlesPerUID, maximumHandlesPerUID), (.maxChannelsPerUID, maximumChannelsPerUID),
                               (.maxHandshakes, maximumHandshakes), (.maxHandshakesPerUID, maximumHandshakesPerUID),
                               (.maxConnections, maximumConnections), (.maxBusChannels, maximumBusChannels)] {
            try Self.require(field, value, in: Self.countLimits, powerOfTwo: false)
        }
        try Self.require(.maxPoolBytesPerUID, maximumPoolBytesPerUID, in: Self.poolDataSizeLimits.lowerBound...Int.max / 2, powerOfTwo: false)
        try Self.require(.handshakeTimeoutMS, handshakeTimeoutMilliseconds, in: Self.timeoutMillisecondLimits, powerOfTwo: false)
        try Self.require(.heldReplyTimeoutMS, heldReplyTimeoutMilliseconds, in: Self.timeoutMillisecondLimits, powerOfTwo: false)
        if let invalid = allowedUIDs.first(where: { $0 == UInt32.max }) {
            throw ConfigurationError(.allowUIDs, value: "\(invalid)", allowed: "uids below \(UInt32.max) ((uid_t)-1 names no user)")
        }
    }

    private static func require(_ field: Field, _ value: Int, in range: ClosedRange<Int>, powerOfTwo: Bool) throws(ConfigurationError) {
        guard range.contains(value), !powerOfTwo || value & (value - 1) == 0 else {
            throw ConfigurationError(field, value: "\(value)",
                                     allowed: "\(powerOfTwo ? "a power of two" : "a whole number") in \(range.lowerBound)...\(range.upperBound)")
        }
    }
}
