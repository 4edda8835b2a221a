import Foundation
import Histogram

/// One measured configuration. Latency rows carry percentiles (nanoseconds, round
/// trip unless `benchmark` is "fanout", where it is send → last receiver);
/// throughput rows carry rates. `ratio` compares this row's p50 (latency) or
/// messages/s (throughput) with `baseline`'s, measured in the same invocation.
struct Row: Codable {
    var benchmark: String
    var mechanism: String
    var mode: String
    var size: Int
    var fanout: Int?
    var batch: Int?
    var samples: Int
    var minNanoseconds: UInt64?
    var p50Nanoseconds: UInt64?
    var p90Nanoseconds: UInt64?
    var p99Nanoseconds: UInt64?
    var p999Nanoseconds: UInt64?
    var maxNanoseconds: UInt64?
    var messagesPerSecond: Double?
    var bytesPerSecond: Double?
    var baseline: String?
    var ratio: Double?
    /// (percentile, nanoseconds) points for plots; not in CSV.
    var curve: [[Double]]?
    /// What the row measures (see `rowDescription`).
    var description: String?
    /// `--compare-c`: messages/s of each alternated run (`messagesPerSecond` is their
    /// median); not in CSV.
    var runs: [Double]?
    /// `control-ops`: client processes that ran together (`messagesPerSecond` is
    /// their operations/s in all).
    var clients: Int?

    static func latency(_ benchmark: String, _ mechanism: String, _ mode: String, size: Int, fanout: Int? = nil,
                        histogram: Histogram<UInt64>) -> Row {
        let points: [Double] = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999]
        return Row(benchmark: benchmark, mechanism: mechanism, mode: mode, size: size, fanout: fanout, batch: nil,
                   samples: Int(histogram.totalCount), minNanoseconds: histogram.min,
                   p50Nanoseconds: histogram.valueAtPercentile(50), p90Nanoseconds: histogram.valueAtPercentile(90),
                   p99Nanoseconds: histogram.valueAtPercentile(99), p999Nanoseconds: histogram.valueAtPercentile(99.9),
                   maxNanoseconds: histogram.max, messagesPerSecond: nil, bytesPerSecond: nil, baseline: nil, ratio: nil,
                   curve: points.map { [$0, Double(histogram.valueAtPercentile($0))] })
    }

    static func throughput(_ mechanism: String, _ mode: String, size: Int, batch: Int?, messages: Int, seconds: Double) -> Row {
        Row(benchmark: "throughput", mechanism: mechanism, mode: mode, size: size, fanout: nil, batch: batch, samples: messages,
            minNanoseconds: nil, p50Nanoseconds: nil, p90Nanoseconds: nil, p99Nanoseconds: nil, p999Nanoseconds: nil,
            maxNanoseconds: nil, messagesPerSecond: Double(messages) / seconds,
            bytesPerSecond: Double(messages) * Double(size) / seconds, baseline: nil, ratio: nil, curve: nil)
    }
}

/// Fills `ratio`/`baseline` of every Bus1 row from the baseline row of the same
/// benchmark, size, batch and fan-out: busy-poll and spin-then-park against the
/// bare shared-memory spin (ring), park modes against bare futex (the futex ring,
/// the futex multicast). A row with no such baseline gets no ratio.
func attachRatios(_ rows: inout [Row]) {
    for i in rows.indices where rows[i].mechanism == "bus1" {
        let wanted = rows[i].mode.hasPrefix("park") ? "futex" : "shm-spin"
        guard let base = rows.first(where: {
            $0.mechanism == wanted && $0.benchmark == rows[i].benchmark && $0.size == rows[i].size
                && $0.batch == rows[i].batch && $0.fanout == rows[i].fanout
        }) else { continue }
        rows[i].baseline = wanted
        rows[i].ratio = ratio(rows[i], to: base)
    }
}

/// `row` ÷ `base`: p50 over p50 for latency, base rate over row rate for
/// throughput; above 1, `row` is slower.
func ratio(_ row: Row, to base: Row) -> Double? {
    if let p50 = row.p50Nanoseconds, let b = base.p50Nanoseconds, b > 0 { return Double(p50) / Double(b) }
    if let rate = row.messagesPerSecond, let b = base.messagesPerSecond, rate > 0 { return b / rate }
    return nil
}

enum OutputFormat: String { case table, json, csv }

func render(_ rows: [Row], as format: OutputFormat) -> String {
    switch format {
    case .json:
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(rows)) ?? Data(), as: UTF8.self)
    case .csv:
        var out = "benchmark,mechanism,mode,size,fanout,batch,samples,min_ns,p50_ns,p90_ns,p99_ns,p99_9_ns,max_ns,messages_per_s,bytes_per_s,baseline,ratio,description\n"
        for r in rows {
            let fields: [String] = [r.benchmark, r.mechanism, r.mode, "\(r.size)", r.fanout.map(String.init) ?? "",
                                    r.batch.map(String.init) ?? "", "\(r.samples)",
                                    r.minNanoseconds.map(String.init) ?? "", r.p50Nanoseconds.map(String.init) ?? "",
                                    r.p90Nanoseconds.map(String.init) ?? "", r.p99Nanoseconds.map(String.init) ?? "",
                                    r.p999Nanoseconds.map(String.init) ?? "", r.maxNanoseconds.map(String.init) ?? "",
                                    r.messagesPerSecond.map { String(format: "%.0f", $0) } ?? "",
                                    r.bytesPerSecond.map { String(format: "%.0f", $0) } ?? "",
                                    r.baseline ?? "", r.ratio.map { String(format: "%.3f", $0) } ?? "",
                                    csvQuoted(r.description ?? "")]
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    case .table:
        var lines: [[String]] = []
        let latency = rows.filter { $0.p50Nanoseconds != nil }
        if !latency.isEmpty {
            lines.append(["benchmark", "mechanism", "mode", "size", "fan", "samples", "min µs", "p50", "p90", "p99", "p99.9", "max", "×baseline"])
            for r in latency {
                func us(_ v: UInt64?) -> String { v.map { String(format: "%.2f", Double($0) / 1000) } ?? "" }
                lines.append([r.benchmark, r.mechanism, r.mode, sizeText(r.size), r.fanout.map(String.init) ?? "", "\(r.samples)",
                              us(r.minNanoseconds), us(r.p50Nanoseconds), us(r.p90Nanoseconds), us(r.p99Nanoseconds),
                              us(r.p999Nanoseconds), us(r.maxNanoseconds),
                              r.ratio.map { String(format: "%.2f× %@", $0, r.baseline ?? "") } ?? ""])
            }
        }
        let rates = rows.filter { $0.messagesPerSecond != nil }
        if !rates.isEmpty {
            if !lines.isEmpty { lines.append([]) }
            lines.append(["benchmark", "mechanism", "mode", "size", "batch", "fan", "messages", "M msg/s", "GB/s", "baseline÷bus1"])
            for r in rates {
                lines.append([r.benchmark, r.mechanism, r.mode, sizeText(r.size), r.batch.map(String.init) ?? "",
                              r.fanout.map(String.init) ?? "", "\(r.samples)",
                              String(format: "%.3f", (r.messagesPerSecond ?? 0) / 1e6), String(format: "%.3f", (r.bytesPerSecond ?? 0) / 1e9),
                              r.ratio.map { String(format: "%.2f× %@", $0, r.baseline ?? "") } ?? ""])
            }
        }
        return alignColumns(lines) + legend(rows)
    }
}

/// A CSV field: quoted (quotes doubled) when it holds a comma, a quote or a newline.
func csvQuoted(_ field: String) -> String {
    guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return field }
    return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

func sizeText(_ bytes: Int) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
    if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
    return "\(bytes) B"
}

private func alignColumns(_ lines: [[String]]) -> String {
    var widths: [Int] = []
    for line in lines {
        for (i, cell) in line.enumerated() {
            if i >= widths.count { widths.append(0) }
            widths[i] = max(widths[i], cell.count)
        }
    }
    return lines.map { line in
        line.enumerated().map { i, cell in
            i == 0 || i == 1 || i == 2 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[i] - cell.count) + cell
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

/// A latency-percentile plot: x = percentile on a log axis (1/(1-p): 0%, 90%,
/// 99%, 99.9%, ...), y = latency in µs on a log axis, one line per row.
func percentileSVG(_ rows: [Row], title: String) -> String {
    let plotted = rows.filter { $0.curve != nil }
    let width = 900.0, height = 520.0, left = 80.0, right = 260.0, top = 40.0, bottom = 60.0
    let xMax = 5.0  // log10(1/(1-0.99999))
    let values = plotted.flatMap { $0.curve!.map { max($0[1], 1) / 1000 } }
    let yMin = pow(10, floor(log10(values.min() ?? 0.1))), yMax = pow(10, ceil(log10(values.max() ?? 10)))
    func x(_ p: Double) -> Double { left + min(log10(1 / max(1 - p / 100, 1e-5)), xMax) / xMax * (width - left - right) }
    func y(_ us: Double) -> Double { top + (1 - (log10(us) - log10(yMin)) / (log10(yMax) - log10(yMin))) * (height - top - bottom) }
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="24" font-size="15">\(title)</text>

        """
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"].enumerated() {
        let px = left + Double(i) / xMax * (width - left - right)
        svg += "<line x1=\"\(px)\" y1=\"\(top)\" x2=\"\(px)\" y2=\"\(height - bottom)\" stroke=\"#ddd\"/>"
        svg += "<text x=\"\(px)\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(label)</text>\n"
    }
    var decade = yMin
    while decade <= yMax * 1.0001 {
        let py = y(decade)
        svg += "<line x1=\"\(left)\" y1=\"\(py)\" x2=\"\(width - right)\" y2=\"\(py)\" stroke=\"#ddd\"/>"
        svg += "<text x=\"\(left - 6)\" y=\"\(py + 4)\" text-anchor=\"end\">\(decade < 1 ? String(format: "%g", decade) : String(Int(decade))) µs</text>\n"
        decade *= 10
    }
    svg += "<text x=\"\((left + width - right) / 2)\" y=\"\(height - 18)\" text-anchor=\"middle\">percentile</text>\n"
    for (i, row) in plotted.enumerated() {
        let color = colors[i % colors.count]
        let points = row.curve!.map { "\(x($0[0])),\(y(max($0[1], 1) / 1000))" }.joined(separator: " ")
        svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
        let label = "\(row.mechanism) \(row.mode) \(sizeText(row.size))" + (row.fanout.map { " ×\($0)" } ?? "")
        svg += "<text x=\"\(width - right + 12)\" y=\"\(top + 16 * Double(i) + 4)\" fill=\"\(color)\">\(label)</text>\n"
    }
    return svg + "</svg>\n"
}
