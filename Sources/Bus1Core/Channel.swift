import Bus1Linux
import CBus1Wire
import Synchronization

/// Geometry of a channel memfd: header, then the submission ring, then the
/// completion ring (`struct bus1_channel_header`).
public struct ChannelGeometry: Equatable, Sendable {
    public let capacity: Int
    public let submissionOffset: Int
    public let completionOffset: Int
    public let size: Int

    /// Whether `capacity` is a ring size the wire allows: a power of two, 2...65536.
    /// (Every capacity read from a peer or the coordinator is checked with this.)
    public static func isValid(capacity: Int) -> Bool {
        capacity >= 2 && capacity <= 65536 && capacity & (capacity - 1) == 0
    }

    /// Rings of `capacity` entries (``isValid(capacity:)``).
    public init(capacity: Int) {
        precondition(Self.isValid(capacity: capacity), "ring capacity must be a power of two, 2...65536")
        self.capacity = capacity
        submissionOffset = 256
        completionOffset = submissionOffset + capacity * MemoryLayout<bus1_descriptor>.stride
        let end = completionOffset + capacity * MemoryLayout<bus1_completion>.stride
        size = (end + Int(BUS1_PAGE_SIZE) - 1) / Int(BUS1_PAGE_SIZE) * Int(BUS1_PAGE_SIZE)
    }

    /// Writes a fresh header (coordinator only, before either side maps it).
    public func initialize(_ mapping: borrowing Mapping, channel: UInt64, sender: UInt64, receiver: UInt64) {
        var header = bus1_channel_header()
        header.magic = BUS1_MAGIC_CHANNEL
        header.version = BUS1_WIRE_VERSION
        header.channel_id = channel
        header.sender_peer = sender
        header.receiver_peer = receiver
        header.capacity = UInt32(capacity)
        header.submission_offset = UInt64(submissionOffset)
        header.completion_offset = UInt64(completionOffset)
        mapping.base.storeBytes(of: header, as: bus1_channel_header.self)
    }
}

/// Why a channel must be closed: the other side broke the protocol. Maps 1:1 to
/// `enum bus1_close_reason`.
public enum ChannelViolation: UInt32, Error, Sendable, CustomStringConvertible {
    case badRingIndex = 3
    case badSlice = 4
    case badNode = 5
    case badTicket = 6
    case badCompletion = 7
    case badDescriptor = 8

    public var description: String {
        switch self {
        case .badRingIndex: "ring index moved backwards or past capacity"
        case .badSlice: "slice outside the sender's pool"
        case .badNode: "descriptor names a node the sender may not address"
        case .badTicket: "ticket went backwards"
        case .badCompletion: "completion for a slice not outstanding on this channel"
        case .badDescriptor: "reserved descriptor fields not zero"
        }
    }
}

/// The mapped channel and the views both ends use. Checks the header against what
/// the coordinator announced before any index is trusted.
/// Sendable: immutable views of shared memory whose every shared word is accessed
/// atomically; each end is used by one owner (~Copyable).
public struct ChannelMemory: ~Copyable, @unchecked Sendable {
    public let mapping: Mapping
    public let geometry: ChannelGeometry
    let subTail: SharedWord64
    let staging: SharedWord64
    let compHead: SharedWord64
    let subHead: SharedWord64
    let compTail: SharedWord64
    let descriptors: UnsafeMutablePointer<bus1_descriptor>
    let completions: UnsafeMutablePointer<UInt64>

    public init(_ mapping: consuming Mapping, channel: UInt64, capacity: Int) throws(WireError) {
        guard ChannelGeometry.isValid(capacity: capacity) else { throw .mismatch("channel capacity") }
        let geometry = ChannelGeometry(capacity: capacity)
        guard mapping.count >= geometry.size else { throw .tooSmall("channel") }
        let header = mapping.base.load(as: bus1_channel_header.self)
        guard header.magic == BUS1_MAGIC_CHANNEL else { throw .badMagic("channel") }
        guard header.version == BUS1_WIRE_VERSION else { throw .versionMismatch("channel", header.version) }
        guard header.channel_id == channel, header.capacity == UInt32(capacity),
              header.submission_offset == UInt64(geometry.submissionOffset),
              header.completion_offset == UInt64(geometry.completionOffset)
        else { throw .mismatch("channel header") }
        let base = mapping.base
        self.geometry = geometry
        subTail = SharedWord64(base, offset: wireOffset(\bus1_channel_header.sub_tail))
        staging = SharedWord64(base, offset: wireOffset(\bus1_channel_header.staging))
        compHead = SharedWord64(base, offset: wireOffset(\bus1_channel_header.comp_head))
        subHead = SharedWord64(base, offset: wireOffset(\bus1_channel_header.sub_head))
        compTail = SharedWord64(base, offset: wireOffset(\bus1_channel_header.comp_tail))
        descriptors = (base + geometry.submissionOffset).bindMemory(to: bus1_descriptor.self, capacity: capacity)
        completions = (base + geometry.completionOffset).bindMemory(to: UInt64.self, capacity: capacity)
        self.mapping = mapping
    }
}

/// The sender's end of a channel: publishes descriptors, consumes completions.
///
/// Credit invariant: at most `capacity` slices are outstanding (sent, completion
/// not yet consumed), so the submission ring never overflows and the sender never
/// needs to read the receiver's `sub_head`. Every completion index the receiver
/// writes is checked: it may not move backwards nor claim more completions than
/// slices outstanding.
/// Sendable: owned by one end (~Copyable); shared indices are atomic, and each
/// descriptor is copied out once before it is checked.
public struct SubmissionProducer: ~Copyable, @unchecked Sendable {
    public let memory: ChannelMemory
    private var tail: UInt64 = 0
    private var completionHead: UInt64 = 0
    /// Slices sent whose completion has not been consumed yet.
    public private(set) var outstanding: Int = 0
    public var capacity: Int { memory.geometry.capacity }
    /// The submission index the next descriptor written will take (what an
    /// attachment names, so the receiver can pair them).
    public var nextIndex: UInt64 { tail }
    public var hasCredit: Bool { outstanding < memory.geometry.capacity }
    /// Whether `count` more descriptors fit the credit.
    public func hasCredit(_ count: Int) -> Bool { outstanding + count <= memory.geometry.capacity }

    public init(_ memory: consuming ChannelMemory) {
        self.memory = memory
    }

    /// Publishes one descriptor. Precondition: ``hasCredit``.
    @inline(__always)
    public mutating func submit(_ descriptor: bus1_descriptor) {
        write(descriptor)
        publish()
    }

    /// Writes the next slot; storing its ticket last (release) publishes it to
    /// the receiver, which polls the slot itself. Precondition: ``hasCredit``.
    /// (Batches: several ``write(_:)``, one ``publish()``.)
    @inline(__always)
    public mutating func write(_ descriptor: bus1_descriptor) {
        precondition(outstanding < memory.geometry.capacity, "submit without credit")
        let slot = memory.descriptors + Int(tail & UInt64(memory.geometry.capacity - 1))
        slot.pointee.node = descriptor.node
        slot.pointee.offset = descriptor.offset
        slot.pointee.length = descriptor.length
        slot.pointee.flags = descriptor.flags
        SharedWord64(slot, offset: 0).storeReleasing(descriptor.ticket)  // publishes the slot (a ticket is never 0)
        tail &+= 1
        outstanding += 1
    }

    /// Stores `sub_tail`, for inspectors (`shm-inspect` counts the queue by it).
    /// Receivers poll the slots, not this word.
    @inline(__always)
    public func publish() {
        memory.subTail.storeReleasing(tail)
    }

    /// Consumes every completion the receiver published, calling `reclaim` with each
    /// slice offset; `reclaim` returns false for a slice not outstanding here.
    /// Returns how many were consumed.
    @discardableResult
    public mutating func drainCompletions(_ reclaim: (UInt64) -> Bool) throws(ChannelViolation) -> Int {
        let published = memory.compTail.loadAcquiring()  // pairs with the receiver's release of comp_tail
        let available = published &- completionHead
        if available == 0 { return 0 }
        guard available <= UInt64(outstanding) else { throw .badRingIndex }
        let mask = UInt64(memory.geometry.capacity - 1)
        for _ in 0..<available {
            let offset = memory.completions[Int(completionHead & mask)]
            guard reclaim(offset) else { throw .badCompletion }
            completionHead &+= 1
            outstanding -= 1
        }
        memory.compHead.storeReleasing(completionHead)  // frees completion slots for the receiver
        return Int(available)
    }

    /// Forgets every outstanding slice (the channel is closed; the caller reclaims
    /// the slices itself).
    public mutating func abandonOutstanding() { outstanding = 0 }

    /// Credit for a ring without completions (the coordinator ring): every
    /// descriptor the receiver consumed (`sub_head`) frees its slot. Throws if
    /// `sub_head` moved backwards or past what was published.
    public mutating func reclaimConsumed() throws(ChannelViolation) {
        let head = memory.subHead.loadAcquiring()  // pairs with the receiver's release of sub_head
        let used = tail &- head
        guard used <= UInt64(outstanding) else { throw .badRingIndex }
        outstanding = Int(used)
    }
}

/// The receiver's end of a channel: takes descriptors, publishes completions.
///
/// The receiver polls the slot at its head, not `sub_tail`: a slot whose ticket
/// is non-zero holds the next descriptor (the sender stores the ticket last,
/// with release), and taking it clears the ticket again. That saves the cache
/// line a separate tail would cross per message, and leaves a sender no index
/// to lie about: it can only write descriptors, each judged on its own.
/// Everything read from the ring is copied out of shared memory once, then
/// validated: tickets never fall (equal tickets: one multicast to several nodes
/// of this receiver). Slice and node checks are the caller's (it knows the pool
/// and the node table).
///
/// Why a cleared slot is never overwritten by the sender before it is taken:
/// the sender writes slot `i + capacity` only with credit, so at least one of
/// the `capacity` descriptors `i…i + capacity - 1` came back as a completion
/// (data channels) or was counted in `sub_head` (the coordinator ring), both
/// released after this end took slot `i` (it takes in order) and cleared it.
/// Sendable: owned by one end (~Copyable); shared indices are atomic, and each
/// descriptor is copied out once before it is checked.
public struct SubmissionConsumer: ~Copyable, @unchecked Sendable {
    public let memory: ChannelMemory
    /// Descriptor flags this ring may carry (`BUS1_DESC_*` on data channels, the
    /// `bus1_notification` kinds on the coordinator ring); anything else is
    /// ``ChannelViolation/badDescriptor``.
    private let acceptedFlags: Set<UInt32>
    private var head: UInt64 = 0
    private var completionTail: UInt64 = 0
    private var completionHeadSeen: UInt64 = 0
    /// The last ticket taken from this channel.
    public private(set) var lastTicket: UInt64 = 0
    /// The submission index of the descriptor ``peek()`` returns next.
    public var index: UInt64 { head }

    public init(_ memory: consuming ChannelMemory, acceptedFlags: Set<UInt32> = [0, BUS1_DESC_ATTACHMENT]) {
        self.memory = memory
        self.acceptedFlags = acceptedFlags
    }

    /// The next descriptor, copied out, without taking it; nil if the ring is empty.
    @inline(__always)
    public mutating func peek() throws(ChannelViolation) -> bus1_descriptor? {
        let slot = memory.descriptors + Int(head & UInt64(memory.geometry.capacity - 1))
        let ticket = SharedWord64(slot, offset: 0).loadAcquiring()  // pairs with the sender's release in write(_:)
        if ticket == 0 { return nil }
        var descriptor = slot.pointee  // copied out once, then judged
        descriptor.ticket = ticket  // the value that published it, whatever the slot says now
        guard descriptor.ticket >= lastTicket else { throw .badTicket }
        guard descriptor.flags == 0 || acceptedFlags.contains(descriptor.flags) else { throw .badDescriptor }
        return descriptor
    }

    /// The sender's staging mark (0: not sending). Read it BEFORE ``peek()`` when
    /// deciding whether this channel could still produce a lower ticket.
    @inline(__always)
    public func stagingMark() -> UInt64 {
        memory.staging.loadAcquiring()  // pairs with the sender's release in PublishLane.unstage()
    }

    /// Takes the descriptor ``peek()`` returned.
    @inline(__always)
    public mutating func advance(ticket: UInt64) {
        // Empty again. The sender writes this slot anew only after a completion or
        // `sub_head` released below told it this slot was taken.
        SharedWord64(memory.descriptors + Int(head & UInt64(memory.geometry.capacity - 1)), offset: 0).storeRelaxed(0)
        lastTicket = ticket
        head &+= 1
        memory.subHead.storeReleasing(head)  // the slot may be reused by the sender
    }

    /// Returns a slice to the sender. Throws if the completion ring is full, which
    /// an honest sender's credit makes impossible.
    @inline(__always)
    public mutating func complete(offset: UInt64) throws(ChannelViolation) {
        let capacity = UInt64(memory.geometry.capacity)
        if completionTail &- completionHeadSeen >= capacity {
            completionHeadSeen = memory.compHead.loadAcquiring()  // pairs with the sender's release of comp_head
            let used = completionTail &- completionHeadSeen
            guard used < capacity else { throw .badRingIndex }
        }
        memory.completions[Int(completionTail & (capacity - 1))] = offset
        completionTail &+= 1
        memory.compTail.storeReleasing(completionTail)  // publishes the completion to the sender
    }
}
