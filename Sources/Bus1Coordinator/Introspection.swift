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
    /// INTROSPECT: writes the snapshot (``BusSnapshot``), keeps the objects for GET_OBJECTS.
    func beginInspection(_ inspector: PeerRecord) throws(RequestError) -> Response {
        guard inspector.uid == geteuid() || inspector.uid == 0 else {
            logger.warning("introspection refused: not the bus's uid or root", metadata: ["uid": "\(inspector.uid)", "pid": "\(inspector.pid)"])
            throw .permission
        }
        inspector.state = .inspecting
        admission.finishHandshake(of: inspector)
        counters.peers.store(tables.connectedPeers(), ordering: .relaxed)
        let inspection = try RequestError.passingErrno { () throws(LinuxError) in
            let snapshot = try BusSnapshot(of: tables, clock: clockObject.memory)
            let header = snapshot.header(flags: configuration.ordering == .fifo ? BUS1_WELCOME_FIFO_ONLY : 0,
                                         protocolErrors: protocolErrors, violations: violationsReported, orderingStalls: orderingStalls)
            return Inspection(snapshot: OwnedDescriptor(try snapshot.write(header, using: sharedObjects)), size: Int(header.size),
                              objects: snapshot.objects)
        }
        inspector.inspection = inspection
        return Response(message: .snapshot(size: UInt64(inspection.size), objectCount: UInt32(inspection.objects.count)),
                        fds: [inspection.snapshot.rawValue], owners: [inspector])
    }

    /// GET_OBJECTS: the next (up to) four objects from `first`.
    func objects(from first: UInt32, for inspector: PeerRecord) throws(RequestError) -> Response {
        guard let inspection = inspector.inspection else { throw .state }
        guard Int(first) < inspection.objects.count else { throw .protocolError }
        let end = min(inspection.objects.count, Int(first) + Int(BUS1_MSG_MAX_FDS))
        return Response(message: .objects(first: first, count: UInt32(end - Int(first))),
                        fds: inspection.objects[Int(first)..<end].map(\.rawValue), owners: [inspection])
    }
}

/// What one inspector was given: the sealed snapshot (`size` bytes) and the
/// objects it names.
final class Inspection {
    let snapshot: OwnedDescriptor
    let size: Int
    let objects: [OwnedDescriptor]

    init(snapshot: OwnedDescriptor, size: Int, objects: [OwnedDescriptor]) {
        self.snapshot = snapshot
        self.size = size
        self.objects = objects
    }
}
