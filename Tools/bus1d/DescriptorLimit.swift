import Bus1Coordinator
import Glibc
import Logging

/// The daemon's open-file limit.
enum DescriptorLimit {
    /// Raises the soft fd limit to the hard one: the daemon holds several fds per
    /// peer and channel (plus duplicates for queued control messages), and the
    /// usual soft default of 1024 would make it refuse work long before the
    /// machine runs out. (A unit's `LimitNOFILE=` sets both.)
    static func raise(_ logger: Logger) {
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

    /// Fds kept back from connections: the listener, the stop pipe, the clock, the
    /// io_uring, logging, and duplicates of fds waiting in outboxes.
    static var reserved: Int { 64 }

    /// Lowers `configuration.maximumConnections` and `maximumBusChannels` to what
    /// the soft fd limit can hold (three quarters of it for connections at
    /// ``CoordinatorConfiguration/descriptorsPerConnection`` each, a quarter for
    /// channels at one each), so what the fair shares hand out is what the daemon
    /// can serve: a flood then meets a typed refusal, not `EMFILE` for everyone.
    static func fitConnections(_ configuration: inout CoordinatorConfiguration, _ logger: Logger) {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return }  // RLIM_INFINITY
        let budget = max(16, Int(clamping: limit.rlim_cur) - reserved)
        let connections = max(2, budget * 3 / 4 / CoordinatorConfiguration.descriptorsPerConnection)
        let channels = max(2, budget / 4)
        guard connections < configuration.maximumConnections || channels < configuration.maximumBusChannels else { return }
        configuration.maximumConnections = min(configuration.maximumConnections, connections)
        configuration.maximumBusChannels = min(configuration.maximumBusChannels, channels)
        logger.info("sized connections and channels to the open-file limit",
                    metadata: ["max-connections": "\(configuration.maximumConnections)",
                               "max-bus-channels": "\(configuration.maximumBusChannels)", "open-file-limit": "\(limit.rlim_cur)"])
    }
}
