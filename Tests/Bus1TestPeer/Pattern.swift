import Glibc

/// Payload of message `seq`: its size, and bytes from a ramp that depends on seq,
/// with seq itself in the first 8 bytes, so a misplaced or torn message shows.
enum Pattern {
    static let ramp: [UInt8] = (0..<(4 << 20) + 512).map { UInt8(truncatingIfNeeded: $0) }

    static func size(_ seq: Int) -> Int {
        if seq % 1000 == 999 { return 4 << 20 }
        if seq % 100 == 99 { return 64 << 10 }
        if seq % 10 == 9 { return 4096 }
        return 1 + (seq &* 7919) % 512
    }

    static func fill(_ buffer: UnsafeMutableRawBufferPointer, seq: Int) {
        let start = seq % 251
        ramp.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + start, byteCount: buffer.count) }
        if buffer.count >= 8 { buffer.storeBytes(of: UInt64(seq).littleEndian, as: UInt64.self) }
    }

    /// The seq a payload claims (from its first 8 bytes), if it is long enough.
    static func claimedSeq(_ payload: UnsafeRawBufferPointer) -> Int? {
        payload.count >= 8 ? Int(UInt64(littleEndian: payload.loadUnaligned(as: UInt64.self))) : nil
    }

    static func check(_ payload: UnsafeRawBufferPointer, seq: Int) -> Bool {
        guard payload.count == size(seq) else { return false }
        let start = seq % 251
        if payload.count >= 8 {
            guard claimedSeq(payload) == seq else { return false }
            return ramp.withUnsafeBytes { memcmp(payload.baseAddress! + 8, $0.baseAddress! + start + 8, payload.count - 8) == 0 }
        }
        return ramp.withUnsafeBytes { memcmp(payload.baseAddress!, $0.baseAddress! + start, payload.count) == 0 }
    }
}

/// Random pauses from a seed: sched_yield, short sleeps, or nothing (bursts).
struct JitterSource {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func maybePause() {
        switch next() % 64 {
        case 0: usleep(UInt32(next() % 300))  // the jitter itself, not a wait
        case 1, 2, 3: sched_yield()
        default: break
        }
    }
}
