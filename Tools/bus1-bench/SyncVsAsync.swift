import Foundation
import Histogram

/// `bus1-bench async`: each Bus1 row measured through the sync API (``Bus1Runs``)
/// and through the async API (``AsyncRuns``), alternated round by round in one
/// invocation (the order swapped every round, so neither always runs second), and
/// the async row's ratio to its sync twin. Per mode and size: the round trip, then
/// the unbatched one-way stream (the async API has no batch send).
///
/// A latency row's percentiles come from all rounds' histograms merged; a
/// throughput row's rate is the median round's. `runs` holds every round's p50
/// (latency, ns) or messages/s (throughput). The `bus1-async` row's `baseline` is
/// `bus1` and its `ratio` the median over rounds of the ratio within a round:
/// async p50 ÷ sync p50, or sync rate ÷ async rate (above 1: async is slower, as
/// every `ratio` reads). This VM's vCPU placement moves between runs, which a
/// ratio within a round cancels and a ratio of medians does not.
enum SyncVsAsync {
    static let mechanism = "bus1-async"

    static func rows(_ common: CommonOptions, address: String, cpus: [Int], rounds: Int) throws -> [Row] {
        var rows: [Row] = []
        for mode in common.runnableModes {
            for size in common.sizeList {
                let n = scaled(common.iterations, size: size)
                let warmup = min(common.warmup, n)
                rows += try alternate(rounds, "latency \(mode.name) \(sizeText(size))",
                    blocking: { try Bus1Runs.latency(address: address, mode: mode, size: size, iterations: n, warmup: warmup, cpus: cpus) },
                    awaiting: { try AsyncRuns.latency(address: address, mode: mode, size: size, iterations: n, warmup: warmup, cpus: cpus) },
                    row: { mechanism, histograms in latencyRow(mechanism, mode.name, size: size, histograms) },
                    slowness: { blocking, awaiting in Double(awaiting.valueAtPercentile(50)) / Double(max(blocking.valueAtPercentile(50), 1)) })
                rows += try alternate(rounds, "throughput \(mode.name) \(sizeText(size))",
                    blocking: { try Bus1Runs.throughput(address: address, mode: mode, size: size, messages: n, batch: nil, cpus: cpus) },
                    awaiting: { try AsyncRuns.throughput(address: address, mode: mode, size: size, messages: n, cpus: cpus) },
                    row: { mechanism, rates in throughputRow(mechanism, mode.name, size: size, messages: n, rates) },
                    slowness: { blocking, awaiting in blocking / awaiting })
            }
        }
        return rows
    }

    /// `rounds` alternated runs of `blocking` (the sync API) and `awaiting` (the
    /// async one); their two rows, the async one with `baseline` "bus1" and the
    /// median of `slowness(sync run, async run)` over rounds.
    private static func alternate<Run>(_ rounds: Int, _ what: String, blocking: () throws -> Run, awaiting: () throws -> Run,
                                       row: (String, [Run]) -> Row, slowness: (Run, Run) -> Double) throws -> [Row] {
        var syncRuns: [Run] = [], asyncRuns: [Run] = []
        for round in 0..<rounds {
            progress("\(what) round \(round + 1)/\(rounds)")
            let syncFirst = round % 2 == 0
            if !syncFirst { asyncRuns.append(try awaiting()) }
            syncRuns.append(try blocking())
            if syncFirst { asyncRuns.append(try awaiting()) }
        }
        var asyncRow = row(mechanism, asyncRuns)
        asyncRow.baseline = "bus1"
        asyncRow.ratio = median(zip(syncRuns, asyncRuns).map(slowness))
        return [row("bus1", syncRuns), asyncRow]
    }

    private static func latencyRow(_ mechanism: String, _ mode: String, size: Int, _ histograms: [Histogram<UInt64>]) -> Row {
        var merged = histograms[0]
        for histogram in histograms.dropFirst() { merged.add(histogram) }
        var row = Row.latency("latency", mechanism, mode, size: size, histogram: merged)
        row.runs = histograms.map { Double($0.valueAtPercentile(50)) }
        return row
    }

    private static func throughputRow(_ mechanism: String, _ mode: String, size: Int, messages: Int, _ rates: [Double]) -> Row {
        var row = Row.throughput(mechanism, mode, size: size, batch: nil, messages: messages, seconds: Double(messages) / median(rates))
        row.runs = rates
        return row
    }

    /// The spread under the table, per sync/async pair: each side's min / median /
    /// max over rounds, and async ÷ sync within a round (p50 for latency, so above
    /// 1 is slower; the rate for throughput, so below 1 is slower), median and range.
    static func summary(_ rows: [Row]) -> String {
        var lines = ["Alternated rounds (min / median / max; async ÷ sync within a round, median and range):"]
        for (i, row) in rows.enumerated() where row.mechanism == mechanism && i > 0 {
            let sync = rows[i - 1]
            guard let asyncRuns = row.runs, let syncRuns = sync.runs, !asyncRuns.isEmpty, asyncRuns.count == syncRuns.count else { continue }
            let latency = row.benchmark == "latency"
            let scale = latency ? 1e-3 : 1e-6
            func spread(_ runs: [Double]) -> String {
                String(format: "%.2f / %.2f / %.2f", runs.min()! * scale, median(runs) * scale, runs.max()! * scale)
            }
            let each = zip(asyncRuns, syncRuns).map { $0 / $1 }
            lines.append(String(format: "  %@ %@ %@ %@: sync %@, async %@ (%d rounds); async ÷ sync %.2f (%.2f–%.2f)",
                                row.benchmark, row.mode, sizeText(row.size), latency ? "p50 µs" : "M msg/s",
                                spread(syncRuns), spread(asyncRuns), asyncRuns.count, median(each), each.min()!, each.max()!))
        }
        return lines.joined(separator: "\n")
    }
}
