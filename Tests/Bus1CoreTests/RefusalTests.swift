import Bus1Core
import CBus1Wire
import Testing

/// `Refusal`, the one mapping between the wire's error codes and Swift: every
/// refusal survives encoding and decoding, and the raw values of its detail enums
/// are the wire header's.
@Suite("Refusals", .timeLimit(.minutes(10)))
struct RefusalTests {
    static let quotas: [(Refusal.Quota, bus1_quota)] = [
        (.peers, BUS1_QUOTA_PEERS), (.nodes, BUS1_QUOTA_NODES), (.handles, BUS1_QUOTA_HANDLES),
        (.channels, BUS1_QUOTA_CHANNELS), (.poolBytes, BUS1_QUOTA_POOL_BYTES), (.fileDescriptors, BUS1_QUOTA_FDS),
        (.messages, BUS1_QUOTA_MESSAGES), (.handshakes, BUS1_QUOTA_HANDSHAKES), (.uidPoolBytes, BUS1_QUOTA_UID_POOL_BYTES),
        (.uidNodes, BUS1_QUOTA_UID_NODES), (.uidHandles, BUS1_QUOTA_UID_HANDLES), (.uidChannels, BUS1_QUOTA_UID_CHANNELS),
        (.connectionsShare, BUS1_QUOTA_CONNECTIONS_SHARE), (.handlesShare, BUS1_QUOTA_HANDLES_SHARE),
        (.channelsShare, BUS1_QUOTA_CHANNELS_SHARE), (.segments, BUS1_QUOTA_SEGMENTS),
    ]

    @Test("Detail enums carry the wire header's values")
    func rawValuesMatchTheHeader() {
        for (quota, wire) in Self.quotas { #expect(quota.rawValue == wire.rawValue, "\(quota)") }
        #expect(Refusal.SegmentRefusal.unknown.rawValue == BUS1_SEGMENT_UNKNOWN.rawValue)
        #expect(Refusal.SegmentRefusal.notInAudience.rawValue == BUS1_SEGMENT_NOT_AUDIENCE.rawValue)
        #expect(Refusal.SegmentRefusal.badSize.rawValue == BUS1_SEGMENT_BAD_SIZE.rawValue)
        #expect(Refusal.DescriptorRefusal.unixSocket.rawValue == BUS1_FD_UNIX_SOCKET.rawValue)
        #expect(Refusal.DescriptorRefusal.busObject.rawValue == BUS1_FD_BUS_OBJECT.rawValue)
    }

    @Test("Every refusal survives BUS1_MSG_ERROR and back")
    func roundTrip() throws {
        var all: [Refusal] = [.protocolError, .versionMismatch, .nameTaken, .nameUnknown, .nameInvalid, .handleUnknown,
                              .notOwner, .permissionDenied, .invalidState, .timedOut, .internalError(errno: 24),
                              .segment(.notInAudience), .descriptorRefused(.busObject), .unknown(code: 99, detail: 7)]
        all += Self.quotas.map { .quotaExceeded($0.0) }
        for refusal in all {
            let bytes = ControlMessage.refused(refusal).encode(requestID: 5)
            let decoded = try bytes.withUnsafeBytes { try ControlMessage.decode($0, descriptorCount: 0) }
            guard case .error(let code, let detail) = decoded.message else { Issue.record("\(refusal): \(decoded)"); continue }
            #expect(Refusal(code: code, detail: detail) == refusal)
        }
    }
}
