extension UInt64 {
    /// `self + other`, or `UInt64.max` where the sum would not fit: totals of
    /// values read from shared memory (ledger blocks, ring counts) that a peer can
    /// set to anything, shown as the largest number rather than trapping.
    func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
