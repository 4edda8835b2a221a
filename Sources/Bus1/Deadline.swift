import Bus1Linux

/// A wait's end on the monotonic clock (`monotonicNanoseconds()`), from the
/// `Duration` timeouts of the public API.
struct Deadline {
    /// Monotonic nanoseconds; nil: never.
    let nanoseconds: UInt64?

    static let never = Deadline(nanoseconds: nil)

    /// `timeout` from now (nil: never; a negative timeout has passed already).
    static func after(_ timeout: Duration?) -> Deadline {
        guard let timeout else { return .never }
        let (end, overflow) = monotonicNanoseconds().addingReportingOverflow(timeout.clampedNanoseconds)
        return overflow ? .never : Deadline(nanoseconds: end)  // past the end of the clock: never
    }

    var hasPassed: Bool { nanoseconds.map { monotonicNanoseconds() >= $0 } ?? false }

    /// What is left of it, as a timeout (nil: never; zero once passed).
    var remaining: Duration? {
        nanoseconds.map { end in .nanoseconds(Int64(clamping: end &- min(end, monotonicNanoseconds()))) }
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to `0...UInt64.max`.
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 || seconds > 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .max }
        let (sum, overflowed) = whole.addingReportingOverflow(UInt64(max(0, attoseconds) / 1_000_000_000))
        return overflowed ? .max : sum
    }
}
