import Bus1
import Bus1Coordinator
import Bus1Linux
import Logging

/// Two peers on one thread of this process, on an embedded coordinator: every
/// message is sent, then received and released by the same thread, so a
/// message is always there when it is asked for and nothing ever waits. Each
/// instruction spent inside the measured functions (`bus1_profile_round_trips`,
/// `bus1_profile_batches`) is message-path work.
final class Workload {
    let embedded: EmbeddedCoordinator
    let a: Peer
    let b: Peer
    /// `a`'s handle to `b`'s node, and `b`'s to `a`'s.
    let toB: Handle
    let toA: Handle
    let size: Int

    init(size: Int, batch: Int) throws {
        self.size = size
        // poll(2), not io_uring, for the coordinator's loop: valgrind (3.19) keeps its
        // one-thread-at-a-time lock while a thread blocks in io_uring_enter, so the
        // peers' thread would never run again. The coordinator is not measured.
        embedded = try EmbeddedCoordinator.onPrivateSocket(
            named: "profile", logger: Logger(label: "bus1-profile", factory: { _ in SwiftLogNoOpLogHandler() }),
            configure: { $0.eventBackend = .poll })
        var options = PeerOptions(address: embedded.address)
        options.waitMode = .busyPoll
        a = try Peer.connect(options: options)
        b = try Peer.connect(options: options)
        try a.publish(try a.createNode(), as: "profile.a")
        try b.publish(try b.createNode(), as: "profile.b")
        toB = try a.lookup("profile.b")
        toA = try b.lookup("profile.a")
        // Warm-up, outside the measured functions: both channels exist and are
        // mapped on both sides, and the receivers have learned of them (the first
        // message on a new channel may need the coordinator's announcement, which
        // arrives on another thread's schedule).
        for _ in 0..<4 {
            try send(from: a, to: toB, marker: 1)
            try check(try b.receive(mode: .busyPoll, timeout: .seconds(30)), marker: 1)
            try send(from: b, to: toA, marker: 2)
            try check(try a.receive(mode: .busyPoll, timeout: .seconds(30)), marker: 2)
        }
        try a.sendBatch(to: toB, count: batch, sliceSize: size, wait: .busyPoll) { _, slice in
            slice.storeBytes(of: 3, as: UInt8.self)
            slice.storeBytes(of: 3, toByteOffset: size - 1, as: UInt8.self)
            return size
        }
        for _ in 0..<batch { try check(try b.receive(mode: .busyPoll, timeout: .seconds(30)), marker: 3) }
    }

    /// Loans `size` bytes, writes the first and last byte in place and sends them
    /// (what `bus1-bench latency` does per message).
    @inline(__always)
    func send(from peer: Peer, to handle: Handle, marker: UInt8) throws {
        var loan = try peer.loan(size, wait: .busyPoll)
        loan.count = size
        loan.storeBytes(of: marker, as: UInt8.self)
        loan.storeBytes(of: marker, toByteOffset: size - 1, as: UInt8.self)
        try peer.send(loan, to: handle, wait: .busyPoll)
    }

    /// The next message of `peer`, which must be there already: a missing one
    /// fails the run rather than being waited for (waiting would be counted).
    @inline(__always)
    func take(_ peer: Peer, marker: UInt8) throws -> Int {
        guard let message = try peer.tryReceive() else { throw ProfileError("no message ready: the workload would have to wait") }
        return try check(message, marker: marker)
    }

    /// Reads the first and last byte in place; drops (releases) the message.
    @discardableResult
    @inline(__always)
    func check(_ message: consuming Message, marker: UInt8) throws -> Int {
        guard message.kind == .data, message.payload.count == size,
              message.payload[0] == marker, message.payload[size - 1] == marker else {
            throw ProfileError("unexpected message (kind \(message.kind), \(message.payload.count) bytes)")
        }
        return Int(message.payload[0])
    }

    func stop() {
        a.disconnect()
        b.disconnect()
        embedded.stop()
    }
}

/// `count` round trips: a → b (sent, received, released), then b → a. Two
/// messages per round trip. The symbol name is fixed so callgrind can collect
/// only inside it (`--toggle-collect=bus1_profile_round_trips`).
@_silgen_name("bus1_profile_round_trips")
@inline(never)
func roundTrips(_ w: Workload, _ count: Int) throws -> Int {
    var sum = 0
    for _ in 0..<count {
        try w.send(from: w.a, to: w.toB, marker: 1)
        sum &+= try w.take(w.b, marker: 1)
        try w.send(from: w.b, to: w.toA, marker: 2)
        sum &+= try w.take(w.a, marker: 2)
    }
    return sum
}

/// `batches` batches of `batch` messages a → b with `Peer.sendBatch`, each
/// received and released by b before the next batch.
@_silgen_name("bus1_profile_batches")
@inline(never)
func batches(_ w: Workload, _ batches: Int, batch: Int) throws -> Int {
    var sum = 0
    let size = w.size
    for _ in 0..<batches {
        try w.a.sendBatch(to: w.toB, count: batch, sliceSize: size, wait: .busyPoll) { _, slice in
            slice.storeBytes(of: 3, as: UInt8.self)
            slice.storeBytes(of: 3, toByteOffset: size - 1, as: UInt8.self)
            return size
        }
        for _ in 0..<batch { sum &+= try w.take(w.b, marker: 3) }
    }
    return sum
}

struct ProfileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
