import CBus1Wire

/// Where a channel's two rings lie in its memory.
///
/// The offsets come from the channel header, which either end of the channel can
/// overwrite, so they are accepted only after every bound is checked against the
/// memory's real size (`fstat`) in arithmetic that cannot overflow: a corrupt
/// header yields no geometry (a finding), never a trap or a read past the end.
struct RingGeometry {
    /// Entries per ring: a power of two, at least 2.
    let capacity: UInt64
    /// Byte offset of descriptor 0 in the channel memory.
    let submission: Int
    /// Byte offset of completion 0 in the channel memory.
    let completion: Int

    static let descriptorStride = UInt64(MemoryLayout<bus1_descriptor>.stride)
    static let completionStride = UInt64(MemoryLayout<bus1_completion>.stride)

    /// nil unless `capacity` is a power of two of at least 2, and the descriptor
    /// ring, then the completion ring, lie after the header and inside
    /// `objectSize` bytes.
    init?(capacity: UInt64, submissionOffset: UInt64, completionOffset: UInt64, objectSize: Int) {
        let size = UInt64(max(0, objectSize))
        // capacity <= size / 32 keeps both ring sizes below `size`: no product overflows.
        guard capacity >= 2, capacity & (capacity - 1) == 0, capacity <= size / Self.descriptorStride,
              submissionOffset >= UInt64(MemoryLayout<bus1_channel_header>.size),
              completionOffset >= submissionOffset, completionOffset - submissionOffset >= capacity * Self.descriptorStride,
              completionOffset <= size, size - completionOffset >= capacity * Self.completionStride
        else { return nil }
        self.capacity = capacity
        submission = Int(submissionOffset)  // < completionOffset <= size: fits an Int
        completion = Int(completionOffset)
    }

    /// The byte offset of the descriptor slot that ring index `index` uses.
    func descriptorOffset(ofIndex index: UInt64) -> Int {
        submission + Int(index & (capacity - 1)) * Int(Self.descriptorStride)
    }
}
