import Bus1Linux
import CBus1Wire

/// The bus's global ticket counter (`struct bus1_clock_page`), mapped read-write by
/// every peer. Tickets start at 1; 0 means "no ticket".
///
/// A hostile peer can jump the counter (degrading ordering for everyone) but can
/// never forge data: receivers check only that tickets rise per channel.
/// Sendable: one atomic word (``SharedWord64``) behind an immutable pointer.
public struct ClockPage: @unchecked Sendable {
    public let ticket: SharedWord64

    /// Makes the view of the clock page the coordinator handed over. As with
    /// ``WakePage``, the header is not checked: every peer maps this page writable,
    /// and a check would let one write refuse every later connect. The page is the
    /// clock because the coordinator's WELCOME says so; only its size is checked.
    public init(_ mapping: borrowing Mapping) throws(WireError) {
        guard mapping.count >= MemoryLayout<bus1_clock_page>.size else { throw .tooSmall("clock page") }
        ticket = SharedWord64(mapping.base, offset: wireOffset(\bus1_clock_page.ticket))
    }

    /// Writes a fresh header (coordinator only).
    public static func initialize(_ mapping: borrowing Mapping) {
        var header = bus1_clock_page()
        header.magic = BUS1_MAGIC_CLOCK
        header.version = BUS1_WIRE_VERSION
        header.ticket = 1
        mapping.base.storeBytes(of: header, as: bus1_clock_page.self)
    }

    /// The next ticket to be handed out: a lower bound on any ticket taken later.
    @inline(__always)
    public func current() -> UInt64 {
        ticket.loadRelaxed()  // coherence alone makes it a lower bound of later fetch_adds
    }

    /// Takes `count` consecutive tickets; returns the first. Acquire and release:
    /// it orders this send after everything this taker saw, and this taker's
    /// staging marks before every later ticket (`Publisher`).
    @inline(__always)
    public func next(_ count: UInt64) -> UInt64 {
        ticket.fetchAddAcquiringAndReleasing(count)
    }

    /// Takes the next ticket.
    @inline(__always)
    public func next() -> UInt64 {
        ticket.fetchAddAcquiringAndReleasing(1)  // orders this send after everything this peer saw
    }
}
