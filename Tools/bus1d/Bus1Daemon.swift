// bus1d: the Bus1 coordinator daemon.
import ArgumentParser
import Bus1Coordinator
import Bus1Linux
import Glibc
import Logging

/// The daemon: settings from defaults < configuration file < flags, then one
/// coordinator serving on a socket it binds or one systemd hands over, telling
/// systemd how it goes (`Type=notify`), until SIGTERM or SIGINT.
///
/// Every flag is an optional override: the defaults live in
/// `CoordinatorConfiguration` (and ``DaemonConfiguration`` for the log level)
/// alone, and each flag's help prints the default read from there.
@main
struct Bus1Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1d",
        abstract: "The Bus1 coordinator: authenticates peers, creates and seals shared memory, owns nodes, handles and names.",
        discussion: """
            Settings come from the defaults, then the configuration file, then these flags. The file is --config, \
            else /etc/bus1/bus1d.toml when run as root, else $XDG_CONFIG_HOME/bus1/bus1d.toml (read only if it exists); \
            --print-config shows the result. Listens on the socket systemd passes (socket activation), else on the \
            address: --address, the file's address, $BUS1_ADDRESS, $XDG_RUNTIME_DIR/bus1/bus or /tmp/bus1-<uid>/bus. \
            Refuses to start on a path a live bus serves or that is not a socket. Exits cleanly on SIGINT or SIGTERM, \
            removing a socket it bound.
            """,
        version: Bus1Version.string)

    /// Blocks SIGTERM and SIGINT before anything else happens (``ShutdownSignals``),
    /// then parses the command line and runs.
    static func main() {
        ShutdownSignals.block()
        main(nil)
    }

    @Option(name: .customLong("config"), help: "Configuration file to read (it must exist).")
    var configurationFile: String?

    @Flag(name: .customLong("print-config"), help: "Print the resulting configuration as a configuration file, and exit.")
    var printConfiguration = false

    @Option(name: .customLong(Field.address.rawValue), help: .init(ConfigurationKey.help(.address)))
    var address: String?

    @Option(name: .customLong(Field.poolSize.rawValue), help: .init(ConfigurationKey.help(.poolSize)))
    var poolSize: Int?

    @Option(name: .customLong(Field.maxPoolSize.rawValue), help: .init(ConfigurationKey.help(.maxPoolSize)))
    var maxPoolSize: Int?

    @Option(name: .customLong(Field.ringCapacity.rawValue), help: .init(ConfigurationKey.help(.ringCapacity)))
    var ringCapacity: Int?

    @Option(name: .customLong(Field.coordinatorRingCapacity.rawValue), help: .init(ConfigurationKey.help(.coordinatorRingCapacity)))
    var coordinatorRingCapacity: Int?

    @Option(name: .customLong(Field.maxPeersPerUID.rawValue), help: .init(ConfigurationKey.help(.maxPeersPerUID)))
    var maxPeersPerUID: Int?

    @Option(name: .customLong(Field.maxNodes.rawValue), help: .init(ConfigurationKey.help(.maxNodes)))
    var maxNodes: Int?

    @Option(name: .customLong(Field.maxHandles.rawValue), help: .init(ConfigurationKey.help(.maxHandles)))
    var maxHandles: Int?

    @Option(name: .customLong(Field.maxChannels.rawValue), help: .init(ConfigurationKey.help(.maxChannels)))
    var maxChannels: Int?

    @Option(name: .customLong(Field.maxQueuedControlMessages.rawValue), help: .init(ConfigurationKey.help(.maxQueuedControlMessages)))
    var maxQueuedControlMessages: Int?

    @Option(name: .customLong(Field.maxQueuedFDsPerUID.rawValue), help: .init(ConfigurationKey.help(.maxQueuedFDsPerUID)))
    var maxQueuedFDsPerUID: Int?

    @Option(name: .customLong(Field.maxPoolBytesPerUID.rawValue), help: .init(ConfigurationKey.help(.maxPoolBytesPerUID)))
    var maxPoolBytesPerUID: Int?

    @Option(name: .customLong(Field.maxNodesPerUID.rawValue), help: .init(ConfigurationKey.help(.maxNodesPerUID)))
    var maxNodesPerUID: Int?

    @Option(name: .customLong(Field.maxHandlesPerUID.rawValue), help: .init(ConfigurationKey.help(.maxHandlesPerUID)))
    var maxHandlesPerUID: Int?

    @Option(name: .customLong(Field.maxChannelsPerUID.rawValue), help: .init(ConfigurationKey.help(.maxChannelsPerUID)))
    var maxChannelsPerUID: Int?

    @Option(name: .customLong(Field.maxConnections.rawValue), help: .init(ConfigurationKey.help(.maxConnections)))
    var maxConnections: Int?

    @Option(name: .customLong(Field.maxBusChannels.rawValue), help: .init(ConfigurationKey.help(.maxBusChannels)))
    var maxBusChannels: Int?

    @Option(name: .customLong(Field.maxHandshakes.rawValue), help: .init(ConfigurationKey.help(.maxHandshakes)))
    var maxHandshakes: Int?

    @Option(name: .customLong(Field.maxHandshakesPerUID.rawValue), help: .init(ConfigurationKey.help(.maxHandshakesPerUID)))
    var maxHandshakesPerUID: Int?

    @Option(name: .customLong(Field.handshakeTimeoutMS.rawValue), help: .init(ConfigurationKey.help(.handshakeTimeoutMS)))
    var handshakeTimeoutMS: Int?

    @Option(name: .customLong(Field.heldReplyTimeoutMS.rawValue), help: .init(ConfigurationKey.help(.heldReplyTimeoutMS)))
    var heldReplyTimeoutMS: Int?

    @Option(name: .customLong(Field.allowUIDs.rawValue), help: .init(ConfigurationKey.help(.allowUIDs) + "; repeatable, replaces the file's list"))
    var allowUIDs: [UInt32] = []

    @Option(name: .customLong(Field.names.rawValue), help: .init(ConfigurationKey.help(.names)))
    var names: CoordinatorConfiguration.NameLookup?

    @Option(name: .customLong(Field.ordering.rawValue), help: .init(ConfigurationKey.help(.ordering)))
    var ordering: CoordinatorConfiguration.Ordering?

    @Option(name: .customLong(Field.eventBackend.rawValue), help: .init(ConfigurationKey.help(.eventBackend)))
    var eventBackend: CoordinatorConfiguration.EventBackend?

    @Option(name: .customLong("log-level"), help: .init(ConfigurationKey.help(named: "log-level")))
    var logLevel: Logger.Level?

    typealias Field = CoordinatorConfiguration.Field

    func run() throws {
        var settings = try Self.refusing(exitCode: 2) { () throws(any Error) in try resolve() }
        if printConfiguration {
            print(ConfigurationFile.render(settings), terminator: "")
            return
        }
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "bus1d")
        DescriptorLimit.raise(logger)
        DescriptorLimit.fitConnections(&settings.coordinator, logger)
        let coordinator = try Self.refusing(exitCode: 2) { () throws(any Error) in
            if let activated = try SocketActivation.takeListener() {
                logger.info("serving on the socket passed by the service manager", metadata: ["address": "\(activated.address)"])
                return try Coordinator(configuration: settings.coordinator, listener: activated, logger: logger)
            }
            return try Coordinator(configuration: settings.coordinator, logger: logger)
        }
        let heartbeat = ServiceNotifier().map { ServiceHeartbeat(notifier: $0, coordinator: coordinator) }
        if let heartbeat { coordinator.onTurn = (heartbeat.turnInterval, heartbeat.turn) }
        do {
            try ShutdownSignals.relay { signal in
                logger.info("stopping", metadata: ["signal": "\(signal == SIGTERM ? "SIGTERM" : "SIGINT")"])
                heartbeat?.stopping()
                coordinator.stop()
            }
        } catch {
            // SIGTERM and SIGINT are blocked: without the thread nothing could stop this daemon.
            logger.critical("cannot start the signal thread: \(error)")
            throw ExitCode(1)
        }
        defer { heartbeat?.stopping() }
        do {
            try coordinator.run()
        } catch {
            logger.critical("coordinator failed: \(error)")
            throw ExitCode(1)
        }
    }

    /// Defaults, then the configuration file, then the flags; checked once. A
    /// value out of range that the file set (and no flag replaced) is reported
    /// at its line in the file.
    private func resolve() throws -> DaemonConfiguration {
        var settings = DaemonConfiguration()
        let file = try ConfigurationFile.load(configurationFile ?? DaemonConfiguration.defaultFilePath(), required: configurationFile != nil)
        let fromFile = try file?.apply(to: &settings) ?? []
        var flagged: Set<Field> = []
        func override<Value>(_ field: Field, _ setting: inout Value, _ flag: Value?) {
            guard let flag else { return }
            setting = flag
            flagged.insert(field)
        }
        override(.address, &settings.coordinator.address, address)
        override(.poolSize, &settings.coordinator.defaultPoolDataSize, poolSize)
        override(.maxPoolSize, &settings.coordinator.maximumPoolDataSize, maxPoolSize)
        override(.ringCapacity, &settings.coordinator.defaultRingCapacity, ringCapacity)
        override(.coordinatorRingCapacity, &settings.coordinator.coordinatorRingCapacity, coordinatorRingCapacity)
        override(.maxPeersPerUID, &settings.coordinator.maximumPeersPerUID, maxPeersPerUID)
        override(.maxNodes, &settings.coordinator.maximumNodesPerPeer, maxNodes)
        override(.maxHandles, &settings.coordinator.maximumHandlesPerPeer, maxHandles)
        override(.maxChannels, &settings.coordinator.maximumChannelsPerPeer, maxChannels)
        override(.maxQueuedControlMessages, &settings.coordinator.maximumQueuedControlMessages, maxQueuedControlMessages)
        override(.maxQueuedFDsPerUID, &settings.coordinator.maximumQueuedDescriptorsPerUID, maxQueuedFDsPerUID)
        override(.maxPoolBytesPerUID, &settings.coordinator.maximumPoolBytesPerUID, maxPoolBytesPerUID)
        override(.maxNodesPerUID, &settings.coordinator.maximumNodesPerUID, maxNodesPerUID)
        override(.maxHandlesPerUID, &settings.coordinator.maximumHandlesPerUID, maxHandlesPerUID)
        override(.maxChannelsPerUID, &settings.coordinator.maximumChannelsPerUID, maxChannelsPerUID)
        override(.maxConnections, &settings.coordinator.maximumConnections, maxConnections)
        override(.maxBusChannels, &settings.coordinator.maximumBusChannels, maxBusChannels)
        override(.maxHandshakes, &settings.coordinator.maximumHandshakes, maxHandshakes)
        override(.maxHandshakesPerUID, &settings.coordinator.maximumHandshakesPerUID, maxHandshakesPerUID)
        override(.handshakeTimeoutMS, &settings.coordinator.handshakeTimeoutMilliseconds, handshakeTimeoutMS)
        override(.heldReplyTimeoutMS, &settings.coordinator.heldReplyTimeoutMilliseconds, heldReplyTimeoutMS)
        override(.names, &settings.coordinator.nameLookup, names)
        override(.ordering, &settings.coordinator.ordering, ordering)
        override(.eventBackend, &settings.coordinator.eventBackend, eventBackend)
        if let logLevel { settings.logLevel = logLevel }
        if !allowUIDs.isEmpty {
            settings.allowOtherUIDs(allowUIDs)
            flagged.insert(.allowUIDs)
        }
        do {
            try settings.coordinator.validate()
        } catch {
            guard let file, !flagged.contains(error.field), let key = fromFile.first(where: { $0.name == error.field.rawValue }) else { throw error }
            throw ConfigurationFileError(path: file.path, line: file.line(of: key), problem: "\(error)")
        }
        return settings
    }

    /// Runs a start-up step; its error is printed as `bus1d: ...` and exits with `exitCode`.
    private static func refusing<T>(exitCode: Int32, _ step: () throws(any Error) -> T) throws(ExitCode) -> T {
        do {
            return try step()
        } catch {
            var standardError = StandardError()
            print("bus1d: \(error)", to: &standardError)
            throw ExitCode(exitCode)
        }
    }
}

/// Standard error as a `TextOutputStream`, for start-up refusals (before logging is set up).
private struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeMutableBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension CoordinatorConfiguration.EventBackend: ExpressibleByArgument {}
extension CoordinatorConfiguration.Ordering: ExpressibleByArgument {}
extension CoordinatorConfiguration.NameLookup: ExpressibleByArgument {}
