import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// An introspection snapshot (see "Introspection" in the wire header): the rows
/// of the tables at one moment, and a read-only description of every shared
/// object they name. Object 0 is the clock page; then each peer's pool, wake page
/// and further segments, by peer id; then the channels, by channel id.
struct BusSnapshot {
    private(set) var objects: [OwnedDescriptor] = []
    private var peerRows: [bus1_snapshot_peer] = []
    private var channelRows: [bus1_snapshot_channel] = []
    private var handleRows: [bus1_snapshot_handle] = []
    private var nameRows: [bus1_snapshot_name] = []
    private var segmentRows: [bus1_snapshot_segment] = []

    /// Gathers the rows of `tables`, inspectors left out, and reopens each object
    /// read-only (an inspector can never write what it is shown).
    init(of tables: BusTables, clock: borrowing FileDescriptor) throws(LinuxError) {
        _ = try addObject(clock)
        for peer in tables.peers.values.filter({ $0.state != .inspecting }).sorted(by: { $0.id < $1.id }) {
            try addPeer(peer)
        }
        for channel in tables.channels.values.sorted(by: { $0.id < $1.id }) {
            channelRows.append(bus1_snapshot_channel(channel_id: channel.id, sender: channel.sender, receiver: channel.receiver,
                                                     capacity: UInt32(channel.capacity), object: try addObject(channel.memory),
                                                     allowed_nodes: UInt32(channel.allowedNodes.count), _reserved: 0))
        }
        for (name, key, _) in tables.publishedNames() {
            var row = bus1_snapshot_name()
            row.owner = key.owner
            row.node = key.node
            row.length = ControlMessage.storeName(name, into: &row.name)
            nameRows.append(row)
        }
    }

    /// A read-only description of `fd`, as the next object; returns its index.
    private mutating func addObject(_ fd: borrowing FileDescriptor) throws(LinuxError) -> UInt32 {
        objects.append(OwnedDescriptor(try MemFD.reopen(fd, writable: false)))
        return UInt32(objects.count - 1)
    }

    /// `peer`'s row, its handles' rows, and its segments' rows and objects.
    private mutating func addPeer(_ peer: PeerRecord) throws(LinuxError) {
        var row = bus1_snapshot_peer()
        row.peer_id = peer.id
        row.pool_size = UInt64(peer.poolSize)
        row.pid = peer.pid
        row.uid = peer.uid
        row.state = peer.state.wireValue
        row.ring_capacity = UInt32(peer.ringCapacity)
        row.nodes = UInt32(peer.ownedNodes.count)
        row.handles = UInt32(peer.handles.count - peer.ownedNodes.count)
        row.pool_object = BUS1_NO_OBJECT
        row.wake_object = BUS1_NO_OBJECT
        row.next_handle = peer.nextHandle
        if let memory = peer.memory, let pool = peer.segments.first {
            row.pool_object = try addObject(pool.memory.descriptor)
            row.wake_object = try addObject(memory.wake)
            // Every segment, segment 0 as the pool object it is (one fd, not two).
            for segment in peer.segments {
                let object = try segment.index == 0 ? row.pool_object : addObject(segment.memory.descriptor)
                segmentRows.append(Self.segmentRow(segment, of: peer, object: object))
            }
        }
        peerRows.append(row)
        for (id, handle) in peer.handles.sorted(by: { $0.key < $1.key }) {
            handleRows.append(bus1_snapshot_handle(holder: peer.id, handle: id, owner: handle.node.owner, node: handle.node.node,
                                                   references: UInt32(clamping: handle.references), _reserved: 0))
        }
    }

    /// The snapshot row of one of `peer`'s segments, its memory at object `object`.
    /// An audience never has more than `BUS1_SEGMENT_AUDIENCE_MAX` uids (SEGMENT_OPEN
    /// refuses more); the row keeps at most that many all the same.
    private static func segmentRow(_ segment: PoolSegment, of peer: PeerRecord, object: UInt32) -> bus1_snapshot_segment {
        var row = bus1_snapshot_segment()
        row.owner = peer.id
        row.size = UInt64(segment.size)
        row.index = segment.index
        row.object = object
        let uids = Array(segment.audience.prefix(Int(BUS1_SEGMENT_AUDIENCE_MAX)))
        row.uid_count = UInt32(uids.count)
        uids.withUnsafeBytes { source in withUnsafeMutableBytes(of: &row.uids) { $0.copyMemory(from: source) } }
        return row
    }

    /// The header: what the coordinator is and counted, where each table starts.
    /// The tables follow the header in this order, each `stride`-packed.
    func header(flags: UInt32, protocolErrors: Int, violations: Int, orderingStalls: Int) -> bus1_snapshot_header {
        var header = bus1_snapshot_header()
        header.magic = BUS1_MAGIC_SNAPSHOT
        header.version = BUS1_WIRE_VERSION
        header.taken_ns = monotonicNanoseconds()
        header.coordinator_pid = getpid()
        header.flags = flags
        header.object_count = UInt32(objects.count)
        header.peer_count = UInt32(peerRows.count)
        header.channel_count = UInt32(channelRows.count)
        header.handle_count = UInt32(handleRows.count)
        header.name_count = UInt32(nameRows.count)
        header.segment_count = UInt32(segmentRows.count)
        var size = MemoryLayout<bus1_snapshot_header>.stride
        func place<Row>(_ rows: [Row]) -> UInt64 {
            let offset = size
            size += rows.count * MemoryLayout<Row>.stride
            return UInt64(offset)
        }
        header.peers_offset = place(peerRows)
        header.channels_offset = place(channelRows)
        header.handles_offset = place(handleRows)
        header.names_offset = place(nameRows)
        header.segments_offset = place(segmentRows)
        header.size = UInt64(size)
        header.protocol_errors = UInt64(protocolErrors)
        header.violations = UInt64(violations)
        header.ordering_stalls = UInt64(orderingStalls)
        return header
    }

    /// `header` and the rows written into a memfd sealed against every change.
    func write(_ header: bus1_snapshot_header, using factory: SharedObjectFactory) throws(LinuxError) -> FileDescriptor {
        try factory.makeImmutable("bus1-snapshot", size: Int(header.size)) { mapping in
            let base = mapping.base
            base.storeBytes(of: header, as: bus1_snapshot_header.self)
            func write<Row>(_ rows: [Row], at offset: UInt64) {
                // The offsets come from `header(...)`, which sized the memfd to hold every row.
                rows.withUnsafeBytes { (base + Int(offset)).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            if !peerRows.isEmpty { write(peerRows, at: header.peers_offset) }
            if !channelRows.isEmpty { write(channelRows, at: header.channels_offset) }
            if !handleRows.isEmpty { write(handleRows, at: header.handles_offset) }
            if !nameRows.isEmpty { write(nameRows, at: header.names_offset) }
            if !segmentRows.isEmpty { write(segmentRows, at: header.segments_offset) }
        }
    }
}
