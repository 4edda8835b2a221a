import Synchronization

/// What the coordinator counts, readable from any thread (tests, operators)
/// while the loop runs; the loop's thread is the only writer. Relaxed: each is a
/// statistic, publishing nothing else.
final class CoordinatorCounters: Sendable {
    let protocolErrors = Atomic<Int>(0)
    let violationsReported = Atomic<Int>(0)
    let orderingStalls = Atomic<Int>(0)
    let peers = Atomic<Int>(0)
    let connectionsRefused = Atomic<Int>(0)
    let handshakeTimeouts = Atomic<Int>(0)
    let acceptFailures = Atomic<Int>(0)
    let loopFailures = Atomic<Int>(0)
    let heldReplyTimeouts = Atomic<Int>(0)
    let repliesHeld = Atomic<Int>(0)
    let clockAnomalies = Atomic<Int>(0)
}
