import Bus1Coordinator
import Logging
import TOMLKit

/// One key of `bus1d`'s configuration file: its section and name, what it sets,
/// how a TOML value becomes that setting, and how the setting is written back
/// (`--print-config`). ``ConfigurationKey/all`` is the schema: the file loader
/// refuses any key not in it, and the flags take their help texts from it.
struct ConfigurationKey {
    /// The table the key lives in: the top level, `[limits]` or `[policy]`.
    enum Section: String, CaseIterable {
        case top = ""
        case limits
        case policy
    }

    let section: Section
    let name: String
    let summary: String
    /// Sets the value on the configuration; throws a sentence saying what was expected.
    let apply: (TOMLValue, inout DaemonConfiguration) throws(ConfigurationKey.Mismatch) -> Void
    /// The setting as a TOML value.
    let render: (DaemonConfiguration) -> String

    /// A value of the wrong type or spelling: what the key takes instead.
    struct Mismatch: Error {
        let expected: String
    }

    /// The dotted name, as errors print it (`limits.pool-size`).
    var qualifiedName: String { section == .top ? name : "\(section.rawValue).\(name)" }

    /// Help text of the flag that overrides this key: its summary and its default.
    static func help(_ field: CoordinatorConfiguration.Field) -> String { help(named: field.rawValue) }

    static func help(named name: String) -> String {
        guard let key = all.first(where: { $0.name == name }) else { return "" }
        return "\(key.summary) (default: \(key.render(DaemonConfiguration())); file key \(key.qualifiedName))"
    }
}

extension ConfigurationKey {
    /// Every key of the file, in the order `--print-config` writes them.
    static var all: [ConfigurationKey] {
        [
            string(.address, \.coordinator.address,
                   "Socket path to listen on (ignored under socket activation, where the socket is handed over)"),
            choice("log-level", \.logLevel, "Lowest log level: trace, debug, info, notice, warning, error, critical"),
            choice(CoordinatorConfiguration.Field.ordering.rawValue, \.coordinator.ordering,
                   "Bus ordering: global (one causal order at every receiver) or fifo (per-channel FIFO only)"),
            choice(CoordinatorConfiguration.Field.eventBackend.rawValue, \.coordinator.eventBackend,
                   "Event loop backend: automatic, io_uring or poll"),
            integer(.poolSize, \.defaultPoolDataSize, "Payload bytes of a pool when a peer asks for the default (a power of two)"),
            integer(.maxPoolSize, \.maximumPoolDataSize, "Largest pool payload area a peer may ask for"),
            integer(.ringCapacity, \.defaultRingCapacity, "Entries per inbound ring when a peer asks for the default (a power of two)"),
            integer(.coordinatorRingCapacity, \.coordinatorRingCapacity,
                    "Entries of each peer's coordinator ring (a peer that lets it fill is disconnected)"),
            integer(.maxPeersPerUID, \.maximumPeersPerUID, "Most peers one uid may connect"),
            integer(.maxNodes, \.maximumNodesPerPeer, "Most nodes one peer may own"),
            integer(.maxHandles, \.maximumHandlesPerPeer, "Most handles one peer may hold"),
            integer(.maxChannels, \.maximumChannelsPerPeer, "Most channels one peer may send or receive on"),
            integer(.maxQueuedControlMessages, \.maximumQueuedControlMessages,
                    "Control messages held for a peer whose socket is full before it is disconnected as not reading"),
            integer(.maxQueuedFDsPerUID, \.maximumQueuedDescriptorsPerUID,
                    "Fds in attachments one uid may have in flight, until their receivers take the messages"),
            integer(.maxPoolBytesPerUID, \.maximumPoolBytesPerUID, "Pool bytes (whole pools) all peers of one uid may hold together"),
            integer(.maxNodesPerUID, \.maximumNodesPerUID, "Nodes all peers of one uid may own together"),
            integer(.maxHandlesPerUID, \.maximumHandlesPerUID, "Handles charged to one uid (held by its peers or attached by them)"),
            integer(.maxChannelsPerUID, \.maximumChannelsPerUID, "Channels made at the request of one uid"),
            integer(.maxConnections, \.maximumConnections,
                    "Connections on the whole bus, shared fairly between uids (lowered to what the fd limit holds)"),
            integer(.maxBusChannels, \.maximumBusChannels,
                    "Channels on the whole bus, shared fairly between uids (lowered to what the fd limit holds)"),
            integer(.maxHandshakes, \.maximumHandshakes, "Connections still in their handshake on the whole bus"),
            integer(.maxHandshakesPerUID, \.maximumHandshakesPerUID, "Connections still in their handshake from one uid"),
            integer(.handshakeTimeoutMS, \.handshakeTimeoutMilliseconds, "Milliseconds a connection may take to finish its handshake before it is closed"),
            integer(.heldReplyTimeoutMS, \.heldReplyTimeoutMilliseconds, "Milliseconds a reply may wait for a peer that does not read its socket before the request is undone (timed out)"),
            uids(.allowUIDs, "Other uids allowed to connect (the daemon's own uid and root always are)"),
            choice(CoordinatorConfiguration.Field.names.rawValue, \.coordinator.nameLookup, "Who may look a name up: same-uid or any-allowed-uid",
                   section: .policy),
        ]
    }

    private static func integer(_ field: CoordinatorConfiguration.Field, _ path: WritableKeyPath<CoordinatorConfiguration, Int>,
                                _ summary: String) -> ConfigurationKey {
        ConfigurationKey(section: .limits, name: field.rawValue, summary: summary,
                         apply: { value, configuration throws(Mismatch) in
                             guard value.type == .int, let number = value.int else { throw Mismatch(expected: "an integer") }
                             configuration.coordinator[keyPath: path] = number
                         },
                         render: { "\($0.coordinator[keyPath: path])" })
    }

    private static func string(_ field: CoordinatorConfiguration.Field, _ path: WritableKeyPath<DaemonConfiguration, String>,
                               _ summary: String) -> ConfigurationKey {
        ConfigurationKey(section: .top, name: field.rawValue, summary: summary,
                         apply: { value, configuration throws(Mismatch) in
                             guard value.type == .string, let text = value.string else { throw Mismatch(expected: "a string") }
                             configuration[keyPath: path] = text
                         },
                         render: { quoted($0[keyPath: path]) })
    }

    private static func choice<Choice: RawRepresentable & CaseIterable>(
        _ name: String, _ path: WritableKeyPath<DaemonConfiguration, Choice>, _ summary: String, section: Section = .top
    ) -> ConfigurationKey where Choice.RawValue == String {
        ConfigurationKey(section: section, name: name, summary: summary,
                         apply: { value, configuration throws(Mismatch) in
                             let allowed = Choice.allCases.map { quoted($0.rawValue) }.joined(separator: ", ")
                             guard value.type == .string, let text = value.string, let choice = Choice(rawValue: text) else {
                                 throw Mismatch(expected: "one of \(allowed)")
                             }
                             configuration[keyPath: path] = choice
                         },
                         render: { quoted($0[keyPath: path].rawValue) })
    }

    /// A list of uids: replaces the file's or flags' predecessors; the daemon's own
    /// uid and root are always added back.
    private static func uids(_ field: CoordinatorConfiguration.Field, _ summary: String) -> ConfigurationKey {
        ConfigurationKey(section: .policy, name: field.rawValue, summary: summary,
                         apply: { value, configuration throws(Mismatch) in
                             let expected = Mismatch(expected: "an array of uids, e.g. [1000, 1001]")
                             guard value.type == .array, let array = value.array else { throw expected }
                             var uids: [UInt32] = []
                             for element in array {
                                 guard element.type == .int, let number = element.int, let uid = UInt32(exactly: number) else { throw expected }
                                 uids.append(uid)
                             }
                             configuration.allowOtherUIDs(uids)
                         },
                         render: { "[" + $0.otherAllowedUIDs.map(String.init).joined(separator: ", ") + "]" })
    }

    /// A TOML basic string: quotes and backslashes escaped.
    private static func quoted(_ text: String) -> String {
        "\"" + text.flatMap { $0 == "\\" || $0 == "\"" ? ["\\", $0] : [$0] } + "\""
    }
}
