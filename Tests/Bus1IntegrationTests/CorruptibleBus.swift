@_spi(HostileTesting) import Bus1
import Bus1IntegrationSupport
import Bus1TestSupport
import CBus1Wire
import Testing

/// A bus set up to be corrupted by a hostile peer in this process: the attacker
/// has one outbound channel per corruption role, each to its own consumer that
/// never receives (so the rings stay as written). The attacker writes only what
/// it has mapped writable: its pool and ledger, its wake page, the clock page,
/// and its channels' rings (see ``WritableBusObjects``).
final class CorruptibleBus {
    /// What a channel is for: one index field, the ring slots, or one header field.
    enum Role: Hashable {
        case index(field: Int, copy: Int)
        case slots
        case header(field: Int)
    }

    /// A field of a shared object: its byte offset and its name in the wire header.
    typealias Field = (offset: Int, name: String)
    static let indexFields: [Field] = [(64, "sub_tail"), (72, "comp_head"), (192, "staging"), (128, "sub_head"), (136, "comp_tail")]
    static let headerFields: [Field] = [(0, "magic/version"), (8, "channel_id"), (16, "sender_peer"), (24, "receiver_peer"),
                                        (32, "capacity"), (40, "submission_offset"), (48, "completion_offset")]
    /// Two channels per index field: a corrupt count summed over channels once overflowed.
    static let roles: [Role] = indexFields.flatMap { f in [Role.index(field: f.offset, copy: 0), .index(field: f.offset, copy: 1)] }
        + [.slots] + headerFields.map { .header(field: $0.offset) }
    /// How far the clock's ticket jumps when it is put back: more than the
    /// tickets taken while it was corrupt, so none is issued twice.
    static let ticketsAhead: UInt64 = 1 << 20
    /// Messages queued on the `.slots` channel (its ring holds 8).
    static let queuedOnSlots = 4

    let bus: BusFixture
    let attacker: Peer
    private let consumers: [Peer]
    let objects: WritableBusObjects
    let channels: [Role: WritableBusObjects.Channel]
    let pool: WritableBusObjects.Object
    let wake: WritableBusObjects.Object
    let ledger: bus1_pool_layout

    init(_ label: String) throws {
        let bus = try BusFixture(label), attacker = try bus.connect()
        self.bus = bus
        self.attacker = attacker
        var consumers: [Peer] = []
        var roleOf: [UInt64: Role] = [:]
        let payload = Array("hostile".utf8)
        for (i, role) in Self.roles.enumerated() {
            let consumer = try bus.connect(ringCapacity: 8)
            try consumer.publish(try consumer.createNode(), as: "\(label).\(i)")
            let target = try attacker.lookup("\(label).\(i)")
            for _ in 0..<(role == .slots ? Self.queuedOnSlots : 1) {
                try payload.withUnsafeBytes { try attacker.send(copying: $0, to: target) }
            }
            consumers.append(consumer)
            roleOf[consumer.id] = role
        }
        self.consumers = consumers
        objects = try WritableBusObjects(bus: bus.address)
        var channels: [Role: WritableBusObjects.Channel] = [:]
        for channel in objects.channels where channel.sender == attacker.id { channels[roleOf[channel.receiver]!] = channel }
        self.channels = channels
        pool = try #require(objects.pools[attacker.id], "the attacker's pool is not mapped writable here")
        wake = try #require(objects.wakePages[attacker.id], "the attacker's wake page is not mapped writable here")
        var layout = bus1_pool_layout()
        #expect(bus1_pool_layout_of(UInt64(pool.size), &layout) == 0)
        ledger = layout
        #expect(channels.count == Self.roles.count, "channels: \(objects.channels.map(\.id))")
    }

    /// A slice offset of the attacker's pool for `slice` (the first payload unit).
    var sliceOffset: UInt64 { ledger.data_offset }

    func place(_ channel: WritableBusObjects.Channel) -> String { "channel \(channel.id)" }

    /// Overwrites the fields of the live state (ring indices, ring slots, ledger
    /// records, the clock's ticket, the wake words) with `value`, headers intact,
    /// and notes what `verify` must find.
    func corruptLiveFields(_ value: CorruptValue, _ scribbler: MemoryScribbler, _ random: inout SplitMix64) {
        // (A ticket of 0 is no finding to expect: each inspector that attaches takes a ticket.)
        scribbler.write(value.draw(&random), into: objects.clock, at: 64, "clock ticket", advancing: Self.ticketsAhead)
        scribbler.write(value.draw(&random), into: wake, at: 64, "wake doorbell/sleeping")
        scribbler.write(value.draw(&random), into: wake, at: 72, "wake control_seq")
        let records = Int(ledger.data_size) / Int(BUS1_POOL_UNIT)
        for unit in Array(0..<8) + [records - 1] {
            for word in 0..<4 {
                scribbler.write(value.draw(&random), into: pool, at: Int(ledger.ledger_offset) + unit * 32 + word * 8, "ledger record \(unit) word \(word)")
            }
        }
        let first = (pool.base + Int(ledger.ledger_offset)).loadUnaligned(as: bus1_slice_record.self)
        if Self.isMalformed(first) { scribbler.expect(nil, at: "peer \(attacker.id) ledger") }

        for field in Self.indexFields {
            for copy in 0..<2 {
                let channel = channels[.index(field: field.offset, copy: copy)]!
                let written = value.draw(&random)
                scribbler.write(written, into: channel.memory, at: field.offset, "channel \(channel.id) \(field.name)")
                // Any index 2^32 or more past the few messages sent breaks a ring rule; staging is checked against the clock, also corrupt here.
                if field.name != "staging" && written >= 1 << 32 { scribbler.expect("ring.index", at: place(channel)) }
            }
        }
        let slots = channels[.slots]!
        let header = slots.memory.base.loadUnaligned(as: bus1_channel_header.self)
        for slot in 0..<Int(slots.capacity) {
            for word in 0..<4 {
                scribbler.write(value.draw(&random), into: slots.memory, at: Int(header.submission_offset) + slot * 32 + word * 8, "channel \(slots.id) descriptor \(slot) word \(word)")
            }
            scribbler.write(value.draw(&random), into: slots.memory, at: Int(header.completion_offset) + slot * 8, "channel \(slots.id) completion \(slot)")
        }
        scribbler.expect(nil, at: place(slots))  // ticket 0, a ticket not yet issued, or a slice outside the pool
    }

    /// Overwrites header fields (clock, wake page, pool, one channel per channel
    /// header field) with `value`, and notes what `verify` must find.
    func corruptHeaders(_ value: CorruptValue, _ scribbler: MemoryScribbler, _ random: inout SplitMix64) {
        scribbler.write(value.draw(&random), into: objects.clock, at: 0, "clock magic/version")
        scribbler.expect("clock.header", at: "clock page")
        for (offset, name) in [(0, "magic/version"), (8, "peer_id")] {
            scribbler.write(value.draw(&random), into: wake, at: offset, "wake \(name)")
        }
        scribbler.expect("wake.header", at: "peer \(attacker.id) wake page")
        for (offset, name) in [(0, "magic/version"), (8, "peer_id"), (16, "size"), (24, "data_offset")] {
            scribbler.write(value.draw(&random), into: pool, at: offset, "pool \(name)")
        }
        scribbler.expect("pool.header", at: "peer \(attacker.id) pool")
        for field in Self.headerFields {
            let channel = channels[.header(field: field.offset)]!
            scribbler.write(value.draw(&random), into: channel.memory, at: field.offset, "channel \(channel.id) \(field.name)")
            scribbler.expect("channel.header", at: place(channel))
        }
    }

    /// Random words anywhere in the attacker's objects: `count` overwrites of a
    /// random field or slot of a random object with a random kind of value.
    /// Expected violations are noted only for header fields a changed value must
    /// break.
    func corruptRandomly(_ count: Int, _ scribbler: MemoryScribbler, _ random: inout SplitMix64) {
        let all = Array(channels.values)
        for _ in 0..<count {
            let value = CorruptValue.allCases.randomElement(using: &random)!.draw(&random)
            switch random.next() % 5 {
            case 0:
                let offset = [0, 64].randomElement(using: &random)!
                let was = scribbler.write(value, into: objects.clock, at: offset, "clock word \(offset / 8)", advancing: offset == 64 ? Self.ticketsAhead : 0)
                if offset == 0 && value != was { scribbler.expect("clock.header", at: "clock page") }
            case 1:
                let offset = [0, 8, 64, 72].randomElement(using: &random)!
                let was = scribbler.write(value, into: wake, at: offset, "wake word \(offset / 8)")
                if offset < 16 && value != was { scribbler.expect("wake.header", at: "peer \(attacker.id) wake page") }
            case 2:
                let offset = Int(random.next() % 8) * 8
                let was = scribbler.write(value, into: pool, at: offset, "pool header word \(offset / 8)")
                if offset < 32 && value != was { scribbler.expect("pool.header", at: "peer \(attacker.id) pool") }
            case 3:
                let records = UInt64(ledger.data_size) / UInt64(BUS1_POOL_UNIT)
                let unit = random.next() % 2 == 0 ? random.next() % 32 : random.next() % records
                scribbler.write(value, into: pool, at: Int(ledger.ledger_offset) + Int(unit) * 32 + Int(random.next() % 4) * 8, "ledger record \(unit)")
            default:
                let channel = all.randomElement(using: &random)!
                let offset = Int(random.next() % UInt64(channel.memory.size / 8)) * 8
                let was = scribbler.write(value, into: channel.memory, at: offset, "channel \(channel.id) word \(offset / 8)")
                if offset < 40 && value != was && (offset != 32 || UInt32(truncatingIfNeeded: value) != UInt32(truncatingIfNeeded: was)) {
                    scribbler.expect("channel.header", at: place(channel))
                }
            }
        }
    }

    /// Whether `verify` must flag this ledger record: it describes a slice (a
    /// block or a state) but not a well-formed one.
    static func isMalformed(_ r: bus1_slice_record) -> Bool {
        guard r.block_bytes != 0 || r.state != 0 else { return false }
        let block = r.block_bytes
        return block < BUS1_POOL_UNIT || block & (block - 1) != 0 || r.length > block
            || !(r.state == UInt16(BUS1_SLICE_LOANED.rawValue) || r.state == UInt16(BUS1_SLICE_SENT.rawValue))
    }

    /// Lets the attacker and consumers go (the bus must be restored first).
    func close() {
        attacker.disconnect()
        for consumer in consumers { consumer.disconnect() }
    }
}
