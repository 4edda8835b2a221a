import Foundation

/// A text table: a header row, left-aligned text, right-aligned numbers.
struct Table {
    let headers: [String]
    private var rows: [[String]] = []
    private var numeric: [Bool]

    init(_ headers: [String]) {
        self.headers = headers
        numeric = Array(repeating: true, count: headers.count)
    }

    mutating func add(_ cells: [Any]) {
        let texts = cells.map { "\($0)" }
        for (i, cell) in cells.enumerated() where i < numeric.count && !(cell is any BinaryInteger) { numeric[i] = false }
        rows.append(texts)
    }

    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i == cells.count - 1 && !numeric[i] ? cell : (numeric[i] ? pad + cell : cell + pad)
            }.joined(separator: "  ") + "\n"
        }
        if rows.isEmpty { return line(headers) + "(none)\n" }
        return line(headers) + rows.map(line).joined()
    }
}

/// Bytes with a binary unit: 512 B, 64.0 KiB, 72.0 MiB.
func bytes(_ n: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(n), unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
}

/// A duration in milliseconds: 850ms, 12.3s, 4m05s.
func age(_ ms: UInt32) -> String {
    if ms < 1000 { return "\(ms)ms" }
    if ms < 60_000 { return String(format: "%.1fs", Double(ms) / 1000) }
    return String(format: "%dm%02ds", ms / 60_000, (ms / 1000) % 60)
}

/// Classic 16-bytes-per-line hex and ASCII dump, offsets from `base`.
func hexDump(_ data: [UInt8], base: UInt64) -> String {
    var out = ""
    for start in stride(from: 0, to: data.count, by: 16) {
        let line = data[start..<min(start + 16, data.count)]
        let hex = line.map { String(format: "%02x", $0) }
        let left = hex.prefix(8).joined(separator: " "), right = hex.dropFirst(8).joined(separator: " ")
        let ascii = String(line.map { $0 >= 0x20 && $0 < 0x7f ? Character(UnicodeScalar($0)) : "." })
        out += String(format: "%08llx  ", base + UInt64(start)) + left.padding(toLength: 23, withPad: " ", startingAt: 0)
            + "  " + right.padding(toLength: 23, withPad: " ", startingAt: 0) + "  |" + ascii + "|\n"
    }
    return out.isEmpty ? "(empty)\n" : out
}
