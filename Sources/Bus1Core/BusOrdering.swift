/// How a bus orders messages: chosen by the coordinator for the whole bus, told
/// to each peer in WELCOME (`BUS1_WELCOME_FIFO_ONLY`).
public enum BusOrdering: String, Sendable, Equatable, CaseIterable {
    /// Every receiver sees one global order that respects causality (tickets from
    /// the bus clock, staging marks, merge by ticket).
    case global
    /// Per-channel FIFO only: no staging, no merge (the last nanoseconds).
    case fifo
}
