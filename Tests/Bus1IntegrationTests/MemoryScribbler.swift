import Bus1TestSupport

/// The values a hostile peer writes over a field: the edges of the integer range
/// and random bytes.
enum CorruptValue: CaseIterable, CustomStringConvertible {
    case zero, twoTo40, twoTo63, max, random

    /// The value to write; `.random` draws a fresh one for every write.
    func draw(_ random: inout SplitMix64) -> UInt64 {
        switch self {
        case .zero: 0
        case .twoTo40: 1 << 40
        case .twoTo63: 1 << 63
        case .max: .max
        case .random: random.next()
        }
    }

    var description: String {
        switch self {
        case .zero: "0"
        case .twoTo40: "2^40"
        case .twoTo63: "2^63"
        case .max: "UInt64.max"
        case .random: "random"
        }
    }
}

/// A violation `verify` must report: at `place` (the start of its place text),
/// with `check` if given, else with any check.
struct ExpectedViolation: Hashable, CustomStringConvertible {
    let place: String
    let check: String?

    func matches(place: String, check: String) -> Bool {
        (place == self.place || place.hasPrefix(self.place + " ")) && (self.check.map { $0 == check } ?? true)
    }

    var description: String { "\(place) [\(check ?? "any")]" }
}

/// 8-byte overwrites of shared memory, each word's original remembered so that
/// ``restore()`` puts the bus back exactly as it was (the peers of the bus then
/// disconnect over intact memory), plus the violations they must cause.
final class MemoryScribbler {
    private var saved: [(address: UnsafeMutableRawPointer, word: UInt64)] = []
    private(set) var expected: Set<ExpectedViolation> = []
    /// What was written where, for failure messages.
    private(set) var log: [String] = []

    /// Writes `value` over the aligned word at `offset` of `object`; returns the
    /// word that was there. ``restore()`` writes that word back plus `advance`: a
    /// counter others move meanwhile (the clock's ticket, which the coordinator
    /// takes from for every inspector that attaches) must never go back.
    @discardableResult
    func write(_ value: UInt64, into object: WritableBusObjects.Object, at offset: Int, _ what: String, advancing advance: UInt64 = 0) -> UInt64 {
        precondition(offset >= 0 && offset % 8 == 0 && offset + 8 <= object.size, "\(what): offset \(offset) outside the object")
        let address = object.base + offset
        let original = address.load(as: UInt64.self)
        saved.append((address, original &+ advance))
        address.storeBytes(of: value, as: UInt64.self)
        log.append("\(what) = \(value)")
        return original
    }

    func expect(_ check: String?, at place: String) { expected.insert(ExpectedViolation(place: place, check: check)) }

    /// Puts every overwritten word back, newest first; forgets the expectations.
    func restore() {
        for (address, word) in saved.reversed() { address.storeBytes(of: word, as: UInt64.self) }
        saved.removeAll()
        expected.removeAll()
        log.removeAll()
    }

    deinit { restore() }
}
