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

    /// Lowers `configuration.maximumConnections` to what the soft fd limit can
    /// hold, so the connections the fair share hands out are ones the daemon can
    /// serve: a flood then meets a typed refusal, not `EMFILE` for everyone.
    static func fitConnections(_ configuration: inout CoordinatorConfiguration, _ logger: Logger) {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return }  // RLIM_INFINITY
        let fitting = max(2, (Int(clamping: limit.rlim_cur) - reserved) / CoordinatorConfiguration.descriptorsPerConnection)
        guard fitting < configuration.maximumConnections else { return }
        logger.info("fewer connections than configured fit the open-file limit",
                      metadata: ["max-connections": "\(fitting)", "configured": "\(configuration.maximumConnections)",
                                 "open-file-limit": "\(limit.rlim_cur)"])
        configuration.maximumConnections = fitting
    }
}
