// bus1d: the Bus1 coordinator daemon.
import ArgumentParser
import Bus1Coordinator
import Bus1Linux
import Glibc
import Logging

@main
struct Bus1Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1d",
        abstract: "The Bus1 coordinator: authenticates peers, creates and seals shared memory, owns nodes, handles and names.",
        discussion: """
            Listens on --address, else $BUS1_ADDRESS, else $XDG_RUNTIME_DIR/bus1/bus, else /tmp/bus1-<uid>/bus.
            Refuses to start on a path a live bus serves. Exits cleanly on SIGINT or SIGTERM, removing its socket.
            """)

    @Option(help: "Socket path to listen on.")
    var address: String?

    @Option(help: "Payload bytes of a pool when a peer asks for the default (power of two).")
    var poolSize: Int = 64 << 20

    @Option(help: "Largest pool payload area a peer may ask for.")
    var maxPoolSize: Int = 1 << 30

    @Option(help: "Entries per inbound ring when a peer asks for the default (power of two, 2...65536).")
    var ringCapacity: Int = 256

    @Option(help: "Most peers one uid may connect.")
    var maxPeersPerUid: Int = 1024

    @Option(help: "Most nodes one peer may own.")
    var maxNodes: Int = 65536

    @Option(help: "Most handles one peer may hold.")
    var maxHandles: Int = 65536

    @Option(help: "Most channels one peer may send or receive on.")
    var maxChannels: Int = 4096

    @Option(help: "Control messages held for a peer whose socket is full before it is disconnected as not reading.")
    var maxQueuedControlMessages: Int = 1024

    @Option(help: "Entries of each peer's coordinator ring (notifications not yet consumed; a peer that lets it fill is disconnected).")
    var coordinatorRingCapacity: Int = 4096

    @Option(help: "Fds in attachments one uid may have waiting in the coordinator for receivers whose sockets are full.")
    var maxQueuedFdsPerUid: Int = 256

    @Option(help: "Also allow this uid to connect (repeatable; the daemon's own uid and root always may).")
    var allowUid: [UInt32] = []

    @Option(help: "Who may look a name up: same-uid (the owner's uid and root) or any-allowed-uid.")
    var names: CoordinatorConfiguration.NameLookup = .sameUID

    @Option(help: "Bus ordering: global (one causal order at every receiver) or fifo (per-channel FIFO only).")
    var ordering: CoordinatorConfiguration.Ordering = .global

    @Option(help: "Event loop backend: automatic, io_uring or poll.")
    var eventBackend: CoordinatorConfiguration.EventBackend = .automatic

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        for (name, value) in [("--pool-size", poolSize), ("--ring-capacity", ringCapacity), ("--coordinator-ring-capacity", coordinatorRingCapacity)]
        where value <= 0 || value & (value - 1) != 0 {
            throw ValidationError("\(name) must be a power of two")
        }
        guard (2...65536).contains(ringCapacity) else { throw ValidationError("--ring-capacity must be 2...65536") }
        guard (2...65536).contains(coordinatorRingCapacity) else { throw ValidationError("--coordinator-ring-capacity must be 2...65536") }
        guard poolSize <= maxPoolSize else { throw ValidationError("--pool-size exceeds --max-pool-size") }
    }

    func run() throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "bus1d")
        var configuration = CoordinatorConfiguration(address: address ?? CoordinatorConfiguration.defaultAddress())
        configuration.defaultPoolDataSize = poolSize
        configuration.maximumPoolDataSize = maxPoolSize
        configuration.defaultRingCapacity = ringCapacity
        configuration.maximumPeersPerUID = maxPeersPerUid
        configuration.maximumNodesPerPeer = maxNodes
        configuration.maximumHandlesPerPeer = maxHandles
        configuration.maximumChannelsPerPeer = maxChannels
        configuration.maximumQueuedControlMessages = maxQueuedControlMessages
        configuration.coordinatorRingCapacity = coordinatorRingCapacity
        configuration.allowedUIDs.formUnion(allowUid)
        configuration.nameLookup = names
        configuration.maximumQueuedDescriptorsPerUID = maxQueuedFdsPerUid
        configuration.eventBackend = eventBackend
        configuration.ordering = ordering

        raiseDescriptorLimit(logger)
        let coordinator: Coordinator
        do {
            coordinator = try Coordinator(configuration: configuration, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(2)
        }
        SignalRelay.install(coordinator)
        do {
            try coordinator.run()
        } catch {
            logger.critical("coordinator failed: \(error)")
            throw ExitCode(1)
        }
    }
}

/// Raises the soft fd limit to the hard one: the daemon holds several fds per peer
/// and channel (plus duplicates for queued control messages), and the usual soft
/// default of 1024 would make it refuse work long before the machine runs out.
private func raiseDescriptorLimit(_ logger: Logger) {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    let before = limit.rlim_cur
    limit.rlim_cur = limit.rlim_max
    if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
        logger.debug("raised the open-file limit", metadata: ["from": "\(before)", "to": "\(limit.rlim_max)"])
    } else {
        logger.warning("cannot raise the open-file limit", metadata: ["limit": "\(before)", "errno": "\(errno)"])
    }
}

/// Turns SIGINT/SIGTERM into `Coordinator.stop()` (which only writes one byte to
/// a pipe: async-signal-safe).
enum SignalRelay {
    nonisolated(unsafe) private static var target: Coordinator?

    static func install(_ coordinator: Coordinator) {
        target = coordinator
        signal(SIGPIPE, SIG_IGN)
        var wanted = sigset_t()
        sigemptyset(&wanted)
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { _ in SignalRelay.target?.stop() }
            sigaddset(&wanted, sig)
        }
        // A parent may have spawned us with these blocked (the mask is inherited).
        pthread_sigmask(SIG_UNBLOCK, &wanted, nil)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension CoordinatorConfiguration.EventBackend: ExpressibleByArgument {}
extension CoordinatorConfiguration.Ordering: ExpressibleByArgument {}
extension CoordinatorConfiguration.NameLookup: ExpressibleByArgument {}
