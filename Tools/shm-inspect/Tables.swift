import CBus1Wire

/// The coordinator's tables as the snapshot records them, every count and offset
/// checked against the snapshot's size before a row is read.
struct Tables {
    let header: bus1_snapshot_header
    let peers: [bus1_snapshot_peer]
    let channels: [bus1_snapshot_channel]
    let handles: [bus1_snapshot_handle]
    let names: [(name: String, owner: UInt64, node: UInt64)]
    /// Every pool segment of every peer, segment 0 included, as the coordinator
    /// listed them; their indices and objects are checked where they are used.
    let segments: [bus1_snapshot_segment]

    init(_ snapshot: MappedObject) throws(InspectError) {
        guard let header = snapshot.load(bus1_snapshot_header.self, at: 0) else { throw .corruptSnapshot("shorter than its header") }
        guard header.magic == BUS1_MAGIC_SNAPSHOT else { throw .corruptSnapshot("bad magic 0x\(String(header.magic, radix: 16))") }
        guard header.version == BUS1_WIRE_VERSION else {
            throw .corruptSnapshot("wire version \(header.version); this shm-inspect reads \(BUS1_WIRE_VERSION)")
        }
        guard header.size == UInt64(snapshot.size) else { throw .corruptSnapshot("header says \(header.size) bytes, memfd has \(snapshot.size)") }
        func rows<Row>(_: Row.Type, _ count: UInt32, at offset: UInt64, _ what: String) throws(InspectError) -> [Row] {
            let stride = MemoryLayout<Row>.stride
            guard offset <= UInt64(snapshot.size), UInt64(count) * UInt64(stride) <= UInt64(snapshot.size) - offset else {
                throw .corruptSnapshot("\(count) \(what) at offset \(offset) do not fit \(snapshot.size) bytes")
            }
            return (0..<Int(count)).map { snapshot.load(Row.self, at: Int(offset) + $0 * stride)! }
        }
        self.header = header
        peers = try rows(bus1_snapshot_peer.self, header.peer_count, at: header.peers_offset, "peers")
        channels = try rows(bus1_snapshot_channel.self, header.channel_count, at: header.channels_offset, "channels")
        handles = try rows(bus1_snapshot_handle.self, header.handle_count, at: header.handles_offset, "handles")
        names = try rows(bus1_snapshot_name.self, header.name_count, at: header.names_offset, "names").map { row in
            let length = min(Int(row.length), Int(BUS1_NAME_MAX))
            let name = withUnsafeBytes(of: row.name) { String(decoding: $0.prefix(length), as: UTF8.self) }
            return (name, row.owner, row.node)
        }
        segments = try rows(bus1_snapshot_segment.self, header.segment_count, at: header.segments_offset, "segments")
    }

    func peer(_ id: UInt64) -> bus1_snapshot_peer? { peers.first { $0.peer_id == id } }

    /// Names published for the node (owner, node).
    func names(of owner: UInt64, _ node: UInt64) -> [String] {
        names.filter { $0.owner == owner && $0.node == node }.map(\.name)
    }

    /// Whether `node` is a node `peer` owns (its owner handle is in the table).
    func owns(_ peer: UInt64, node: UInt64) -> Bool {
        handles.contains { $0.holder == peer && $0.owner == peer && $0.node == node }
    }
}
