import Bus1Core
import CBus1Wire

/// What a channel's ends may ask of the coordinator about it: close it, report
/// the other end for breaking the protocol, report a stalled sender.
extension Coordinator {
    /// CHANNEL_CLOSE: either end closes the channel; both are told.
    func closeChannel(_ channelID: UInt64, by peer: PeerRecord) throws(RequestError) -> Response {
        guard let channel = tables.channels[channelID], channel.sender == peer.id || channel.receiver == peer.id
        else { throw .handleUnknown }
        channelBroker.close(channelID, reason: BUS1_CLOSE_BY_PEER.rawValue)
        return .ok
    }

    /// A receiver reports that the sender broke the channel protocol: close the
    /// channel, tell both ends; nothing else is affected.
    func reportViolation(_ channelID: UInt64, reason: UInt32, by peer: PeerRecord) throws(RequestError) -> Response {
        guard let channel = tables.channels[channelID], channel.receiver == peer.id || channel.sender == peer.id else { throw .handleUnknown }
        counters.violationsReported.wrappingAdd(1, ordering: .relaxed)
        logger.warning("channel protocol violation; closing channel",
                       metadata: ["channel": "\(channelID)", "reporter": "\(peer.id)", "reason": "\(reason)",
                                  "sender": "\(channel.sender)", "receiver": "\(channel.receiver)"])
        channelBroker.close(channelID, reason: reason)
        return .ok
    }

    /// ORDERING_STALL: a receiver waited past its timeout for a sender stalled
    /// mid-send and relaxed the order for liveness; counted and logged.
    func reportStall(on channelID: UInt64, by peer: PeerRecord) throws(RequestError) -> Response {
        guard let channel = tables.channels[channelID], channel.receiver == peer.id else { throw .handleUnknown }
        counters.orderingStalls.wrappingAdd(1, ordering: .relaxed)
        logger.warning("sender stalled mid-send past the receiver's timeout; order relaxed for liveness",
                       metadata: ["channel": "\(channelID)", "sender": "\(channel.sender)", "receiver": "\(peer.id)"])
        return .ok
    }
}
