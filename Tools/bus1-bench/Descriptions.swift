/// What each row measures, in a sentence: the `description` field of JSON and CSV,
/// and the legend under the table. README's "Measuring" section says the same.
func rowDescription(benchmark: String, mechanism: String, mode: String = "") -> String? {
    if benchmark == "connect" { return connectDescription(step: mode) }
    return switch (benchmark, mechanism) {
    case ("latency", "bus1"):
        "Bus1 peers: loan, write the first and last byte in place, send; the echo reads them and answers the same way; the sender reads the reply's last byte"
    case ("latency", "bus1-async"):
        "the Bus1 round trip through the async API: both processes run it in a task that awaits each loan, send and receive (the echo in forEachMessage)"
    case ("latency", "shm-spin"):
        "shared page, both sides spinning: write the payload's first and last byte, release-store a sequence word; the echo acquire-spins on it, copies those bytes into its reply and stores its own word; the sender reads the reply's last byte"
    case ("latency", "futex"):
        "the shm-spin ping-pong, but each side sleeps in FUTEX_WAIT on the other's word and is woken by a FUTEX_WAKE after every store (a syscall per message per side)"
    case ("latency", "unix-socket"):
        "write() the whole payload to a Unix stream socket; the echo read()s all of it and writes it back (every byte copied through the kernel both ways)"
    case ("latency", "pipe"):
        "the unix-socket ping-pong over two pipes"
    case ("throughput", "bus1"):
        "Bus1: loan + send per message, or sendBatch of `batch`; the producer writes each payload's first and last byte, the sink reads them; timed to the sink's acknowledgement"
    case ("throughput", "bus1-async"):
        "the unbatched Bus1 stream through the async API: producer and sink each in a task that awaits each loan, send and receive"
    case ("throughput", "shm-spin"):
        "SPSC ring (256 slots; fewer above 256 KiB, ≤ 64 MiB): indices on their own lines, each side caches the other's and re-reads it only when full/empty, publishes once per `batch` (≤ half the ring; blank: per message) and spins when it must wait; writes/reads each slot's first and last byte"
    case ("throughput", "futex"):
        "the shm-spin ring, but a side that must wait parks at once on a futex doorbell (Bus1's wake-page protocol), and each publication adds a seq_cst fence and a FUTEX_WAKE only when the other side sleeps"
    case ("throughput", "unix-socket"):
        "one write() of the payload per message to a Unix stream socket, the consumer read()s it (copied through the kernel); timed from the consumer's ready byte to its acknowledgement"
    case ("throughput", "pipe"):
        "the unix-socket stream over a pipe"
    case ("throughput", "c-shm-spin"):
        "bus1-c-ring: the shm-spin ring written in plain C (same layout, rules and bytes touched); forks its consumer"
    case ("throughput", "c-futex"):
        "bus1-c-ring --park: the futex ring written in plain C"
    case ("fanout", "bus1"):
        "Bus1 multicast send to N receiver peers; each stamps CLOCK_MONOTONIC when it has the message and acknowledges; latency: send → the last stamp"
    case ("latency", "bus1-call"):
        "request/reply: ServiceClient.call (an actor; the request copied into a loan) → Service.nextRequest → a reply written in place (first and last byte) → the client reads the reply's last byte; one message each way, no coordinator"
    case ("fanout", "bus1-topic"):
        "Topic.publish (block policy) to N TopicSubscriber processes; each stamps CLOCK_MONOTONIC when it has the message and acknowledges on a second peer; latency: publish → the last stamp"
    case ("control-ops", "bus1"):
        "N client processes released together, each looping create node, publish it, look it up, destroy it (one request and reply each, the client blocked on its reply); operations/s: all of them over start → the last client's finish; latency: per operation"
    case ("fanout", "futex"):
        "one writer release-stores a sequence word and wakes all N parked receivers with one FUTEX_WAKE; each stamps CLOCK_MONOTONIC, reads the first and last byte and acknowledges; latency: store → the last stamp"
    default:
        nil
    }
}

/// The connect rows, one per step (`mode`; Peer.connectTimings).
private func connectDescription(step: String) -> String? {
    switch step {
    case "total": "Peer.connect then disconnect from one process, again and again: the connect as its caller sees it (size: the pool's payload area)"
    case "socket": "connect step: socket() and connect() to the bus socket"
    case "parker": "connect step: creating the peer's parker (its io_uring, or the futex fallback)"
    case "welcome": "connect step: HELLO → WELCOME, the coordinator making the pool, wake page and coordinator ring memfds"
    case "mapping": "connect step: mapping the pool, wake page, clock and coordinator ring, and setting up the pool allocator"
    case "sealing": "connect step: POOL_MAPPED → OK, the coordinator sealing the pool, and the peer checking the seals"
    default: nil
    }
}

/// Fills every row's `description`.
func describe(_ rows: inout [Row]) {
    for i in rows.indices where rows[i].description == nil {
        rows[i].description = rowDescription(benchmark: rows[i].benchmark, mechanism: rows[i].mechanism, mode: rows[i].mode)
    }
}

/// The legend printed under the table: one line per (benchmark, mechanism) shown.
func legend(_ rows: [Row]) -> String {
    var seen: Set<String> = []
    var lines: [String] = []
    for row in rows {
        let key = "\(row.benchmark) \(row.mechanism)" + (row.benchmark == "connect" ? " \(row.mode)" : "")
        guard let text = row.description, seen.insert(key).inserted else { continue }
        lines.append("  \(key): \(text)")
    }
    return lines.isEmpty ? "" : "\n\nWhat each row does:\n" + lines.joined(separator: "\n")
}
