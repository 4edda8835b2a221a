import Bus1Core

/// Pool segments on demand, for tests that need a segment other than 0 without
/// a peer of another uid to send to (`shm-inspect` listing a sender's segments).
/// Not API: reachable only through `@_spi(HostileTesting) import Bus1`.
@_spi(HostileTesting)
extension Peer {
    /// Loans `byteCount` bytes in the segment whose audience is exactly `audience`
    /// (any order, duplicates ignored), opening it first if this peer has none
    /// (SEGMENT_OPEN, map, SEGMENT_SEAL, as a loan for a peer of another uid
    /// does). An audience of only this peer's uid is segment 0. The coordinator
    /// judges the audience (an empty or too large one is refused). Sending the
    /// loan follows the usual rule: the destination's owner must be in `audience`.
    public func loanInSegment(_ byteCount: Int, audience: [UInt32]) throws(Bus1Error) -> Loan {
        let uids = Array(Set(audience)).sorted()
        return try loan(byteCount, segment: try segment(for: uids), wait: nil, deadline: .never)
    }
}
