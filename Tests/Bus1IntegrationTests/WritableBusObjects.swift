import Bus1Core
import Bus1IntegrationSupport
import Bus1Linux
import CBus1Wire
import Glibc
import Testing

/// The shared objects of one bus as this process has them mapped writable: what a
/// hostile peer in this process can legitimately scribble on (its own pool and
/// ledger, its wake page, the clock page, the rings of its channels).
///
/// Found without any hook in the library: the test asks the coordinator for an
/// introspection snapshot (as `shm-inspect` does) to learn each object's role and
/// inode, then looks for this process's own writable shared mapping of that
/// inode in `/proc/self/maps`. Other tests' buses in the same process have other
/// inodes, so nothing of theirs is touched.
struct WritableBusObjects {
    /// One object: its writable mapping in this process.
    struct Object {
        let base: UnsafeMutableRawPointer
        let size: Int
    }

    struct Channel {
        let id: UInt64, sender: UInt64, receiver: UInt64, capacity: UInt64
        let memory: Object
    }

    let clock: Object
    /// By peer id; only peers whose objects this process maps writable.
    let pools: [UInt64: Object]
    let wakePages: [UInt64: Object]
    /// Channels this process maps writable (as sender or receiver).
    let channels: [Channel]

    init(bus address: String) throws {
        let (snapshot, inodes) = try Self.introspect(address)
        let mappings = try WritableMappingTable(reading: 5)
        func object(_ index: UInt32) -> Object? {
            guard index != BUS1_NO_OBJECT, Int(index) < inodes.count else { return nil }
            return mappings.mapping(ofInode: inodes[Int(index)])
        }
        let header = snapshot.withUnsafeBytes { $0.loadUnaligned(as: bus1_snapshot_header.self) }
        func rows<Row>(_: Row.Type, _ count: UInt32, at offset: UInt64) -> [Row] {
            snapshot.withUnsafeBytes { bytes in
                (0..<Int(count)).map { bytes.loadUnaligned(fromByteOffset: Int(offset) + $0 * MemoryLayout<Row>.stride, as: Row.self) }
            }
        }
        clock = try #require(object(0), "the clock page is not mapped writable in this process")
        var pools: [UInt64: Object] = [:], wakePages: [UInt64: Object] = [:]
        for peer in rows(bus1_snapshot_peer.self, header.peer_count, at: header.peers_offset) {
            pools[peer.peer_id] = object(peer.pool_object)
            wakePages[peer.peer_id] = object(peer.wake_object)
        }
        self.pools = pools
        self.wakePages = wakePages
        channels = rows(bus1_snapshot_channel.self, header.channel_count, at: header.channels_offset).compactMap { row in
            object(row.object).map { Channel(id: row.channel_id, sender: row.sender, receiver: row.receiver, capacity: UInt64(row.capacity), memory: $0) }
        }
    }

    /// The snapshot's bytes and the inode of every object it names, by index.
    private static func introspect(_ address: String) throws -> (snapshot: [UInt8], inodes: [UInt64]) {
        let connection = try RawControlConnection(address: address)
        func ask(_ message: ControlMessage, id: UInt32) throws -> (ControlMessage, [Int32]) {
            let (reply, _, fds) = try connection.ask(message, id: id)
            return (reply, fds)
        }
        let (reply, snapshotFDs) = try ask(.introspect, id: 1)
        guard case .snapshot(let size, let count) = reply, snapshotFDs.count == 1 else { throw LinuxError("no snapshot: \(reply)", code: EPROTO) }
        var snapshot = [UInt8](repeating: 0, count: Int(size))
        let read = pread(snapshotFDs[0], &snapshot, snapshot.count, 0)
        close(snapshotFDs[0])
        guard read == snapshot.count else { throw LinuxError("short snapshot read", code: EIO) }
        var inodes: [UInt64] = []
        while inodes.count < Int(count) {
            let (_, fds) = try ask(.getObjects(first: UInt32(inodes.count)), id: UInt32(2 + inodes.count))
            guard !fds.isEmpty else { throw LinuxError("OBJECTS without fds", code: EPROTO) }
            for fd in fds {
                var info = stat()
                fstat(fd, &info)
                inodes.append(UInt64(info.st_ino))
                close(fd)
            }
        }
        return (snapshot, inodes)
    }
}

/// This process's writable shared memfd mappings (`rw-s`, from offset 0), by
/// inode, read from `/proc/self/maps`: the largest one of each inode.
///
/// A read of `/proc/self/maps` while other threads map and unmap (the embedded
/// coordinator, other tests) can miss a line, so the table is the union of
/// several reads; the mappings looked up belong to live peers and stay put.
struct WritableMappingTable {
    private var byInode: [UInt64: WritableBusObjects.Object] = [:]

    init(reading times: Int) throws {
        for _ in 0..<times { try add(contentsOf: "/proc/self/maps") }
    }

    /// Reads the whole file in as few `read` calls as it takes (one, mostly: a
    /// 4 KiB stdio read per call would let the kernel resume between calls).
    private mutating func add(contentsOf path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LinuxError("open \(path)", code: errno) }
        defer { close(fd) }
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            text += chunk[..<n]
        }
        for line in text.split(separator: UInt8(ascii: "\n")) {
            let fields = String(decoding: line, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "rw-s", fields[2].allSatisfy({ $0 == "0" }), fields[5].hasPrefix("/memfd:bus1-"),
                  let inode = UInt64(fields[4]) else { continue }
            let bounds = fields[0].split(separator: "-").compactMap { UInt(String($0), radix: 16) }
            guard bounds.count == 2, let base = UnsafeMutableRawPointer(bitPattern: bounds[0]) else { continue }
            let size = Int(bounds[1] - bounds[0])
            if size > (byInode[inode].map(\.size) ?? 0) { byInode[inode] = WritableBusObjects.Object(base: base, size: size) }
        }
    }

    func mapping(ofInode inode: UInt64) -> WritableBusObjects.Object? { byInode[inode] }
}
