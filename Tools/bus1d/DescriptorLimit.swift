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
}
