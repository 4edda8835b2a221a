import Glibc

/// `BUS1_SOAK=N`: how much longer the randomized suites run (more messages, seeds,
/// kills and rounds) for a long run by hand.
package enum Soak {
    /// N, if `BUS1_SOAK` is set to a number.
    package static let requested: Int? = getenv("BUS1_SOAK").flatMap { Int(String(cString: $0)) }
    /// The multiplier: N, or 1 without `BUS1_SOAK`.
    package static let factor = requested ?? 1
}
