import Bus1Linux
import Foundation
import Glibc

/// `bus1-bench baseline --compare-c`: the Swift ring (`RingBaseline`) against its
/// plain C twin (`bus1-c-ring`, built beside bus1-bench), alternated run by run so
/// both see the same machine. Each Swift row's `ratio` is the median over rounds of
/// C ÷ Swift within the round (above 1: Swift is slower): this VM's placement of
/// the two vCPUs changes every few runs and moves both rates several-fold, and a
/// ratio within a round cancels that where a ratio of medians does not. `runs`
/// holds every run's messages/s; `messagesPerSecond` is their median.
enum CompareC {
    /// bus1-c-ring in the directory of this executable.
    static var executable: String {
        var path = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &path, path.count - 1)
        let exe = n > 0 ? String(decoding: path[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/bus1-c-ring"
    }

    /// One run of bus1-c-ring; returns its messages/s.
    static func run(size: Int, messages: Int, batch: Int?, park: Bool, cpus: [Int]) throws -> Double {
        var arguments = ["--size", "\(size)", "--messages", "\(messages)", "--batch", "\(batch ?? 1)"]
        if cpus.count > 1 { arguments += ["--cpus", "\(cpus[0]),\(cpus[1])"] }
        if park { arguments.append("--park") }
        guard access(executable, X_OK) == 0 else {
            throw BenchError("\(executable) is missing: swift build -c release --product bus1-c-ring")
        }
        let output = try ChildDescriptors.pipe()
        let pid: pid_t
        do {
            pid = try spawnProcess(executable, arguments, descriptors: [1: output.write])
        } catch {
            close(output.read); close(output.write)
            throw error
        }
        close(output.write)
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(output.read, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            text += chunk[..<n]
        }
        close(output.read)
        try Child.reap(pid, "bus1-c-ring")
        let line = String(decoding: text, as: UTF8.self)
        guard let object = try? JSONSerialization.jsonObject(with: Data(text)) as? [String: Any],
              let rate = (object["messagesPerSecond"] as? NSNumber)?.doubleValue, rate > 0
        else { throw BenchError("bus1-c-ring printed no rate: \(line)") }
        return rate
    }

    /// For every size and batch, `rounds` alternated runs of the Swift ring and the
    /// C ring (busy, and parked if `park`): a Swift row and a C row each, with the
    /// median rate and every run's.
    static func rows(sizes: [Int], messages: (Int) -> Int, batches: (Int) -> [Int?], rounds: Int, park: Bool, cpus: [Int]) throws -> [Row] {
        var rows: [Row] = []
        for size in sizes {
            let n = messages(size)
            for batch in batches(size) {
                for parked in park ? [false, true] : [false] {
                    let name = parked ? "futex" : "shm-spin"
                    var swift: [Double] = [], c: [Double] = []
                    for round in 0..<rounds {
                        progress("compare-c \(name) \(sizeText(size)) batch \(batch ?? 1) round \(round + 1)/\(rounds)")
                        // Alternate which goes first, so neither always runs right after the other.
                        let swiftFirst = round % 2 == 0
                        if !swiftFirst { c.append(try run(size: size, messages: n, batch: batch, park: parked, cpus: cpus)) }
                        swift.append(try RingBaseline.throughput(size: size, messages: n, batch: batch, park: parked, cpus: cpus))
                        if swiftFirst { c.append(try run(size: size, messages: n, batch: batch, park: parked, cpus: cpus)) }
                    }
                    var cRow = Row.throughput("c-" + name, "-", size: size, batch: batch, messages: n, seconds: Double(n) / median(c))
                    cRow.runs = c
                    var swiftRow = Row.throughput(name, "-", size: size, batch: batch, messages: n, seconds: Double(n) / median(swift))
                    swiftRow.runs = swift
                    swiftRow.baseline = cRow.mechanism
                    swiftRow.ratio = median(zip(c, swift).map { $0 / $1 })
                    rows += [swiftRow, cRow]
                }
            }
        }
        return rows
    }

    /// The spread under the table: each side's min / median / max, and the median
    /// (min–max) of C ÷ Swift within a round.
    static func summary(_ rows: [Row]) -> String {
        var lines = ["Alternated runs (M msg/s, min / median / max; C ÷ Swift per round, median and range):"]
        for (i, row) in rows.enumerated() {
            guard let runs = row.runs, !runs.isEmpty else { continue }
            let sorted = runs.sorted()
            var ratios = ""
            if let ratio = row.ratio, i + 1 < rows.count, let c = rows[i + 1].runs {
                let each = zip(c, runs).map { $0 / $1 }
                ratios = String(format: "; C ÷ Swift %.2f (%.2f–%.2f)", ratio, each.min() ?? 0, each.max() ?? 0)
            }
            lines.append(String(format: "  %@ %@ batch %@: %.2f / %.2f / %.2f (%d runs)%@", row.mechanism, sizeText(row.size),
                                row.batch.map(String.init) ?? "1", sorted.first! / 1e6, median(runs) / 1e6, sorted.last! / 1e6, runs.count,
                                ratios))
        }
        return lines.joined(separator: "\n")
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
