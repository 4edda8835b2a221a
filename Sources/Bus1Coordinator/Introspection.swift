import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc

/// Introspection for `shm-inspect`: a sealed snapshot of the tables and read-only
/// descriptions of every shared object (see "Introspection" in the wire header).
///
/// Only the bus's own uid and root may inspect. The inspector owns nothing, sees
/// no events and appears in no table; its objects are fetched on request, four
/// per reply, so the coordinator never queues more than one reply for it.
extension Coordinator {
    /// INTROSPECT: writes the snapshot, keeps the objects for GET_OBJECTS.
    func beginInspection(_ inspector: PeerRecord) throws(RequestError) -> Response {
        guard inspector.uid == geteuid() || inspector.uid == 0 else {
            logger.warning("introspection refused: not the bus's uid or root", metadata: ["uid": "\(inspector.uid)", "pid": "\(inspector.pid)"])
            throw .permission
        }
        inspector.state = .inspecting
        finishHandshake(of: inspector)
        counters.peers.store(connectedPeers(), ordering: .relaxed)
        do {
            var objects: [OwnedDescriptor] = [OwnedDescriptor(try MemFD.reopen(clockFD, writable: false))]
            func add(_ fd: borrowing FileDescriptor) throws(LinuxError) -> UInt32 {
                objects.append(OwnedDescriptor(try MemFD.reopen(fd, writable: false)))
                return UInt32(objects.count - 1)
            }
            let members = peers.values.filter { $0.state != .inspecting }.sorted { $0.id < $1.id }
            var peerRows: [bus1_snapshot_peer] = []
            var handleRows: [bus1_snapshot_handle] = []
            var segmentRows: [bus1_snapshot_segment] = []
            for peer in members {
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
                    row.pool_object = try add(pool.memory.descriptor)
                    row.wake_object = try add(memory.wake)
                    // Every segment, segment 0 as the pool object it is (one fd, not two).
                    for segment in peer.segments {
                        let object = try segment.index == 0 ? row.pool_object : add(segment.memory.descriptor)
                        segmentRows.append(segmentRow(segment, of: peer, object: object))
                    }
                }
                peerRows.append(row)
                for (id, handle) in peer.handles.sorted(by: { $0.key < $1.key }) {
                    handleRows.append(bus1_snapshot_handle(holder: peer.id, handle: id, owner: handle.node.owner, node: handle.node.node,
                                                           references: UInt32(clamping: handle.references), _reserved: 0))
                }
            }
            var channelRows: [bus1_snapshot_channel] = []
            for channel in channels.values.sorted(by: { $0.id < $1.id }) {
                channelRows.append(bus1_snapshot_channel(channel_id: channel.id, sender: channel.sender, receiver: channel.receiver,
                                                         capacity: UInt32(channel.capacity), object: try add(channel.memory),
                                                         allowed_nodes: UInt32(channel.allowedNodes.count), _reserved: 0))
            }
            var nameRows: [bus1_snapshot_name] = []
            for (name, key) in names.sorted(by: { $0.key < $1.key }) where peers[key.owner] != nil {
                var row = bus1_snapshot_name()
                row.owner = key.owner
                row.node = key.node
                let bytes = Array(name.utf8.prefix(Int(BUS1_NAME_MAX)))
                row.length = UInt32(bytes.count)
                withUnsafeMutableBytes(of: &row.name) { $0.copyBytes(from: bytes) }
                nameRows.append(row)
            }

            var header = bus1_snapshot_header()
            header.magic = BUS1_MAGIC_SNAPSHOT
            header.version = BUS1_WIRE_VERSION
            header.taken_ns = monotonicNanoseconds()
            header.coordinator_pid = getpid()
            header.flags = configuration.ordering == .fifo ? BUS1_WELCOME_FIFO_ONLY : 0
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
            header.violations = UInt64(violationsReported)
            header.ordering_stalls = UInt64(orderingStalls)

            let snapshot = try MemFD.create(name: "bus1-snapshot", size: size)
            do {
                let mapping = try Mapping(snapshot, count: size, writable: true)
                mapping.base.storeBytes(of: header, as: bus1_snapshot_header.self)
                func write<Row>(_ rows: [Row], at offset: UInt64) {
                    rows.withUnsafeBytes { (mapping.base + Int(offset)).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                }
                if !peerRows.isEmpty { write(peerRows, at: header.peers_offset) }
                if !channelRows.isEmpty { write(channelRows, at: header.channels_offset) }
                if !handleRows.isEmpty { write(handleRows, at: header.handles_offset) }
                if !nameRows.isEmpty { write(nameRows, at: header.names_offset) }
                if !segmentRows.isEmpty { write(segmentRows, at: header.segments_offset) }
            }  // unmapped: F_SEAL_WRITE needs no writable mapping left
            try MemFD.addSeals([.shrink, .grow, .write, .seal], to: snapshot)
            inspector.inspection = Inspection(snapshot: OwnedDescriptor(snapshot), objects: objects)
            return Response(message: .snapshot(size: UInt64(size), objectCount: UInt32(objects.count)),
                            fds: [inspector.inspection!.snapshot.rawValue], owners: [inspector])
        } catch {
            throw .system(error)
        }
    }

    /// The snapshot row of one of `peer`'s segments, its memory at object `object`.
    /// An audience never has more than `BUS1_SEGMENT_AUDIENCE_MAX` uids (SEGMENT_OPEN
    /// refuses more); the row keeps at most that many all the same.
    private func segmentRow(_ segment: PoolSegment, of peer: PeerRecord, object: UInt32) -> bus1_snapshot_segment {
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

    /// GET_OBJECTS: the next (up to) four objects from `first`.
    func objects(from first: UInt32, for inspector: PeerRecord) throws(RequestError) -> Response {
        guard let inspection = inspector.inspection else { throw .state }
        guard Int(first) < inspection.objects.count else { throw .protocolError }
        let end = min(inspection.objects.count, Int(first) + Int(BUS1_MSG_MAX_FDS))
        return Response(message: .objects(first: first, count: UInt32(end - Int(first))),
                        fds: inspection.objects[Int(first)..<end].map(\.rawValue), owners: [inspection])
    }

    /// Connected peers, inspectors not counted.
    func connectedPeers() -> Int { peers.values.count { $0.state != .inspecting } }
}

/// What one inspector was given: the sealed snapshot and the objects it names.
final class Inspection {
    let snapshot: OwnedDescriptor
    let objects: [OwnedDescriptor]

    init(snapshot: OwnedDescriptor, objects: [OwnedDescriptor]) {
        self.snapshot = snapshot
        self.objects = objects
    }
}

extension PeerRecord.State {
    /// `enum bus1_peer_state`.
    var wireValue: UInt32 {
        switch self {
        case .connected, .inspecting: BUS1_PEER_CONNECTED.rawValue
        case .welcomed: BUS1_PEER_WELCOMED.rawValue
        case .ready: BUS1_PEER_READY.rawValue
        }
    }
}
