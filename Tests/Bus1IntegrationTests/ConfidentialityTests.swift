@_spi(HostileTesting) import Bus1
import Bus1IntegrationSupport
import Bus1TestSupport
import Glibc
import Testing

/// What a receiver can read of what its sender sends to others (pool segments,
/// "Pool segments" in the wire header). A root producer sends "SECRET-…" to a
/// root peer (left unreceived: the slices stay in the pool) and "FOR-SNOOP…" to a
/// `snoop` child, which then looks for the secrets in every bus memfd it has
/// mapped, in their slice ledgers, through /proc of the producer's process, and by
/// asking the coordinator for every segment of the producer's pool.
@Suite("Confidentiality of payloads", .timeLimit(.minutes(10)))
struct ConfidentialityTests {
    static let secrets = 64, forSnoop = 16

    /// Runs the exchange against a started snoop and returns its SNOOP line.
    static func exchange(_ bus: BusFixture, _ snoop: ChildProcess) throws -> String {
        let producer = try bus.connect(), keeper = try bus.connect()
        try keeper.publish(try keeper.createNode(), as: "keeper")
        try #require(snoop.awaitLine(prefix: "READY", timeoutSeconds: 60) != nil, "\(snoop.transcript)")
        let toKeeper = try producer.lookup("keeper")
        let toSnoop = try producer.lookup("snoop", timeout: .seconds(10))
        for i in 0..<secrets {
            let text = Array("SECRET-\(i)".utf8)
            var loan = try producer.loan(text.count, for: toKeeper)
            loan.write(text)
            try producer.send(loan, to: toKeeper)
        }
        for i in 0..<forSnoop {
            let text = Array("FOR-SNOOP-\(i)".utf8)
            var loan = try producer.loan(text.count, for: toSnoop, wait: .park)
            loan.write(text)
            try producer.send(loan, to: toSnoop, wait: .park, timeout: .seconds(30))
        }
        let line = try #require(snoop.awaitLine(prefix: "SNOOP", timeoutSeconds: 60), "\(snoop.transcript)")
        withExtendedLifetime(keeper) {}
        return line
    }

    @Test("A receiver of another uid reads nothing its sender sent elsewhere: not in its mappings, ledgers or /proc, and the coordinator refuses it the sender's other segments",
          .enabled(unless: OtherUID.unavailableReason))
    func otherUIDReadsOnlyItsOwn() throws {
        let other = try OtherUID.make(copying: ["bus1-test-peer"])
        let bus = try BusFixture.admittingOtherUID("secret")
        let snoop = try other.spawn("bus1-test-peer", ["snoop", "address=\(bus.address)", "name=snoop",
                                                       "count=\(Self.forSnoop)", "pid=\(getpid())"])
        let line = try Self.exchange(bus, snoop)
        #expect(field(line, "secretHits") == "0", "\(line)")
        #expect(Int(field(line, "ownHits") ?? "") ?? 0 >= Self.forSnoop, "the scan must see the snoop's own payloads: \(line)")
        #expect(field(line, "ledgerForeign") == "0", "\(line)")
        #expect(field(line, "procOpened") == "0", "\(line)")
        #expect(field(line, "granted") == "1", "only the segment made for its uid: \(line)")
        #expect(field(line, "refused")?.hasPrefix("0:pool_segment_refused:_notInAudience") == true, "\(line)")
    }

    /// Documents the boundary: a peer of the sender's own uid maps the sender's
    /// segment 0 and reads everything in it (it could read the sender's memory
    /// through /proc anyway).
    @Test("A receiver of the sender's own uid can read everything in the sender's segment 0")
    func sameUIDSeesSegmentZero() throws {
        let bus = try BusFixture("secret-same")
        let snoop = try bus.peer("snoop", ["name": "snoop", "count": "\(Self.forSnoop)", "pid": "\(getpid())"])
        let line = try Self.exchange(bus, snoop)
        #expect(Int(field(line, "secretHits") ?? "") ?? 0 >= Self.secrets, "\(line)")
        #expect(Int(field(line, "ledgerForeign") ?? "") ?? 0 >= Self.secrets, "\(line)")
        #expect(Int(field(line, "procOpened") ?? "") ?? 0 > 0, "\(line)")
        #expect(field(line, "granted") == "0", "\(line)")
    }
}

/// Segment requests a peer can get wrong, and sends to an owner outside a loan's
/// audience: typed errors, and the coordinator keeps serving.
@Suite("Pool segment requests", .timeLimit(.minutes(10)))
struct SegmentRequestTests {
    @Test("Bad sizes, unknown segments and channels, a seventeenth segment and a loan its destination cannot read are refused with typed errors")
    func refusals() throws {
        let bus = try BusFixture("segment-requests")
        let owner = try bus.connect()
        let node = try owner.createNode()
        try owner.publish(node, as: "segments.owner")
        let peer = try bus.connect(poolSize: 1)  // 64 KiB segments: fifteen of them stay small
        let handle = try peer.lookup("segments.owner")
        let me = geteuid(), other: UInt32 = me == 7 ? 8 : 7

        #expect(throws: Bus1Error.refused(.segment(.badSize))) {
            _ = try peer.controlRequest(.segmentOpen(.init(size: 12345, audience: [other])))
        }
        #expect(throws: Bus1Error.refused(.segment(.unknown))) { _ = try peer.controlRequest(.segmentSeal(index: 0)) }  // the pool: sealed at connect
        #expect(throws: Bus1Error.refused(.segment(.unknown))) { _ = try peer.controlRequest(.segmentSeal(index: 9)) }
        #expect(throws: Bus1Error.refused(.segment(.unknown))) { _ = try peer.controlRequest(.segmentGet(channel: 999_999, index: 0)) }

        // A loan the owner (this uid) can read goes; one only uid `other` can read is refused before anything is sent.
        try peer.send(try peer.loanInSegment(8, audience: [me, other]), to: handle)
        #expect(throws: Bus1Error.notInAudience(handle, ownerUID: me)) { try peer.send(try peer.loanInSegment(8, audience: [other]), to: handle) }
        #expect(throws: Bus1Error.badDestinationCount(0, maximum: PeerOptions().maximumMulticast)) { _ = try peer.loan(8, for: []) }

        // Segments 0 (the pool), [me, other], [other] and 13 more make 16; the 17th is refused.
        for extra in 0..<13 { _ = try peer.loanInSegment(8, audience: [1000 + UInt32(extra)]) }
        #expect(throws: Bus1Error.refused(.quotaExceeded(.segments))) { _ = try peer.loanInSegment(8, audience: [2000]) }
        let message = try owner.receive(timeout: .seconds(10))
        #expect(message.payload.count == 8)
        _ = try peer.createNode()  // still served
    }
}
