extension CoordinatorConfiguration {
    /// Names one setting of a bus, the same way everywhere an operator meets it:
    /// the `bus1d` flag is `--` and this name, the configuration file key is this
    /// name (in its section), and a ``ConfigurationError`` names it so.
    public enum Field: String, Sendable, CaseIterable, CustomStringConvertible {
        case address
        case poolSize = "pool-size"
        case maxPoolSize = "max-pool-size"
        case ringCapacity = "ring-capacity"
        case coordinatorRingCapacity = "coordinator-ring-capacity"
        case maxPeersPerUID = "max-peers-per-uid"
        case maxNodes = "max-nodes"
        case maxHandles = "max-handles"
        case maxChannels = "max-channels"
        case maxQueuedControlMessages = "max-queued-control-messages"
        case maxQueuedFDsPerUID = "max-queued-fds-per-uid"
        case maxPoolBytesPerUID = "max-pool-bytes-per-uid"
        case maxNodesPerUID = "max-nodes-per-uid"
        case maxHandlesPerUID = "max-handles-per-uid"
        case maxChannelsPerUID = "max-channels-per-uid"
        case maxHandshakes = "max-handshakes"
        case maxConnections = "max-connections"
        case maxBusChannels = "max-bus-channels"
        case maxHandshakesPerUID = "max-handshakes-per-uid"
        case handshakeTimeoutMS = "handshake-timeout-ms"
        case heldReplyTimeoutMS = "held-reply-timeout-ms"
        case allowUIDs = "allow-uid"
        case names
        case ordering
        case eventBackend = "event-backend"

        public var description: String { rawValue }
    }
}
