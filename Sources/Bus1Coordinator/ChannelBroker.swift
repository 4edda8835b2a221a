import Bus1Core
import Bus1Linux
import CBus1Wire

/// Opens and closes the channels between peers: one per (sender, receiver) pair
/// that has a reason to exist (the sender holds a handle to one of the
/// receiver's nodes), made on a lookup or an attachment, closed by either end,
/// by a protocol violation, or with a peer.
///
/// The receiver always hears of a channel (and of each node it may address on
/// it) before the sender can use it: the events go into its outbox first, and
/// the sender's reply waits for them (``ControlOutbox/dispatch(_:to:requestID:)``).
final class ChannelBroker {
    private let tables: BusTables
    private let sharedObjects: SharedObjectFactory
    private let outbox: ControlOutbox
    private let configuration: CoordinatorConfiguration

    init(tables: BusTables, sharedObjects: SharedObjectFactory, outbox: ControlOutbox, configuration: CoordinatorConfiguration) {
        self.tables = tables
        self.sharedObjects = sharedObjects
        self.outbox = outbox
        self.configuration = configuration
    }

    /// The channel sender → receiver, created (and announced to the receiver) if new.
    /// `chargedTo`: the uid whose request made it (see ``ControlOutbox/send(_:_:requestID:fds:chargedTo:)``).
    func open(from sender: PeerRecord, to receiver: PeerRecord, node: UInt64,
              chargedTo uid: UInt32? = nil) throws(RequestError) -> (ChannelRecord, isNew: Bool) {
        // Serving a request can remove a peer (a message to it failed): never give a
        // channel to one that is gone, or the channel would outlive both tables.
        guard tables.peers[sender.id] === sender, tables.peers[receiver.id] === receiver else { throw .nameUnknown }
        if let id = sender.outbound[receiver.id], let existing = tables.channels[id] {
            if existing.allowedNodes.insert(node).inserted {
                outbox.notify(receiver, .channelGrant(channel: id, node: node), chargedTo: uid)  // before the sender learns of its handle
            }
            return (existing, false)
        }
        guard sender.outbound.count < configuration.maximumChannelsPerPeer,
              receiver.inbound.count < configuration.maximumChannelsPerPeer
        else { throw .quota(.channels) }
        guard let senderWake = sender.memory?.wake.rawValue else { throw .state }
        let payer = uid ?? sender.uid
        try tables.accounts.check(.channels, for: payer)
        let id = tables.nextChannelID()
        let geometry = ChannelGeometry(capacity: receiver.ringCapacity)
        let object = try RequestError.passingErrno { () throws(LinuxError) in
            try sharedObjects.makeChannel("bus1-channel-\(id)", geometry: geometry, channel: id, sender: sender.id, receiver: receiver.id)
        }
        let record = ChannelRecord(id: id, sender: sender.id, receiver: receiver.id, capacity: geometry.capacity,
                                   memory: object.memory, chargedTo: payer, mapping: object.mapping)
        tables.accounts.add(.channels, to: payer)
        record.allowedNodes.insert(node)
        tables.channels[id] = record
        sender.outbound[receiver.id] = id
        receiver.inbound.insert(id)
        // The receiver learns of the channel before the sender can use it. No pool
        // travels: the receiver asks for each segment it finds named (SEGMENT_GET),
        // and gets only those its uid may read.
        // The sender's credentials are the coordinator's (SO_PEERCRED), never the sender's word.
        let opening = ControlMessage.ChannelOpening(channel: id, sender: sender.id, node: node, capacity: UInt32(geometry.capacity),
                                                    senderUID: sender.uid, senderPID: sender.pid)
        outbox.notify(receiver, .channelOpened(opening), fds: [record.memory.rawValue, senderWake], chargedTo: uid)
        return (record, true)
    }

    /// Removes a channel and tells whichever ends are still connected.
    func close(_ id: UInt64, reason: UInt32) {
        guard let channel = tables.channels.removeValue(forKey: id) else { return }
        tables.accounts.uncharge(.channels, from: channel.chargedTo)
        let sender = tables.peers[channel.sender], receiver = tables.peers[channel.receiver]
        sender?.outbound[channel.receiver] = nil
        receiver?.inbound.remove(id)
        if let sender { outbox.notify(sender, .channelClosed(channel: id, otherPeer: channel.receiver, reason: reason)) }
        if let receiver { outbox.notify(receiver, .channelClosed(channel: id, otherPeer: channel.sender, reason: reason)) }
    }
}
