import Bus1Core
import Bus1Linux
import CBus1Wire

/// A channel from `sender` to `receiver`; `allowedNodes` are the receiver's nodes
/// the sender holds handles to (the receiver enforces it on every descriptor).
final class ChannelRecord {
    let id: UInt64
    let sender: UInt64
    let receiver: UInt64
    let capacity: Int
    let memory: FileDescriptor
    var allowedNodes: Set<UInt64> = []
    /// The uid whose request made the channel (``UIDAccounts/Resource/channels``).
    let chargedTo: UInt32
    /// The coordinator's mapping of the channel, kept to read the receiver's
    /// consumer index (see ``takenIndex``).
    private let mapping: Mapping
    private let receiverHead: SharedWord64

    init(id: UInt64, sender: UInt64, receiver: UInt64, capacity: Int, memory: consuming FileDescriptor, chargedTo: UInt32,
         mapping: consuming Mapping) {
        self.chargedTo = chargedTo
        receiverHead = SharedWord64(mapping.base, offset: MemoryLayout<bus1_channel_header>.offset(of: \.sub_head)!)
        self.mapping = mapping
        self.id = id
        self.sender = sender
        self.receiver = receiver
        self.capacity = capacity
        self.memory = memory
    }
}

extension ChannelRecord {
    /// Whether the receiver has taken (or dropped) the message at submission index
    /// `sequence`: its `sub_head` is past it. The receiver writes `sub_head`; a
    /// receiver that lies only keeps its senders' attachments charged longer.
    func hasTaken(_ sequence: UInt64) -> Bool {
        let head = receiverHead.loadAcquiring()  // pairs with the receiver's release of sub_head
        let ahead = head &- sequence
        return ahead != 0 && ahead <= UInt64.max / 2
    }
}
