/// How a payload is shown: as text when it is UTF-8 a terminal shows as it is,
/// else as hex. A publisher must not be able to drive a subscriber's terminal
/// (escape sequences, C1 controls, right-to-left overrides), so any control
/// character other than newline and tab makes a payload hex.
enum Rendered: Equatable {
    case text(String)
    case hex(String)

    init(_ bytes: some Collection<UInt8>) {
        if let text = String(validating: bytes, as: UTF8.self), text.unicodeScalars.allSatisfy(isShown) {
            self = .text(text)
        } else {
            self = .hex(hexString(bytes))
        }
    }

    /// The line(s) `subscribe` and `call` print: the text, or `(hex) 1b5b…`.
    var line: String {
        switch self {
        case .text(let text): text
        case .hex(let hex): "(hex) " + hex
        }
    }
}

/// Whether a terminal shows `scalar` as itself: newline and tab, and anything
/// that is not a control character or a bidirectional-text control.
private func isShown(_ scalar: Unicode.Scalar) -> Bool {
    if scalar == "\n" || scalar == "\t" { return true }
    if scalar.properties.generalCategory == .control { return false }  // C0, DEL, C1 (U+009B is a CSI)
    return !isBidiControl(scalar)
}

/// U+061C, U+200E/F, U+202A…U+202E, U+2066…U+2069: they reorder what follows on the line.
private func isBidiControl(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
    default: false
    }
}

func hexString(_ bytes: some Collection<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// `text` with every character a terminal would not show as itself written as
/// `\xNN` (or `\u{…}`): for names and commands in `list`, which other peers choose.
func escaped(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        if scalar != "\n" && scalar != "\t" && isShown(scalar) && scalar != "\\" {
            out.unicodeScalars.append(scalar)
        } else if scalar == "\\" {
            out += "\\\\"
        } else if scalar.value < 0x100 {
            out += "\\x" + hexString([UInt8(scalar.value)])
        } else {
            out += "\\u{" + String(scalar.value, radix: 16) + "}"
        }
    }
    return out
}

/// `value` with `decimals` digits after the point (at most), no trailing zeros
/// beyond the first: 5, 0.2, 1234.5.
func formatted(_ value: Double, decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (value * scale).rounded()
    guard scaled.isFinite, abs(scaled) < 9e15 else { return "\(value)" }
    let units = Int64(scaled)
    let whole = units / Int64(scale)
    var fraction = String(abs(units % Int64(scale)))
    fraction = String(repeating: "0", count: decimals - fraction.count) + fraction
    while fraction.count > 1 && fraction.hasSuffix("0") { fraction.removeLast() }
    if fraction == "0" { return (units < 0 && whole == 0 ? "-" : "") + String(whole) }
    return (units < 0 && whole == 0 ? "-" : "") + "\(whole).\(fraction)"
}

/// A rate with one decimal: 1234.5.
func oneDecimal(_ value: Double) -> String {
    let tenths = Int64((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}

/// Bytes per second with a binary unit: 512.0 B/s, 1.2 MiB/s.
func bandwidth(_ bytesPerSecond: Double) -> String {
    let units = ["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"]
    var value = bytesPerSecond, unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return oneDecimal(value) + " " + units[unit]
}
