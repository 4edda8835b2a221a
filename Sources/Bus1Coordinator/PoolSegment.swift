import Bus1Core
import Bus1Linux
import Glibc

/// One segment of a peer's pool (see "Pool segments" in the wire header): a memfd
/// the owner writes payloads into and only peers of `audience`'s uids may map.
/// Segment 0 is the pool of WELCOME, readable by the owner's uid.
final class PoolSegment {
    let index: UInt32
    /// Bytes, header included (a valid pool layout).
    let size: Int
    /// Uids whose peers may get it, strictly ascending.
    let audience: [UInt32]
    /// Until sealed: as created, writable, for its owner only. Once the owner
    /// mapped it and the coordinator sealed it against new writers: a read-only
    /// description, what receivers get (the writable one is closed: one fd each).
    private(set) var memory: OwnedDescriptor
    private(set) var isSealed = false

    init(index: UInt32, size: Int, audience: [UInt32], memory: consuming FileDescriptor) {
        self.index = index
        self.size = size
        self.audience = audience
        self.memory = OwnedDescriptor(memory)
    }

    /// Seals it against new writable mappings (the owner's stays), checks the
    /// seals took, and keeps only a read-only description.
    func seal() throws(LinuxError) {
        guard !isSealed else { return }
        try MemFD.addSeals([.futureWrite, .seal], to: memory.descriptor)
        guard try MemFD.seals(of: memory.descriptor).isSuperset(of: [.shrink, .grow, .futureWrite, .seal]) else {
            throw LinuxError("F_SEAL_FUTURE_WRITE", code: EPERM)
        }
        memory = OwnedDescriptor(try MemFD.reopen(memory.descriptor, writable: false))
        isSealed = true
    }

    var wire: ControlMessage.Segment { .init(size: UInt64(size), index: index, audience: audience) }
}
