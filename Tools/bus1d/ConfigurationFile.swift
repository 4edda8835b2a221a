import Bus1Linux
import Glibc
import TOMLKit

/// `bus1d`'s configuration file: TOML, parsed by TOMLKit (toml++, TOML 1.0), and
/// applied key by key (``ConfigurationKey/all``) onto a ``DaemonConfiguration``.
///
/// Strict on purpose: an unknown section or key (a typo would otherwise be a
/// setting silently not made) and a value of the wrong type are refused, naming
/// the key and its line. Ranges are checked afterwards, for file and flags
/// together, by `CoordinatorConfiguration.validate()`.
struct ConfigurationFile {
    let path: String
    let text: String

    /// Reads `path`; nil if it does not exist and `required` is false (the default
    /// file is optional, a file named with `--config` is not).
    static func load(_ path: String, required: Bool) throws(ConfigurationFileError) -> ConfigurationFile? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT && !required { return nil }
            throw ConfigurationFileError(path: path, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        let file = FileDescriptor(adopting: fd)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = Glibc.read(file.rawValue, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ConfigurationFileError(path: path, problem: "cannot read: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += chunk[..<count]
            guard bytes.count <= 1 << 20 else { throw ConfigurationFileError(path: path, problem: "larger than 1 MiB") }
        }
        return ConfigurationFile(path: path, text: String(decoding: bytes, as: UTF8.self))
    }

    /// Applies every key of the file onto `configuration`; returns the keys set.
    @discardableResult
    func apply(to configuration: inout DaemonConfiguration) throws(ConfigurationFileError) -> [ConfigurationKey] {
        let document: TOMLTable
        do {
            document = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationFileError(path: path, line: error.source.begin.line, problem: error.description)
        } catch {
            throw ConfigurationFileError(path: path, problem: "\(error)")
        }
        let keys = ConfigurationKey.all
        var set: [ConfigurationKey] = []
        for name in document.keys {
            guard let value = document[name]?.tomlValue else { continue }
            if let section = ConfigurationKey.Section(rawValue: name), section != .top {
                guard value.type == .table, let table = value.table else {
                    throw problem("[\(name)] must be a table", key: name, in: .top)
                }
                for inner in table.keys {
                    guard let innerValue = table[inner]?.tomlValue else { continue }
                    set.append(try self.set(inner, in: section, to: innerValue, on: &configuration, keys: keys))
                }
            } else {
                set.append(try self.set(name, in: .top, to: value, on: &configuration, keys: keys))
            }
        }
        return set
    }

    /// The line that sets `key`, if it can be found (see ``SourceLines``).
    func line(of key: ConfigurationKey) -> Int? {
        SourceLines(text).line(ofKey: key.name, inSection: key.section.rawValue)
    }

    private func set(_ name: String, in section: ConfigurationKey.Section, to value: TOMLValue,
                     on configuration: inout DaemonConfiguration, keys: [ConfigurationKey]) throws(ConfigurationFileError) -> ConfigurationKey {
        guard let key = keys.first(where: { $0.section == section && $0.name == name }) else {
            let qualified = section == .top ? name : "\(section.rawValue).\(name)"
            let elsewhere = keys.first { $0.name == name }.map { " (did you mean \($0.qualifiedName)?)" } ?? ""
            throw problem("unknown key \(qualified)\(elsewhere)", key: name, in: section)
        }
        do {
            try key.apply(value, &configuration)
        } catch {
            throw problem("\(key.qualifiedName) must be \(error.expected)", key: name, in: section)
        }
        return key
    }

    private func problem(_ message: String, key: String, in section: ConfigurationKey.Section) -> ConfigurationFileError {
        ConfigurationFileError(path: path, line: SourceLines(text).line(ofKey: key, inSection: section.rawValue), problem: message)
    }
}

/// A configuration file that cannot be used: where, and why.
struct ConfigurationFileError: Error, CustomStringConvertible {
    let path: String
    var line: Int? = nil
    let problem: String

    var description: String { "\(path)\(line.map { ":\($0)" } ?? ""): \(problem)" }
}

extension ConfigurationFile {
    /// `configuration` as a configuration file (`--print-config`): every key, with
    /// its summary as a comment, by section.
    static func render(_ configuration: DaemonConfiguration) -> String {
        var text = "# bus1d configuration: defaults, then the configuration file, then flags.\n"
        for section in ConfigurationKey.Section.allCases {
            if section != .top { text += "\n[\(section.rawValue)]\n" }
            for key in ConfigurationKey.all where key.section == section {
                text += "# \(key.summary).\n\(key.name) = \(key.render(configuration))\n"
            }
        }
        return text
    }
}
