import Bus1Coordinator
import Glibc
import Logging

/// Everything `bus1d` runs with: the bus's settings, whose defaults only
/// `CoordinatorConfiguration` holds, and the daemon's own (the log level).
///
/// Built in order of precedence: the defaults, then the configuration file
/// (``ConfigurationFile``), then the flags; then checked once with
/// `CoordinatorConfiguration.validate()`.
struct DaemonConfiguration {
    var coordinator = CoordinatorConfiguration(address: CoordinatorConfiguration.defaultAddress())
    /// Lowest level logged (to standard error).
    var logLevel: Logger.Level = .info

    /// The file read when `--config` names none, and only if it exists:
    /// `/etc/bus1/bus1d.toml` for root (a system bus), else
    /// `$XDG_CONFIG_HOME/bus1/bus1d.toml` (a user bus; `~/.config` when unset).
    static func defaultFilePath() -> String {
        if getuid() == 0 { return "/etc/bus1/bus1d.toml" }
        if let config = getenv("XDG_CONFIG_HOME"), config.pointee != 0 { return String(cString: config) + "/bus1/bus1d.toml" }
        let home = getenv("HOME").map { String(cString: $0) } ?? ""
        return home + "/.config/bus1/bus1d.toml"
    }
}

extension DaemonConfiguration {
    /// Allows `uids` besides those every bus allows (its own uid and root, from
    /// `CoordinatorConfiguration`'s default), replacing earlier extra uids: a flag
    /// replaces the file's list, as flags replace every other file setting.
    mutating func allowOtherUIDs(_ uids: [UInt32]) {
        coordinator.allowedUIDs = Self.alwaysAllowedUIDs.union(uids)
    }

    /// The allowed uids beyond those always allowed, sorted.
    var otherAllowedUIDs: [UInt32] { coordinator.allowedUIDs.subtracting(Self.alwaysAllowedUIDs).sorted() }

    private static var alwaysAllowedUIDs: Set<UInt32> { CoordinatorConfiguration(address: "").allowedUIDs }
}
