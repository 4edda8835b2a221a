import Logging

/// A log for failures that can repeat thousands of times a second (accept under
/// a connection flood, a failing loop turn): each key logs at most once per
/// `interval`, and says how many it held back since, so a flood shows in the log
/// without becoming one.
struct ThrottledLog {
    private let logger: Logger
    private let interval: Duration
    private var lastLogged: [String: ContinuousClock.Instant] = [:]
    private var suppressed: [String: Int] = [:]

    init(logger: Logger, interval: Duration = .seconds(1)) {
        self.logger = logger
        self.interval = interval
    }

    mutating func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message, key: String,
                      error: (any Error)? = nil, metadata: Logger.Metadata = [:]) {
        let now = ContinuousClock.now
        if let last = lastLogged[key], last.duration(to: now) < interval {
            suppressed[key, default: 0] += 1
            return
        }
        lastLogged[key] = now
        var metadata = metadata
        if let error { metadata["error"] = "\(error)" }
        if let held = suppressed.removeValue(forKey: key) { metadata["suppressed"] = "\(held)" }
        logger.log(level: level, message(), metadata: metadata)
    }
}
