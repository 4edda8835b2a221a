/// A JSON value, written by hand: the tool prints a handful of flat objects, and
/// their keys stay in the order the README documents.
indirect enum JSON {
    case string(String)
    case number(UInt64)
    case signed(Int64)
    case null
    case object([(String, JSON)])
    case array([JSON])

    /// Compact JSON on one line (what `subscribe --json` prints per message).
    var text: String {
        switch self {
        case .string(let s): quoted(s)
        case .number(let n): String(n)
        case .signed(let n): String(n)
        case .null: "null"
        case .object(let members): "{" + members.map { quoted($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        case .array(let items): "[" + items.map(\.text).joined(separator: ",") + "]"
        }
    }

    /// An array of objects, one per line (what `list --json` prints).
    var lines: String {
        guard case .array(let items) = self, !items.isEmpty else { return text }
        return "[\n" + items.map { "  " + $0.text }.joined(separator: ",\n") + "\n]"
    }
}

/// A JSON string literal. Besides what JSON requires (quote, backslash, C0), DEL,
/// C1 controls and bidirectional controls are escaped too, so the JSON on a
/// terminal cannot drive it.
private func quoted(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            let v = scalar.value
            if v < 0x20 || (0x7F...0x9F).contains(v) || [0x061C, 0x200E, 0x200F].contains(v)
                || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) {
                let hex = String(v, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
