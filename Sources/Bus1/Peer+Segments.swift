import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// Pool segments: who can read what this peer sends (see "Pool segments" in the
/// wire header). A receiver maps the sender's memory to read payloads in place,
/// so whatever one receiver can map, it can read. Payloads for peers of this
/// peer's own uid go to segment 0 (``loan(_:wait:timeout:)``); payloads
/// for peers of other uids go to a segment only their uids may map
/// (``loan(_:for:wait:timeout:)``), opened on first use.
extension Peer {
    /// Loans a slice readable by the owners of `destinations` (and nobody of any
    /// other uid): in segment 0 if they are all of this peer's uid, else in the
    /// segment for exactly their uids, opened on the first such loan (two
    /// coordinator round trips, once per audience; up to 15 audiences).
    /// Sending the loan to a node whose owner is outside that audience fails
    /// with ``Bus1Error/notInAudience(_:ownerUID:)``.
    public func loan(_ byteCount: Int, for destinations: [Handle], wait: WaitMode? = nil,
                     timeout: Duration? = nil) throws(Bus1Error) -> Loan {
        try loan(byteCount, segment: try segment(readableBy: destinations), wait: wait, deadline: .after(timeout))
    }

    /// ``loan(_:for:wait:timeout:)`` for one destination.
    public func loan(_ byteCount: Int, for destination: Handle, wait: WaitMode? = nil,
                     timeout: Duration? = nil) throws(Bus1Error) -> Loan {
        try loan(byteCount, segment: try segment(readableBy: destination), wait: wait, deadline: .after(timeout))
    }

    /// The segment readable by exactly the owner of `destination`'s node; for one
    /// of this peer's uid (the common case) no allocation and no search.
    @inline(__always)
    func segment(readableBy destination: Handle) throws(Bus1Error) -> Int {
        guard let target = handles[destination.id] else { throw .unknownHandle(destination) }
        return target.ownerUID == pool.ownerUID ? 0 : try segment(readableBy: [destination])
    }

    /// The segment whose audience is exactly the uids owning `destinations`.
    func segment(readableBy destinations: [Handle]) throws(Bus1Error) -> Int {
        guard !destinations.isEmpty else { throw .badDestinationCount(0, maximum: options.maximumMulticast) }
        var uids: [UInt32] = []
        for handle in destinations {
            guard let target = handles[handle.id] else { throw .unknownHandle(handle) }
            if !uids.contains(target.ownerUID) { uids.append(target.ownerUID) }
        }
        uids.sort()
        guard uids.count <= Int(BUS1_SEGMENT_AUDIENCE_MAX) else {
            let beyond = destinations.first { handles[$0.id]!.ownerUID == uids[Int(BUS1_SEGMENT_AUDIENCE_MAX)] }!
            throw .notInAudience(beyond, ownerUID: uids[Int(BUS1_SEGMENT_AUDIENCE_MAX)])
        }
        return try segment(for: uids)
    }

    /// The segment for exactly `audience` (strictly ascending; this peer's own
    /// uid alone is segment 0), opened if this peer has none for it yet.
    func segment(for audience: [UInt32]) throws(Bus1Error) -> Int {
        if let index = pool.segment(for: audience) { return index }
        return try openSegment(for: audience)
    }

    /// SEGMENT_OPEN, map, SEGMENT_SEAL: a new segment, as large as the pool, that
    /// only peers of `audience` can get. Checks what it maps like the pool.
    func openSegment(for audience: [UInt32]) throws(Bus1Error) -> Int {
        var reply = try request(.segmentOpen(.init(size: 0, audience: audience)))
        guard case .segmentGranted(let granted) = reply.message, granted.owner == id, granted.audience == audience,
              Int(granted.index) >= pool.segmentCount, granted.index < BUS1_SEGMENTS_MAX,
              let layout = bus1_pool_layout(poolSize: Int(clamping: granted.size))
        else { throw .protocolViolation("SEGMENT_OPEN answered with \(reply.message)") }
        let memory = reply.fds.take(0)
        do {
            guard try memory.size() == Int(granted.size), try MemFD.seals(of: memory).isSuperset(of: [.shrink, .grow]) else {
                throw Bus1Error.protocolViolation("segment size or seals do not match SEGMENT_GRANTED")
            }
            // Used only once sealed: receivers are given nothing before, and a loan in it
            // would close their channels.
            let mapping = try Mapping(memory, count: Int(granted.size), writable: true)
            try request(.segmentSeal(index: granted.index))
            guard try MemFD.seals(of: memory).isSuperset(of: [.shrink, .grow, .futureWrite]) else {
                throw Bus1Error.protocolViolation("segment not sealed against future writes")
            }
            pool.add(mapping, index: Int(granted.index), layout: layout, audience: audience)
            return Int(granted.index)
        } catch let error as Bus1Error {
            throw error
        } catch let error as LinuxError {
            throw .system(error)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    /// SEGMENT_GET: maps segment `index` of `channel`'s sender, read-only, after
    /// checking it like the pool of WELCOME (sealed against resizing and new
    /// writers: no SIGBUS, nobody else writes; a valid layout of the size given).
    /// A segment the coordinator will not give (none such, or not for this uid)
    /// is the sender's lie about its own memory: the channel is closed as
    /// ``ChannelViolation/badSlice``.
    func mapSegment(_ index: UInt32, of channel: InboundChannel) throws(Bus1Error) {
        var reply: ControlDatagram
        do {
            reply = try request(.segmentGet(channel: channel.id, index: index))
        } catch .refused(.segment) {
            try reportViolation(channel, .badSlice)
            return
        }
        guard case .segmentGranted(let granted) = reply.message, granted.owner == channel.sender, granted.index == index,
              let layout = bus1_pool_layout(poolSize: Int(clamping: granted.size))
        else { throw .protocolViolation("SEGMENT_GET answered with \(reply.message)") }
        let memory = reply.fds.take(0)
        do {
            guard try memory.size() == Int(granted.size),
                  try MemFD.seals(of: memory).isSuperset(of: [.shrink, .grow, .futureWrite])
            else { throw WireError.mismatch("sender segment seals or size") }
            channel.install(segment: index, try Mapping(memory, count: Int(granted.size), writable: false), layout: layout)
        } catch let error as LinuxError {
            throw .system(error)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }
}
