import Bus1Core
import Bus1Linux
import CBus1Wire

public typealias ChannelViolation = Bus1Core.ChannelViolation
public typealias WaitMode = Bus1Core.WaitMode
public typealias ParkBackend = Bus1Core.ParkBackend

/// A peer-local name for a node: what ``Peer/send(_:to:wait:)`` addresses.
/// Ids are never reused within a peer.
public struct Handle: Hashable, Sendable, CustomStringConvertible {
    public let id: UInt64
    public init(id: UInt64) { self.id = id }
    public var description: String { "handle \(id)" }
}

/// A channel this peer sends on: its submission producer, the receiver's wake
/// page, and the tag its slices carry in the pool allocator.
final class OutboundChannel {
    let id: UInt64
    let receiver: UInt64
    let tag: UInt32
    @exclusivity(unchecked) var producer: SubmissionProducer
    let receiverWakeMapping: Mapping
    let receiverWake: WakePage
    var closedReason: CloseReason?

    init(id: UInt64, receiver: UInt64, tag: UInt32, producer: consuming SubmissionProducer,
         receiverWakeMapping: consuming Mapping, receiverWake: WakePage) {
        self.id = id
        self.receiver = receiver
        self.tag = tag
        self.producer = producer
        self.receiverWakeMapping = receiverWakeMapping
        self.receiverWake = receiverWake
    }
}

/// A channel this peer receives on: the submission consumer, the sender's pool
/// (mapped read-only: payloads are read in place), the sender's wake page (to
/// wake it after returning slices), and the nodes the sender may address.
///
/// Kept alive by every ``Message`` taken from it, so a message can be released
/// after the channel closed (the release is then dropped).
final class InboundChannel {
    let id: UInt64
    let sender: UInt64
    @exclusivity(unchecked) var consumer: SubmissionConsumer
    let pool: Mapping
    /// Where the sender's payload area starts (slices before it are refused).
    let payloadOffset: UInt64
    let senderWakeMapping: Mapping
    let senderWake: WakePage
    var allowedNodes: Set<UInt64>
    var isClosed = false
    /// A violation found while releasing (in a `deinit`, which cannot throw); the
    /// peer reports it at its next call.
    var pendingViolation: ChannelViolation?
    /// Where this channel announces a pending violation, so the peer's hot path
    /// checks one flag instead of every channel.
    let violations: ViolationInbox

    init(id: UInt64, sender: UInt64, consumer: consuming SubmissionConsumer, pool: consuming Mapping, payloadOffset: UInt64,
         senderWakeMapping: consuming Mapping, senderWake: WakePage, firstNode: UInt64, violations: ViolationInbox) {
        self.violations = violations
        self.id = id
        self.sender = sender
        self.consumer = consumer
        self.pool = pool
        self.payloadOffset = payloadOffset
        self.senderWakeMapping = senderWakeMapping
        self.senderWake = senderWake
        self.allowedNodes = [firstNode]
    }

    /// Whether `[offset, offset + length)` lies in the sender's payload area.
    @inline(__always)
    func sliceIsValid(offset: UInt64, length: UInt32) -> Bool {
        offset >= payloadOffset && offset <= UInt64(pool.count)
            && UInt64(length) <= UInt64(pool.count) - offset
    }

    /// Returns a slice to the sender and wakes it if it sleeps.
    @inline(__always)
    func release(offset: UInt64) {
        guard !isClosed else { return }
        do {
            try consumer.complete(offset: offset)
            senderWake.ring()
        } catch {
            if pendingViolation == nil {
                pendingViolation = error
                violations.channels.append(self)
            }
        }
    }
}

/// Inbound channels with a violation found in a `Message`'s `deinit`, waiting to be
/// reported by the peer's next call.
final class ViolationInbox {
    var channels: [InboundChannel] = []
}
