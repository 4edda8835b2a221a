import Bus1Core
import Bus1Linux

/// A peer's wake page, with the coordinator's own mapping of it (it bumps
/// `control_seq` and rings the doorbell).
final class PeerMemory {
    let wake: FileDescriptor
    let wakeMapping: Mapping
    let wakePage: WakePage

    init(wake: consuming FileDescriptor, wakeMapping: consuming Mapping, wakePage: WakePage) {
        self.wake = wake
        self.wakeMapping = wakeMapping
        self.wakePage = wakePage
    }
}

/// The coordinator's producer end of a peer's coordinator ring: it stages,
/// tickets and publishes notifications there like a sender (see
/// ``Coordinator/publish(_:)``), and takes credit from the peer's `sub_head`.
final class NotificationRing {
    let id: UInt64
    let memory: FileDescriptor
    var producer: SubmissionProducer

    init(id: UInt64, memory: consuming FileDescriptor, producer: consuming SubmissionProducer) {
        self.id = id
        self.memory = memory
        self.producer = producer
    }
}
