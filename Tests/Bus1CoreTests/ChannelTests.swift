import Bus1Core
import Bus1Linux
import CBus1Wire
import Testing

/// Both ends of a channel over two separate mappings of one memfd, as two
/// processes would have them.
struct ChannelPair: ~Copyable {
    var producer: SubmissionProducer
    var consumer: SubmissionConsumer
    let raw: Mapping  // a third view, for corrupting the shared words

    init(capacity: Int = 8) throws {
        let geometry = ChannelGeometry(capacity: capacity)
        let fd = try MemFD.create(name: "test-channel", size: geometry.size)
        let setup = try Mapping(fd, count: geometry.size, writable: true)
        geometry.initialize(setup, channel: 7, sender: 1, receiver: 2)
        let sender = try ChannelMemory(try Mapping(fd, count: geometry.size, writable: true), channel: 7, capacity: capacity)
        let receiver = try ChannelMemory(try Mapping(fd, count: geometry.size, writable: true), channel: 7, capacity: capacity)
        producer = SubmissionProducer(sender)
        consumer = SubmissionConsumer(receiver)
        raw = setup
    }

    func poke<T>(_ field: PartialKeyPath<bus1_channel_header>, _ value: T) {
        raw.base.storeBytes(of: value, toByteOffset: MemoryLayout<bus1_channel_header>.offset(of: field)!, as: T.self)
    }
}

func descriptor(_ ticket: UInt64, offset: UInt64 = 4096) -> bus1_descriptor {
    var d = bus1_descriptor()
    d.ticket = ticket; d.node = 1; d.offset = offset; d.length = 10
    return d
}

@Suite("Channel rings", .timeLimit(.minutes(10)))
struct ChannelTests {
    @Test("FIFO delivery, credit, and completions round trip")
    func roundTrip() throws {
        var pair = try ChannelPair(capacity: 4)
        for t in 1...4 { pair.producer.submit(descriptor(UInt64(t), offset: UInt64(t) * 4096)) }
        let creditLeft = pair.producer.hasCredit
        #expect(!creditLeft)
        for t in 1...4 {
            let d = try #require(try pair.consumer.peek())
            #expect(d.ticket == UInt64(t))
            pair.consumer.advance(ticket: d.ticket)
            try pair.consumer.complete(offset: d.offset)
        }
        let empty = try pair.consumer.peek()
        #expect(empty == nil)
        var returned: [UInt64] = []
        let drained = try pair.producer.drainCompletions { returned.append($0); return true }
        #expect(drained == 4)
        #expect(returned == [4096, 8192, 12288, 16384])
        let settled = pair.producer.hasCredit && pair.producer.outstanding == 0
        #expect(settled)
    }

    @Test("The receiver polls the slots: a lying sub_tail changes nothing, and a taken slot reads empty")
    func slotsPublishThemselves() throws {
        var pair = try ChannelPair(capacity: 4)
        pair.poke(\.sub_tail, UInt64(1) << 40)  // ahead of everything: the receiver never reads it
        #expect(try pair.consumer.peek() == nil)
        pair.producer.submit(descriptor(7))
        pair.poke(\.sub_tail, UInt64(0))  // behind: still nothing to the receiver
        let d = try #require(try pair.consumer.peek())
        #expect(d.ticket == 7)
        pair.consumer.advance(ticket: d.ticket)
        #expect(try pair.consumer.peek() == nil)  // the slot's ticket was cleared when taken
        try pair.consumer.complete(offset: d.offset)
        try pair.producer.drainCompletions { _ in true }
        for t in 8...11 {  // a whole ring cycle: the cleared slot is written again
            pair.producer.submit(descriptor(UInt64(t)))
            let next = try #require(try pair.consumer.peek())
            #expect(next.ticket == UInt64(t))
            pair.consumer.advance(ticket: next.ticket)
            try pair.consumer.complete(offset: next.offset)
            try pair.producer.drainCompletions { _ in true }
        }
    }

    @Test("Tickets never fall (equal: one multicast to two nodes); reserved flags must be zero")
    func tickets() throws {
        var pair = try ChannelPair(capacity: 4)
        pair.producer.submit(descriptor(5))
        pair.consumer.advance(ticket: try #require(try pair.consumer.peek()).ticket)
        pair.producer.submit(descriptor(5))
        pair.consumer.advance(ticket: try #require(try pair.consumer.peek()).ticket)
        pair.producer.submit(descriptor(4))
        #expect(throws: ChannelViolation.badTicket) { _ = try pair.consumer.peek() }

        var other = try ChannelPair(capacity: 4)
        var flagged = descriptor(1)
        flagged.flags = 0x80  // no such BUS1_DESC_* flag
        other.producer.submit(flagged)
        #expect(throws: ChannelViolation.badDescriptor) { _ = try other.consumer.peek() }
    }

    @Test("More completions than slices outstanding, or unknown ones, are violations")
    func bogusCompletions() throws {
        var pair = try ChannelPair(capacity: 4)
        pair.producer.submit(descriptor(1))
        pair.poke(\.comp_tail, UInt64(3))
        #expect(throws: ChannelViolation.badRingIndex) { try pair.producer.drainCompletions { _ in true } }

        var other = try ChannelPair(capacity: 4)
        other.producer.submit(descriptor(1))
        try other.consumer.complete(offset: 999)
        #expect(throws: ChannelViolation.badCompletion) { try other.producer.drainCompletions { $0 == 4096 } }
    }

    @Test("A receiver whose sender ignores credit cannot overflow the completion ring")
    func completionOverflow() throws {
        var pair = try ChannelPair(capacity: 2)
        try pair.consumer.complete(offset: 1)
        try pair.consumer.complete(offset: 2)
        #expect(throws: ChannelViolation.badRingIndex) { try pair.consumer.complete(offset: 3) }
    }
}
