import Testing

/// Closed channels are unmapped: a child opens and closes 10,000 channels (a
/// lookup maps one, the service's reset closes it) and its mapping count stays
/// flat. Before closed channels were unmapped, each one kept its ring and the
/// receiver's wake page mapped for the life of the peer: +20,000 mappings here.
@Suite("Channel churn", .timeLimit(.minutes(5)))
struct ChannelChurnTests {
    @Test("10,000 channels opened and closed: the mapping count stays flat")
    func mappingsStayFlat() throws {
        let bus = try BusFixture("churn")
        let child = try bus.peer("churn", ["count": "10000"])
        let line = try #require(child.awaitLine(prefix: "CHURN", timeoutSeconds: 240), "\(child.transcript)")
        let fields = Dictionary(uniqueKeysWithValues: line.split(separator: " ").dropFirst().map { field in
            let pair = field.split(separator: "=")
            return (String(pair[0]), Int(pair[1]) ?? -1)
        })
        #expect(fields["channels"] == 10_000)
        let before = try #require(fields["mapsBefore"]), after = try #require(fields["mapsAfter"])
        #expect(before > 0 && after <= before + 8, "mappings grew from \(before) to \(after) over 10,000 channels")
        _ = child.finish()
    }
}
