import Bus1
import Glibc

/// The `intruder` role: `name=`. Publishes a node as `name`, prints
/// "READY peer=P", receives one message, then tries every way to write the
/// sender's pool: mprotect of its read-only view, a writable re-open through
/// /proc/self/map_files, a writable shared mapping, pwrite. Prints "DENIED …" for
/// each refused attempt and "OK" if the sender's bytes are unchanged.
///
/// Driven by HostileTests "A receiver cannot write the sender's pool".
@MainActor
func runIntruder() {
    let peer = connect()
    let message = receiveFirstMessage(peer)
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let address = message.withUnsafePayload { UInt(bitPattern: $0.baseAddress!) }
    let pageStart = UnsafeMutableRawPointer(bitPattern: address & ~UInt(page - 1))!
    let original = message.payload.bytes.unsafeLoad(as: UInt8.self)

    // 1. mprotect the read-only view writable.
    if mprotect(pageStart, page, PROT_READ | PROT_WRITE) == 0 { fail("mprotect(PROT_WRITE) succeeded") }
    say("DENIED mprotect errno=\(errno)")

    // 2. Find the mapping's file and reopen it for writing (/proc/self/map_files).
    var range: String?
    if let maps = fopen("/proc/self/maps", "r") {
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), maps) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let bounds = text.split(separator: " ")[0].split(separator: "-").compactMap { UInt(String($0), radix: 16) }
            if bounds.count == 2, bounds[0] <= address, address < bounds[1] { range = String(text.split(separator: " ")[0]) }
        }
        fclose(maps)
    }
    guard let range else { fail("payload mapping not in /proc/self/maps") }
    let writable = open("/proc/self/map_files/\(range)", O_RDWR | O_CLOEXEC)
    if writable < 0 {
        say("DENIED reopen-for-write errno=\(errno)")
    } else {
        // The open itself may succeed (root); the seals must still refuse writes.
        let shared = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_SHARED, writable, 0)
        if shared != MAP_FAILED { fail("writable MAP_SHARED mapping of the sender's pool succeeded") }
        say("DENIED writable-shared-map errno=\(errno)")
        var byte: UInt8 = 0x5A
        if pwrite(writable, &byte, 1, off_t(Int(bitPattern: address) - Int(bitPattern: pageStart) + 0)) >= 0 { fail("pwrite to the sender's pool succeeded") }
        say("DENIED pwrite errno=\(errno)")
        // A private writable mapping is copy-on-write: it must not reach the sender.
        let priv = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE, writable, 0)
        if priv != MAP_FAILED {
            priv!.storeBytes(of: ~original, as: UInt8.self)
            munmap(priv, page)
        }
        close(writable)
    }
    guard message.payload.bytes.unsafeLoad(as: UInt8.self) == original else { fail("the sender's bytes changed") }
    say("OK")
}
