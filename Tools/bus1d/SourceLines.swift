/// Finds the line a key of a TOML file is set on, for error messages: TOMLKit
/// reports positions for syntax errors only, not for the keys of a parsed table.
///
/// Reads the file as written one setting per line (`[section]` headers, then
/// `key = value`, bare or quoted keys), which is what bus1d's files look like;
/// for anything cleverer (inline tables, dotted keys) it finds nothing, and the
/// message names the key without a line.
struct SourceLines {
    private let lines: [Substring]

    init(_ text: String) { lines = text.split(separator: "\n", omittingEmptySubsequences: false) }

    /// The 1-based line that sets `key` in the table `section` ("" for the top level).
    func line(ofKey key: String, inSection section: String) -> Int? {
        var current = ""
        for (index, raw) in lines.enumerated() {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("[") {
                let header = line.dropFirst().prefix { $0 != "]" }
                current = header.trimmingSpaces()
                if current == (section.isEmpty ? key : "\(section).\(key)") { return index + 1 }  // the key is this table
                continue
            }
            guard current == section, let equals = line.firstIndex(of: "=") else { continue }
            let name = line[..<equals].trimmingSpaces()
            if name == key || name == "\"\(key)\"" || name == "'\(key)'" { return index + 1 }
        }
        return nil
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
