import Bus1Core
import Bus1Linux
import CBus1Wire

/// Serving requests: each decoded request, in the state its peer is in, goes to
/// the one handler for it, and every request gets exactly one reply. Every
/// handler throws ``RequestError``, so what a refusal sends (a quota, a state
/// error, or `BUS1_ERR_INTERNAL` with the errno of a shared object the
/// coordinator could not make) is decided by type, never by a cast.
extension Coordinator {
    /// Serves one decoded request and returns its reply.
    func serve(_ message: ControlMessage, attached: [OwnedDescriptor] = [], from peer: PeerRecord) -> Response {
        do {
            return try handle(message, attached: attached, from: peer)
        } catch {
            if case .protocolError = error { counters.protocolErrors.wrappingAdd(1, ordering: .relaxed) }
            return Response(message: error.message)
        }
    }

    private func handle(_ message: ControlMessage, attached: [OwnedDescriptor], from peer: PeerRecord) throws(RequestError) -> Response {
        switch (message, peer.state) {
        case (.introspect, .connected):
            return try beginInspection(peer)
        case (.getObjects(let first), .inspecting):
            return try objects(from: first, for: peer)
        case (.hello(let poolSize, let capacity), .connected):
            return try welcome(peer, poolSize: poolSize, ringCapacity: capacity)
        case (.poolMapped, .welcomed):
            return try sealPool(of: peer)
        case (.nodeCreate, .ready):
            return try createNode(for: peer)
        case (.namePublish(let handle, let name), .ready):
            return try publish(handle: handle, name: name, by: peer)
        case (.nameLookup(let name), .ready):
            return try lookup(name: name, by: peer)
        case (.nameList(let after), .ready):
            return listNames(after: after)
        case (.handleRelease(let handle), .ready):
            return try release(handle: handle, by: peer)
        case (.nodeDestroy(let handles), .ready):
            return try destroy(handles, by: peer)
        case (.reset, .ready):
            return reset(peer)
        case (.segmentOpen(let segment), .ready):
            return try openSegment(segment, for: peer)
        case (.segmentSeal(let index), .ready):
            return try sealSegment(index, of: peer)
        case (.segmentGet(let channelID, let index), .ready):
            return try grantSegment(index, on: channelID, to: peer)
        case (.attach(let destination, let handles, _, let sequence), .ready):
            return try attach(handles, descriptors: attached, to: destination, sequence: sequence, by: peer)
        case (.violation(let channelID, let reason), .ready):
            return try reportViolation(channelID, reason: reason, by: peer)
        case (.channelClose(let channelID), .ready):
            return try closeChannel(channelID, by: peer)
        case (.orderingStall(let channelID), .ready):
            return try reportStall(on: channelID, by: peer)
        case (.hello, _), (.poolMapped, _), (.nodeCreate, _), (.namePublish, _), (.nameLookup, _),
             (.handleRelease, _), (.violation, _), (.channelClose, _), (.orderingStall, _), (.introspect, _), (.getObjects, _),
             (.nodeDestroy, _), (.reset, _), (.attach, _), (.segmentOpen, _), (.segmentSeal, _), (.segmentGet, _),
             (.nameList, _):
            throw .state
        default:
            // Replies and events are the coordinator's to send, never a peer's.
            throw .protocolError
        }
    }
}
