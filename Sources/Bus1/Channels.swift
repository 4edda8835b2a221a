import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

public typealias ChannelViolation = Bus1Core.ChannelViolation
public typealias WaitMode = Bus1Core.WaitMode
public typealias ParkBackend = Bus1Core.ParkBackend
public typealias BusOrdering = Bus1Core.BusOrdering

/// A peer-local name for a node: what ``Peer/send(_:to:wait:timeout:)-(_,Handle,_,_)`` addresses.
/// Ids are never reused within a peer.
public struct Handle: Hashable, Sendable, CustomStringConvertible {
    public let id: UInt64
    public init(id: UInt64) { self.id = id }
    /// What a message carries in place of a handle whose node was destroyed
    /// before the message's ticket.
    public static let invalid = Handle(id: BUS1_INVALID_ID)
    public var isValid: Bool { id != BUS1_INVALID_ID }
    public var description: String { isValid ? "handle \(id)" : "invalid handle" }
}

/// A channel this peer sends on: its submission producer, the receiver's wake
/// page, and the tag its slices carry in the pool allocator. Used on the owning
/// peer's one thread: its mutable state is `@exclusivity(unchecked)`, like the
/// peer's hot state (`Peer`), since a runtime check per send costs more than the send.
final class OutboundChannel {
    let id: UInt64
    let receiver: UInt64
    let tag: UInt32
    @exclusivity(unchecked) var producer: SubmissionProducer
    let receiverWakeMapping: Mapping
    let receiverWake: WakePage
    /// The ring and the receiver's wake page, as the send protocol uses them.
    let lane: PublishLane
    @exclusivity(unchecked) var closedReason: CloseReason?

    init(id: UInt64, receiver: UInt64, tag: UInt32, producer: consuming SubmissionProducer,
         receiverWakeMapping: consuming Mapping, receiverWake: WakePage) {
        self.id = id
        self.receiver = receiver
        self.tag = tag
        self.producer = producer
        self.receiverWakeMapping = receiverWakeMapping
        self.receiverWake = receiverWake
        lane = self.producer.lane(waking: receiverWake)
    }
}

/// A channel this peer receives on: the submission consumer, the segments of the
/// sender's pool this peer may read (mapped read-only, on the first descriptor
/// that names each: payloads are read in place), the sender's wake page (to
/// wake it after returning slices), and the nodes the sender may address.
/// The coordinator ring is one too, with no segments and no wake page: its
/// descriptors are notifications, merged with data by ticket.
///
/// Kept alive by every ``Message`` taken from it, so a message can be released
/// after the channel closed (the release is then dropped). Used on the owning
/// peer's one thread: its mutable state is `@exclusivity(unchecked)`, like the
/// peer's hot state (`Peer`).
final class InboundChannel {
    let id: UInt64
    let sender: UInt64
    /// The sender's credentials as the coordinator stamped them on CHANNEL_OPENED
    /// (nil: the coordinator ring). Kept once per channel, so a message finds them
    /// through its channel and carries no copy (``Message/senderCredentials``).
    let senderCredentials: PeerCredentials?
    @exclusivity(unchecked) var consumer: SubmissionConsumer
    /// The sender's wake page mapping and the segments mapped so far (nil: the
    /// coordinator ring).
    let sharedMemory: SenderMemory?
    /// Where each segment of the sender's pool is mapped, by index (an empty
    /// window: not mapped): `BUS1_SEGMENTS_MAX` entries in memory of its own, so
    /// the hot path reads one without reference counting or a bounds check beyond
    /// the index's own.
    private let windows: UnsafeMutablePointer<SegmentWindow>
    let senderWake: WakePage?
    @exclusivity(unchecked) var allowedNodes: Set<UInt64>
    /// The node the last descriptor that passed named: a stream to one node hashes
    /// once (nodes are never taken out of `allowedNodes`).
    @exclusivity(unchecked) private var lastAllowedNode: UInt64?
    /// Attachments the coordinator delivered for this channel, oldest first; each
    /// `BUS1_DESC_ATTACHMENT` descriptor takes the first.
    @exclusivity(unchecked) var attachments: [Attachment] = []
    @exclusivity(unchecked) var isClosed = false
    /// A violation found while releasing (in a `deinit`, which cannot throw); the
    /// peer reports it at its next call.
    @exclusivity(unchecked) var pendingViolation: ChannelViolation?
    /// Where this channel announces a pending violation, so the peer's hot path
    /// checks one flag instead of every channel.
    let violations: ViolationInbox
    /// How long this channel's staging mark has held the merge back (the stall
    /// rule: see `OrderingStall`). Changed only by the merge and by ``take(_:)``,
    /// on the peer's one thread: unchecked like the peer's hot state (`Peer`).
    @exclusivity(unchecked) var stall = OrderingStall.clear

    init(id: UInt64, sender: UInt64, senderCredentials: PeerCredentials?, consumer: consuming SubmissionConsumer,
         memory: SenderMemory?, senderWake: WakePage?, firstNode: UInt64?, violations: ViolationInbox) {
        self.violations = violations
        self.id = id
        self.sender = sender
        self.senderCredentials = senderCredentials
        self.consumer = consumer
        self.sharedMemory = memory
        self.senderWake = senderWake
        windows = .allocate(capacity: Int(BUS1_SEGMENTS_MAX))
        windows.initialize(repeating: SegmentWindow(), count: Int(BUS1_SEGMENTS_MAX))
        self.allowedNodes = firstNode.map { [$0] } ?? []
    }

    deinit {
        windows.deallocate()  // plain values: nothing to deinitialize
    }

    /// Takes the descriptor the consumer peeked (delivered or dropped): the ring
    /// moves on, and a stall episode ends if its ticket is above what it held back.
    @inline(__always)
    func take(_ descriptor: bus1_descriptor) {
        consumer.advance(ticket: descriptor.ticket)
        if !stall.isClear { stall.took(descriptor.ticket) }
    }

    /// Judges a descriptor the ring already validated (indices, ticket, flags):
    /// may the sender address its node, and where is its slice mapped here?
    /// `.deliverable` if the slice lies in the payload area of a segment this peer
    /// mapped; `.unmappedSegment` if it names a segment not asked for yet;
    /// `.violation(.badSlice)` for an index beyond the wire's or a slice outside
    /// the payload area.
    @inline(__always)
    func inspect(_ descriptor: bus1_descriptor) -> Inspection {
        if descriptor.node != lastAllowedNode {
            guard allowedNodes.contains(descriptor.node) else { return .nodeNotAllowed }
            lastAllowedNode = descriptor.node
        }
        let index = descriptor.offset >> UInt64(BUS1_SEGMENT_SHIFT)
        guard index < UInt64(BUS1_SEGMENTS_MAX) else { return .violation(.badSlice) }
        let window = windows[Int(index)]
        guard let base = window.base else { return .unmappedSegment(UInt32(index)) }
        let local = descriptor.offset & UInt64(BUS1_SEGMENT_OFFSET_MASK)
        guard local >= window.payloadOffset, local <= window.count, UInt64(descriptor.length) <= window.count - local else {
            return .violation(.badSlice)
        }
        return .deliverable(base + Int(local))
    }

    /// Keeps segment `index` of the sender's pool, mapped read-only, with its layout.
    func install(segment index: UInt32, _ mapping: consuming Mapping, layout: bus1_pool_layout) {
        guard let memory = sharedMemory, index < BUS1_SEGMENTS_MAX else { return }
        windows[Int(index)] = SegmentWindow(base: UnsafeRawPointer(mapping.base), count: UInt64(mapping.count), payloadOffset: layout.data_offset)
        memory.segments.append(MappedSegment(mapping))
    }

    /// Returns a slice to the sender and wakes it if it sleeps.
    @inline(__always)
    func release(offset: UInt64) {
        guard !isClosed else { return }
        do {
            try consumer.complete(offset: offset)
            senderWake?.ring()
        } catch {
            if pendingViolation == nil {
                pendingViolation = error
                violations.channels.append(self)
            }
        }
    }
}

extension InboundChannel: MergeLink {
    @inline(__always)
    func peekHead() throws(ChannelViolation) -> bus1_descriptor? { try consumer.peek() }
    @inline(__always)
    func stagingMark() -> UInt64 { consumer.stagingMark() }
}

/// What an inbound descriptor is, judged in full (see ``InboundChannel/inspect(_:)``).
enum Inspection {
    /// Valid: its payload is mapped here.
    case deliverable(UnsafeRawPointer)
    /// It names a node the sender may not address (yet: a grant may be queued).
    case nodeNotAllowed
    /// It names a segment of the sender's pool not mapped here yet.
    case unmappedSegment(UInt32)
    case violation(ChannelViolation)
}

/// One mapped segment of a sender's pool, as the merge reads it.
struct SegmentWindow {
    var base: UnsafeRawPointer?
    var count: UInt64 = 0
    /// Where the payload area starts (slices before it are refused).
    var payloadOffset: UInt64 = 0
}

/// The sender's wake page and the segments of its pool this peer mapped
/// (read-only), for an inbound channel; unmapped when the channel and every
/// message taken from it are gone.
final class SenderMemory {
    let wake: Mapping
    var segments: [MappedSegment] = []
    init(wake: consuming Mapping) {
        self.wake = wake
    }
}

/// A mapping in a class box, so a table can hold several.
final class MappedSegment {
    let mapping: Mapping
    init(_ mapping: consuming Mapping) { self.mapping = mapping }
}

/// Handles and fds that came with a message (`BUS1_MSG_ATTACHMENT`). The fds are
/// the receiver's (close-on-exec); those nobody takes are closed with it.
public final class Attachment {
    /// This peer's handles, one per handle the sender passed (``Handle/invalid``
    /// where the node was destroyed first). Each valid one holds a reference: give
    /// it back with ``Peer/release(_:)``.
    public internal(set) var handles: [Handle]
    private var descriptors: [Int32]
    /// The submission index of the descriptor that carries it.
    let sequence: UInt64

    init(handles: [Handle], descriptors: [Int32], sequence: UInt64) {
        self.handles = handles
        self.descriptors = descriptors
        self.sequence = sequence
    }

    /// Takes ownership of the fds (in the order they were attached).
    public func takeFileDescriptors() -> [Int32] {
        defer { descriptors = [] }
        return descriptors
    }

    deinit {
        for fd in descriptors { _ = Glibc.close(fd) }
    }
}

/// Inbound channels with a violation found in a `Message`'s `deinit`, waiting to be
/// reported by the peer's next call.
final class ViolationInbox {
    @exclusivity(unchecked) var channels: [InboundChannel] = []
}

/// The pool tags of a peer's outbound channels: every open channel has its own
/// (its slices in flight carry it), and a closed channel's tag is taken again, so
/// tags stay few however many channels come and go.
struct ChannelTags {
    private var next: UInt32 = 1
    private var free: [UInt32] = []

    mutating func take() -> UInt32 {
        if let tag = free.popLast() { return tag }
        defer { next += 1 }
        return next
    }

    /// Gives back the tag of a closed channel whose slices were all reclaimed.
    mutating func give(_ tag: UInt32) { free.append(tag) }
}
