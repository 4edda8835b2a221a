import Bus1Core
import CBus1Wire

/// Writes into the shared pages a peer legitimately maps writable (the bus clock,
/// its own wake page, the wake pages of the peers it sends to), as a hostile peer
/// would, for tests that check such writes harm no one else. Not API: reachable
/// only through `@_spi(HostileTesting) import Bus1`.
@_spi(HostileTesting)
extension Peer {
    /// Which shared page ``overwriteSharedPages(_:atByteOffset:with:)`` writes.
    public enum SharedPage: Sendable {
        /// The bus clock page.
        case clock
        /// This peer's own wake page.
        case ownWake
        /// The wake page of every peer this one has a channel to.
        case receiversWake
    }

    /// Overwrites 8 bytes at `byteOffset` (0...120: the header line is 0...63, the
    /// shared words 64...) of `page`.
    public func overwriteSharedPages(_ page: SharedPage, atByteOffset byteOffset: Int, with value: UInt64) {
        precondition(byteOffset >= 0 && byteOffset + 8 <= 128, "offset outside the page's two lines")
        switch page {
        case .clock: clockMapping.base.storeBytes(of: value, toByteOffset: byteOffset, as: UInt64.self)
        case .ownWake: wakeMapping.mapping.base.storeBytes(of: value, toByteOffset: byteOffset, as: UInt64.self)
        case .receiversWake:
            for channel in outbound.values {
                channel.receiverWakeMapping.base.storeBytes(of: value, toByteOffset: byteOffset, as: UInt64.self)
            }
        }
    }
}
