import Metrics

/// How a peer exports its counters through swift-metrics (``PeerOptions/metrics``).
public struct PeerMetricsOptions: Sendable {
    /// Prefix of every metric's label: `<prefix>_messages_sent` and so on.
    public var prefix: String
    /// Dimensions added to every metric (the peer's id is always added as `peer`).
    public var dimensions: [(String, String)]
    /// Where the metrics go; nil: the process's bootstrapped `MetricsSystem`.
    public var factory: (any MetricsFactory)?

    public init(prefix: String = "bus1", dimensions: [(String, String)] = [], factory: (any MetricsFactory)? = nil) {
        self.prefix = prefix
        self.dimensions = dimensions
        self.factory = factory
    }
}

/// The swift-metrics side of ``PeerStatistics``: counters advance by what the
/// statistics gained since the last recording, gauges take the pool figures.
///
/// Recorded off the message path: when the peer parks or awaits, at
/// ``Peer/recordMetrics()`` and at disconnect. A metrics backend takes a lock per update; a busy peer moving
/// millions of messages a second must not pay that per message.
final class PeerMetrics {
    private let counters: [(KeyPath<PeerStatistics, Int>, Counter)]
    private let poolBytes: Gauge
    private let slices: Gauge
    private var recorded = PeerStatistics()

    init(_ options: PeerMetricsOptions, peer: UInt64) {
        let dimensions = [("peer", "\(peer)")] + options.dimensions
        let factory = options.factory ?? MetricsSystem.factory
        func counter(_ name: String) -> Counter { Counter(label: "\(options.prefix)_\(name)", dimensions: dimensions, factory: factory) }
        counters = [
            (\.messagesSent, counter("messages_sent")),
            (\.messagesReceived, counter("messages_received")),
            (\.violationsDetected, counter("violations_detected")),
            (\.orderingStalls, counter("ordering_stalls")),
            (\.parks, counter("parks")),
            (\.creditWaits, counter("credit_waits")),
            (\.loanWaits, counter("loan_waits")),
            (\.messagesAbandoned, counter("messages_abandoned")),
            (\.clockAnomalies, counter("clock_anomalies")),
        ]
        poolBytes = Gauge(label: "\(options.prefix)_pool_bytes_in_use", dimensions: dimensions, factory: factory)
        slices = Gauge(label: "\(options.prefix)_slices_in_use", dimensions: dimensions, factory: factory)
    }

    /// Advances the counters to `statistics`.
    func record(_ statistics: PeerStatistics) {
        for (field, counter) in counters {
            let gained = statistics[keyPath: field] - recorded[keyPath: field]
            if gained > 0 { counter.increment(by: gained) }
        }
        poolBytes.record(statistics.poolBytesInUse)
        slices.record(statistics.slicesInUse)
        recorded = statistics
    }
}
