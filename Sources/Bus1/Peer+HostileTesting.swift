import Bus1Core
import CBus1Wire
import Glibc

/// Deliberately broken sends, for tests that play a hostile peer against real
/// receivers. Not API: reachable only through `@_spi(HostileTesting) import Bus1`.
@_spi(HostileTesting)
extension Peer {
    /// What to forge in a descriptor.
    public struct Forgery: Sendable {
        public var ticket: UInt64?
        public var node: UInt64?
        public var offset: UInt64?
        public var length: UInt32?
        public var flags: UInt32?
        public init(ticket: UInt64? = nil, node: UInt64? = nil, offset: UInt64? = nil, length: UInt32? = nil, flags: UInt32? = nil) {
            self.ticket = ticket; self.node = node; self.offset = offset; self.length = length; self.flags = flags
        }
    }

    /// Publishes one descriptor on the channel behind `handle`, with the fields
    /// in `forgery` replacing honest ones (the payload is a real 64-byte slice).
    /// The send itself runs the honest protocol (`Publisher`: staged, a ticket
    /// taken, unstaged, the receiver woken); a forged ticket replaces the one taken.
    /// Returns the ticket written.
    @discardableResult
    public func sendForged(to handle: Handle, _ forgery: Forgery) throws(Bus1Error) -> UInt64 {
        let (target, channel) = try forgingTarget(handle)
        let loan = try self.loan(64)
        let (offset, count) = loan.detach()
        var descriptor = bus1_descriptor()
        // The honest protocol, with forged fields written in place of honest ones.
        let sent = publisher.send(on: CollectionOfOne(channel.lane)) { ticket in
            descriptor.ticket = forgery.ticket ?? ticket
            pool.markSent(offset, channelTag: channel.tag, ticket: descriptor.ticket, receiver: channel.receiver, length: count)
            descriptor.node = forgery.node ?? target.node
            descriptor.offset = forgery.offset ?? offset
            descriptor.length = forgery.length ?? UInt32(count)
            descriptor.flags = forgery.flags ?? 0
            channel.producer.submit(descriptor)
        }
        if let anomaly = sent.anomaly { noteClockAnomaly(anomaly) }
        return descriptor.ticket
    }

    /// Marks the channel behind `handle` as staging (a send in progress) and
    /// returns without taking a ticket or publishing: a sender frozen mid-send.
    public func stageWithoutSending(to handle: Handle) throws(Bus1Error) {
        let (_, channel) = try forgingTarget(handle)
        publisher.stageOnly(channel.lane)
    }

    /// Attaches `passed` and `fileDescriptors` for the next message to `handle`,
    /// as ``send(_:to:attaching:fileDescriptors:wait:timeout:)`` does,
    /// then sends nothing: a sender that attached and moved on.
    public func attachWithoutSending(to handle: Handle, attaching passed: [Handle], fileDescriptors: [Int32]) throws(Bus1Error) {
        let (_, channel) = try forgingTarget(handle)
        _ = try request(.attach(destination: handle.id, handles: passed.map(\.id), fdCount: UInt32(fileDescriptors.count),
                                sequence: channel.producer.nextIndex),
                        fds: fileDescriptors)
    }

    /// Overwrites 8 bytes of the channel memory behind `handle` at `byteOffset`
    /// (header fields, ring slots): corruption for inspectors to find.
    public func overwriteChannel(to handle: Handle, atByteOffset byteOffset: Int, with value: UInt64) throws(Bus1Error) {
        let (_, channel) = try forgingTarget(handle)
        precondition(byteOffset >= 0 && byteOffset + 8 <= channel.producer.memory.mapping.count, "offset outside the channel")
        channel.producer.memory.mapping.base.storeBytes(of: value, toByteOffset: byteOffset, as: UInt64.self)
    }

    /// Writes `value` into the bus clock's ticket word, as any peer can (every
    /// sender `fetch_add`s it): a rewind, a jump, a wrap.
    public func writeClock(_ value: UInt64) {
        clock.ticket.storeReleasing(value)  // publishes the forged clock to every ticket taker
    }

    /// The bus clock's ticket word as it is now.
    public var clockValue: UInt64 { clock.ticket.loadRelaxed() }

    /// Writes `mark` into the staging word of the channel behind `handle` (0:
    /// "not sending"), without sending anything: a staller cycling its mark.
    public func writeStagingMark(to handle: Handle, _ mark: UInt64) throws(Bus1Error) {
        let (_, channel) = try forgingTarget(handle)
        channel.producer.memory.mapping.base.storeBytes(of: mark, toByteOffset: MemoryLayout<bus1_channel_header>.offset(of: \.staging)!,
                                                        as: UInt64.self)
    }

    /// On the inbound channel from peer `sender`, publishes a completion for
    /// `offset` (a slice the sender may never have sent here, or one completed
    /// already), or, with `tail`, writes the completion index itself.
    public func forgeCompletion(from sender: UInt64, offset: UInt64, tail: UInt64? = nil) throws(Bus1Error) {
        guard let channel = inbound.first(where: { $0.sender == sender }) else { throw .protocolViolation("no inbound channel from \(sender)") }
        if let tail {
            channel.consumer.memory.mapping.base.storeBytes(of: tail, toByteOffset: MemoryLayout<bus1_channel_header>.offset(of: \.comp_tail)!,
                                                            as: UInt64.self)
        } else {
            do { try channel.consumer.complete(offset: offset) } catch { throw .protocolViolation("completion ring: \(error)") }
        }
        channel.senderWake?.ring()
    }

    /// Where `message`'s slice lies in its sender's pool (what a completion names).
    public func sliceOffset(of message: borrowing Message) -> UInt64 { message.offset }

    /// This peer's outbound channel ids, for tests.
    public var outboundChannelIDs: [UInt64] { Array(outbound.keys) }
}

@_spi(HostileTesting)
extension Peer {
    /// Asks the coordinator for segment `index` of the pool of `sender` (the
    /// sender of one of this peer's inbound channels), as a receiver does on the
    /// first descriptor naming it, whether or not any descriptor does. Nil if it
    /// was granted (the fd is closed, nothing is mapped), else the refusal.
    public func probeSegment(_ index: UInt32, ofSender sender: UInt64) throws(Bus1Error) -> Refusal? {
        guard let channel = inbound.first(where: { $0.sender == sender }) else { throw .unknownHandle(.invalid) }
        do {
            _ = try controlRequest(.segmentGet(channel: channel.id, index: index))
            return nil
        } catch .refused(let refusal) {
            return refusal
        }
    }

    /// Sends any request, as written, and returns the reply (its fds closed): for
    /// tests of what the coordinator refuses. A refusal throws ``Bus1Error/refused(_:)``.
    public func controlRequest(_ message: ControlMessage) throws(Bus1Error) -> ControlMessage {
        try request(message).message  // its fds close with the datagram
    }

    /// Where a hostile send to `handle` goes: its open channel, whatever the node's
    /// state (a forger sends to destroyed nodes too); a closed one says why.
    private func forgingTarget(_ handle: Handle) throws(Bus1Error) -> (HandleTarget, OutboundChannel) {
        guard let target = handles[handle.id] else { throw .unknownHandle(handle) }
        switch target.route {
        case .open(let channel): return (target, channel)
        case .closed(let peer, let reason): throw .channelClosed(peer: peer, reason: reason)
        case .own: throw .unknownHandle(handle)
        }
    }
}
