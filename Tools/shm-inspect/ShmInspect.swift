import ArgumentParser
import Bus1Linux
import CBus1Wire
import Foundation

/// `shm-inspect`: attaches read-only to a live bus and shows what is in its
/// shared memory and who holds what. See README.md for an example session and
/// the JSON schema.
@main
struct ShmInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shm-inspect",
        abstract: "Shows what is inside a live Bus1 bus: peers, nodes, handles, channels, pools and slices.",
        discussion: """
            Attaches read-only through the coordinator's introspection request (allowed to the \
            bus's own uid and root). The coordinator's tables are a snapshot; rings, pools and \
            ledgers are read live.
            """,
        version: Bus1Version.string,
        subcommands: [Peers.self, Nodes.self, Handles.self, Channels.self, Segments.self, Pool.self, Slice.self, Verify.self, Watch.self])

    /// ArgumentParser's own entry point, except that a command line it refuses
    /// (unknown option, a `validate()` failure) exits with 2, this tool's documented
    /// status for "called wrongly", instead of its default 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Options every subcommand takes.
struct BusOptions: ParsableArguments {
    @Option(name: .customLong("bus"), help: "The bus's socket (default: $BUS1_ADDRESS, $XDG_RUNTIME_DIR/bus1/bus, /tmp/bus1-<uid>/bus).")
    var address: String?

    @Flag(help: "Print JSON (schema in README.md) instead of a table.")
    var json = false

    func validate() throws {
        if address?.isEmpty == true { throw ValidationError("--bus: a socket path, not an empty string") }
    }

    func attach() throws -> BusView {
        do { return try BusView(Attachment(address: address ?? BusAddress.fromEnvironment())) } catch { throw failure(error) }
    }

    /// The peer `text` names on `view`; a usage failure (status 2) if none.
    func peer(_ text: String, on view: BusView) throws -> bus1_snapshot_peer {
        do { return try view.peer(named: text) } catch { throw failure(error) }
    }

    /// What the listing subcommands do: attaches, takes `rows` of the view, and
    /// prints them as JSON under `key` or as a table of `headers`, a row of
    /// `cells` each.
    func list<Row: Encodable>(_ key: String, _ rows: (BusView) throws -> [Row], headers: [String], cells: (Row) -> [Any]) throws {
        let view = try attach()
        let listed = try rows(view)
        if json {
            print(try jsonText(view, key, listed))
        } else {
            var table = Table(headers)
            for row in listed { table.add(cells(row)) }
            print(table.render(), terminator: "")
        }
    }
}

/// Prints `shm-inspect: <what>` to stderr; the exit status is 2 (1 is `verify`'s
/// "violations found").
func failure(_ error: InspectError) -> ExitCode {
    FileHandle.standardError.write(Data("shm-inspect: \(error)\n".utf8))
    return ExitCode(2)
}

struct Peers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Peers: pid, uid, command line, pool size and use (all segments), nodes, handles, wait state.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.list("peers", { $0.peerRows() },
                     headers: ["PEER", "PID", "UID", "STATE", "POOL", "IN USE", "SLICES", "SEGS", "NODES", "HANDLES", "RING", "WAIT", "COMMAND"]) { r in
            [r.id, r.pid, r.uid, r.state, bytes(r.poolSize), bytes(r.poolBytesInUse), r.slicesInUse, r.segments, r.nodes, r.handles,
             r.ringCapacity, r.wait, r.command]
        }
    }
}

struct Nodes: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Nodes: owner, names, and who holds handles to each.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.list("nodes", { $0.nodeRows() }, headers: ["OWNER", "NODE", "NAMES", "HOLDERS (peer:handle x refs)"]) { r in
            [r.owner, r.node, r.names.joined(separator: ","), r.holders.map { "\($0.peer):\($0.handle)x\($0.references)" }.joined(separator: " ")]
        }
    }
}

struct Handles: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Handles: every peer's handles, with the node each names.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.list("handles", { $0.handleRows() }, headers: ["HOLDER", "HANDLE", "OWNER", "NODE", "REFS", "KIND", "NAMES"]) { r in
            [r.holder, r.handle, r.owner, r.node, r.references,
             r.ownerHandle ? "owner" : r.ownerConnected ? "handle" : "owner gone", r.names.joined(separator: ",")]
        }
    }
}

struct Channels: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Channels: per sender and receiver, ring fill, staging, newest queued ticket, completions, errors.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.list("channels", { $0.channelRows() },
                     headers: ["CHANNEL", "SENDER", "RECEIVER", "FILL", "HELD", "COMPLETIONS", "OUTSTANDING", "STAGING", "LAST TICKET", "ERRORS"]) { r in
            [r.id, r.sender, r.receiver, "\(r.waiting)/\(r.capacity)", r.heldByReceiver, r.completionsPending,
             "\(r.outstanding)/\(r.capacity)", r.staging == 0 ? "-" : String(r.staging), r.lastTicket.map(String.init) ?? "-",
             r.errors.isEmpty ? "-" : r.errors.joined(separator: "; ")]
        }
    }
}

struct Segments: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pool segments: per peer, each segment's size, audience (uids that may read it) and use.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.list("segments", { $0.segmentRows() }, headers: ["PEER", "SEGMENT", "SIZE", "IN USE", "SLICES", "AUDIENCE (uids)"]) { r in
            [r.peer, r.segment, bytes(r.size), bytes(r.bytesInUse), r.slicesInUse, r.audience.map(String.init).joined(separator: ",")]
        }
    }
}

struct Pool: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A peer's pool: slices in use in every segment, by which receivers, since when.")
    @OptionGroup var bus: BusOptions
    @Argument(help: "The peer id (see `peers`).") var peer: String

    func run() throws {
        try bus.list("slices", { view in view.sliceRows(of: try bus.peer(peer, on: view)) },
                     headers: ["SEG", "OFFSET", "BLOCK", "LENGTH", "STATE", "TICKET", "RECEIVERS", "WHERE", "AGE"]) { r in
            let receivers = r.receivers.map(String.init).joined(separator: ",") + (r.multicast ? " (multicast, \(r.pending) pending)" : "")
            return [r.segment, r.segmentOffset, bytes(UInt64(r.blockBytes)), r.length, r.state, r.ticket == 0 ? "-" : String(r.ticket),
                    receivers.isEmpty ? "-" : receivers, r.where_.joined(separator: ","), age(r.ageMilliseconds)]
        }
    }
}

struct Slice: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A slice of a peer's pool: its ledger record and a hex/ASCII dump of its payload.")
    @OptionGroup var bus: BusOptions
    @Argument(help: "The peer id.") var peer: String
    @Argument(help: "The slice's offset (decimal or 0x hex) in segment 0, or SEGMENT:OFFSET in another segment, as `pool` lists it (or the wire offset, segment in the top bits).")
    var offset: String
    @Option(help: "Bytes to dump, 1 ... 1048576 (default: the payload length, or 256 if the ledger has no record).") var length: Int?

    /// The largest dump `--length` may ask for.
    static let maximumLength = 1 << 20

    /// `offset`, parsed into a wire offset: the segment in the top bits.
    var parsedOffset: UInt64? {
        func number(_ text: Substring) -> UInt64? { text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text) }
        let parts = offset.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 1 { return number(parts[0]) }
        guard parts.count == 2, let segment = number(parts[0]), segment < UInt64(BUS1_SEGMENTS_MAX),
              let inner = number(parts[1]), inner <= UInt64(BUS1_SEGMENT_OFFSET_MASK) else { return nil }
        return segment << UInt64(BUS1_SEGMENT_SHIFT) | inner
    }

    func validate() throws {
        guard parsedOffset != nil else {
            throw ValidationError("offset \(offset) is not a number or SEGMENT:OFFSET (segment below \(BUS1_SEGMENTS_MAX))")
        }
        if let length, !(1...Self.maximumLength).contains(length) { throw ValidationError("--length: 1 ... \(Self.maximumLength) bytes") }
    }

    func run() throws {
        let view = try bus.attach()
        let peer = try bus.peer(self.peer, on: view)
        let wire = parsedOffset!  // checked by validate()
        let (index, at) = splitOffset(wire)
        let place = slicePlace(segment: index, offset: at)
        guard let pool = view.pools[peer.peer_id], let segment = pool.segment(index) else {
            throw failure(.usage("peer \(peer.peer_id) has no segment \(index) (see `segments`)"))
        }
        guard let layout = segment.state.layout, at >= layout.data_offset, at < UInt64(segment.memory.size) else {
            throw failure(.usage(index == 0 ? "offset \(at) is not in peer \(peer.peer_id)'s payload area"
                                            : "offset \(place) is not in the payload area of peer \(peer.peer_id)'s segment \(index)"))
        }
        let row = view.sliceRows(of: peer).first { $0.offset == wire }
        let count = length ?? min(Int(row?.length ?? 256), Self.maximumLength)
        let data = segment.memory.bytes(at: Int(at), count: count)
        if bus.json {
            struct SliceDump: Encodable { var peer: UInt64, offset: UInt64, segment: UInt32, segmentOffset: UInt64, record: BusView.SliceRow?, hex: String }
            print(try jsonText(view, "slice", SliceDump(peer: peer.peer_id, offset: wire, segment: segment.index, segmentOffset: at,
                                                         record: row, hex: data.map { String(format: "%02x", $0) }.joined())))
            return
        }
        if let row {
            print("slice \(place) of peer \(peer.peer_id): \(row.state), block \(row.blockBytes) bytes, length \(row.length), ticket \(row.ticket), receivers \(row.receivers), age \(age(row.ageMilliseconds))")
        } else {
            print("no slice starts at \(place) of peer \(peer.peer_id) (ledger); dumping the bytes anyway")
        }
        print(hexDump(data, base: at), terminator: "")
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Checks every invariant it can; prints each violation with where it is; exit status 1 on any.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        let view = try bus.attach()
        let findings: [Finding]
        do { findings = try view.stableFindings() } catch { throw failure(error) }
        if bus.json {
            print(try jsonText(view, "violations", findings))
        } else if findings.isEmpty {
            print("ok: \(view.tables.peers.count) peers, \(view.channels.count) channels, \(view.pools.values.reduce(0) { $0 + $1.slicesInUse }) slices in use; no violations")
        } else {
            for f in findings { print("VIOLATION \(f.place): \(f.problem) [\(f.check)]") }
            print("\(findings.count) violation\(findings.count == 1 ? "" : "s")")
        }
        if !findings.isEmpty { throw ExitCode(1) }
    }
}

/// `{"bus": <address>, key: value}` as pretty, key-sorted JSON: every subcommand's JSON output.
func jsonText(_ view: BusView, _ key: String, _ value: some Encodable) throws -> String {
    try jsonText(["bus": AnyEncodable(view.attachment.address), key: AnyEncodable(value)])
}

/// Encodes `value` as pretty, key-sorted JSON.
func jsonText(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Type erasure for heterogeneous JSON objects.
struct AnyEncodable: Encodable {
    let encode: (any Encoder) throws -> Void
    init(_ value: some Encodable) { encode = value.encode }
    func encode(to encoder: any Encoder) throws { try encode(encoder) }
}
