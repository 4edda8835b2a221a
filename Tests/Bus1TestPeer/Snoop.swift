@_spi(HostileTesting) import Bus1
import Bus1Core
import Bus1TestSupport
import CBus1Wire
import Glibc

/// The `snoop` role: a receiver that tries to read what its sender sent to others.
/// Publishes `name`, prints "READY", receives `count` messages (each must start
/// with "FOR-SNOOP") and, holding the last one, looks for the bytes "SECRET-" (what
/// the sender sends to another peer) everywhere it can:
/// - every bus memfd mapped in its own address space (pools of senders: what a
///   receiver can read in place), with "FOR-SNOOP" counted too, to show the scan
///   sees its own payloads;
/// - the slice ledgers of those pools: records of slices sent to anyone but itself;
/// - the sender process (`pid`) through /proc: its `mem`, its fds, its `map_files`;
/// - every segment of the sender's pool, asked of the coordinator directly.
/// Prints "SNOOP secretHits=S ownHits=O ledgerForeign=L procOpened=P granted=G refused=R"
/// (G, R: segment indices, comma-separated, R with the refusal) and exits.
///
/// Driven by ConfidentialityTests: as uid 65534 (must find nothing) and as the
/// sender's own uid (finds segment 0).
@MainActor
func runSnoop() {
    let peer = connect()
    publishNode(peer, as: setting("name"))
    say("READY")
    var last: Message?
    var sender: UInt64 = 0
    for i in 0..<intSetting("count") {
        let message: Message
        do { message = try peer.receive(timeout: .seconds(60)) } catch { fail("receive \(i): \(error)") }
        guard message.kind == .data else { continue }
        guard message.copyPayload().starts(with: Array("FOR-SNOOP".utf8)) else { fail("message \(i) is not for the snoop") }
        sender = message.sender
        last = consume message
    }
    guard sender != 0 else { fail("nothing received") }

    var secretHits = 0, ownHits = 0, ledgerForeign = 0
    for region in memfdMappings() where region.name.hasPrefix("bus1-pool-") {
        let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: region.start), count: region.end - region.start)
        secretHits += occurrences(of: Array("SECRET-".utf8), in: bytes)
        ownHits += occurrences(of: Array("FOR-SNOOP".utf8), in: bytes)
        if let layout = bus1_pool_layout(poolSize: bytes.count) {
            let records = Int(layout.data_size) / Int(BUS1_POOL_UNIT)
            for r in 0..<records {
                let record = bytes.loadUnaligned(fromByteOffset: Int(layout.ledger_offset) + r * MemoryLayout<bus1_slice_record>.stride,
                                                 as: bus1_slice_record.self)
                if record.state == UInt16(BUS1_SLICE_SENT.rawValue), record.receiver != peer.id { ledgerForeign += 1 }
            }
        }
    }
    let pid = setting("pid")
    var procOpened = 0
    for path in ["/proc/\(pid)/mem", "/proc/\(pid)/environ"] + (0..<64).map({ "/proc/\(pid)/fd/\($0)" }) {
        let fd = open(path, O_RDONLY)
        if fd >= 0 { procOpened += 1; close(fd) }
    }
    for path in ["/proc/\(pid)/map_files", "/proc/\(pid)/fd"] {
        if let dir = opendir(path) {
            if readdir(dir) != nil { procOpened += 1 }
            closedir(dir)
        }
    }
    var granted: [String] = [], refused: [String] = []
    for index in 0..<UInt32(BUS1_SEGMENTS_MAX) {
        do {
            if let refusal = try peer.probeSegment(index, ofSender: sender) {
                if refusal != .segment(.unknown) { refused.append("\(index):\(refusal)") }
            } else {
                granted.append("\(index)")
            }
        } catch { fail("probe \(index): \(error)") }
    }
    if let kept = last.take() { say("HELD ticket=\(kept.ticket)") }  // held until here: mapped for the whole scan
    say("SNOOP secretHits=\(secretHits) ownHits=\(ownHits) ledgerForeign=\(ledgerForeign) procOpened=\(procOpened) "
        + "granted=\(granted.joined(separator: ",")) refused=\(String(refused.joined(separator: ",").map { $0 == " " ? "_" : $0 }))")
}

/// The memfd mappings of this process that can be read (from /proc/self/maps).
private func memfdMappings() -> [(start: Int, end: Int, name: String)] {
    guard let file = fopen("/proc/self/maps", "r") else { fail("maps") }
    defer { fclose(file) }
    var result: [(Int, Int, String)] = []
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fields = text.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 6, fields[1].hasPrefix("r"), fields[5].hasPrefix("/memfd:") else { continue }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = Int(range[0], radix: 16), let end = Int(range[1], radix: 16) else { continue }
        result.append((start, end, String(fields[5].dropFirst("/memfd:".count)).filter { $0 != "\n" }))
    }
    return result
}

private func occurrences(of needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Int {
    guard haystack.count >= needle.count, let first = needle.first else { return 0 }
    var count = 0, i = 0
    let limit = haystack.count - needle.count
    while i <= limit {
        if haystack[i] == first, (1..<needle.count).allSatisfy({ haystack[i + $0] == needle[$0] }) { count += 1 }
        i += 1
    }
    return count
}
