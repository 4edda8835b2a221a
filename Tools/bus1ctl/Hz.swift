import ArgumentParser
import Bus1
import Glibc
import Synchronization

/// `bus1ctl hz TOPIC`: a topic's message rate and bandwidth, once per window.
struct Hz: ParsableCommand, BusCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prints a topic's message rate and bandwidth every window; hosts the topic if nobody does.",
        discussion: """
            Each line: "rate: R msg/s  bandwidth: B  messages: N  missed: M", where R and B are for the last \
            window, N is every message seen so far and M the messages this subscriber missed so far (gaps in \
            the host's sequence numbers).
            """)
    @OptionGroup var busOption: BusOptions
    @ParentCommand var root: BusCtl
    @OptionGroup var wait: TimeoutOption
    @Argument(help: "The topic's name.") var topic: String
    @Option(help: ArgumentHelp("Seconds per line (0.01 ... 3600).", valueName: "seconds")) var window: Double = 1
    @Option(help: "Exit after this many lines (default: run until killed).") var count: Int?

    func validate() throws {
        guard window.isFinite, (0.01...3600).contains(window) else { throw ValidationError("--window: 0.01 ... 3600 seconds") }
        if let count, count < 1 { throw ValidationError("--count: at least 1 line") }
    }

    func run() throws {
        let meter = Meter()
        let (window, count) = (self.window, self.count)
        try TopicFeed.run(topic, bus: bus, wait: wait, started: { feed in
            let interrupter = feed.peer.interrupter
            startThread { meter.report(every: window, lines: count, then: interrupter) }
        }) { delivery, payload in
            meter.count(bytes: payload.count, missed: delivery.missed)
            return true
        }
    }
}

/// What the receiving thread counts and the clock thread reports.
final class Meter: Sendable {
    private struct Counts {
        var windowMessages: UInt64 = 0
        var windowBytes: UInt64 = 0
        var messages: UInt64 = 0
        var missed: UInt64 = 0
    }
    private let counts = Mutex(Counts())

    func count(bytes: Int, missed: UInt64) {
        counts.withLock {
            $0.windowMessages += 1
            $0.windowBytes += UInt64(bytes)
            $0.messages += 1
            $0.missed = missed
        }
    }

    /// Prints a line every `window` seconds, `lines` times (nil: forever), then
    /// interrupts the receiving peer's wait so the command ends.
    func report(every window: Double, lines: Int?, then interrupter: PeerInterrupter) {
        var printed = 0
        var start = now()
        while lines.map({ printed < $0 }) ?? true {
            sleep(until: start + window)
            let end = now()
            let taken = counts.withLock { counts in
                defer { (counts.windowMessages, counts.windowBytes) = (0, 0) }
                return counts
            }
            let seconds = max(end - start, 1e-9)
            start = end
            writeLine("rate: \(oneDecimal(Double(taken.windowMessages) / seconds)) msg/s  "
                      + "bandwidth: \(bandwidth(Double(taken.windowBytes) / seconds))  "
                      + "messages: \(taken.messages)  missed: \(taken.missed)")
            printed += 1
        }
        interrupter.interrupt()
    }

    /// CLOCK_MONOTONIC in seconds.
    private func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Sleeps until the monotonic clock reads `time` (the window's end: this is the
    /// command's clock, not a synchronisation).
    private func sleep(until time: Double) {
        var remaining = time - now()
        while remaining > 0 {
            var request = timespec(tv_sec: Int(remaining), tv_nsec: Int((remaining - remaining.rounded(.down)) * 1e9))
            nanosleep(&request, nil)
            remaining = time - now()
        }
    }
}
