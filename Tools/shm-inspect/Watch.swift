import ArgumentParser
import Bus1Linux
import Foundation

/// A live, refreshing view (top-like): peers, message rates, ring fill, pool use.
/// Each frame re-attaches, so peers that come and go show up.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A live, refreshing view of the bus (top-like; fits tmux).")
    @OptionGroup var bus: BusOptions
    @Option(help: "Seconds between frames, 0.01 ... 3600.") var interval: Double = 1
    @Option(help: "Frames to draw before exiting, at least 1 (default: until interrupted).") var count: Int?

    /// Refuses an interval that is not a number of seconds a person would wait for
    /// (`1e300` once overflowed the conversion to microseconds and crashed) and a
    /// frame count below one.
    func validate() throws {
        guard interval.isFinite, (0.01...3600).contains(interval) else { throw ValidationError("--interval: 0.01 ... 3600 seconds") }
        if let count, count < 1 { throw ValidationError("--count: at least 1 frame") }
    }

    func run() throws {
        var previous: Frame?
        var frame = 0
        while count.map({ frame < $0 }) ?? true {
            let view = try bus.attach()
            let now = monotonicNanoseconds()
            if !bus.json && isatty(1) != 0 { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            print(render(view, since: previous, now: now), terminator: "")
            fflush(nil)
            previous = Frame(at: now, view: view, clock: clockTicket(view.attachment.object(0)) ?? 0)
            frame += 1
            if count.map({ frame < $0 }) ?? true { sleep(seconds: interval) }
        }
    }

    /// Sleeps `seconds` (validated: finite, at most an hour), resuming after signals.
    private func sleep(seconds: Double) {
        let nanoseconds = UInt64(seconds * 1e9)
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    /// What the last frame saw (the clock is live memory, so its value is kept).
    struct Frame {
        let at: UInt64
        let view: BusView
        let clock: UInt64
    }

    private func render(_ view: BusView, since previous: Frame?, now: UInt64) -> String {
        let seconds = previous.map { Double(now - $0.at) / 1e9 } ?? 0
        /// Messages per second through `channel` since the last frame, if it existed then.
        func rate(_ channel: ChannelState) -> String {
            guard seconds > 0, let old = previous?.view.channels.first(where: { $0.row.channel_id == channel.row.channel_id }),
                  channel.subTail >= old.subTail else { return "-" }
            return String(format: "%.0f", Double(channel.subTail - old.subTail) / seconds)
        }
        let clock = clockTicket(view.attachment.object(0)) ?? 0
        let oldClock = previous?.clock ?? clock
        var out = "bus \(view.attachment.address)  peers \(view.tables.peers.count)  channels \(view.channels.count)"
        if view.globalOrder && seconds > 0 && clock >= oldClock {
            out += String(format: "  tickets/s %.0f", Double(clock - oldClock) / seconds)
        }
        out += "  errors \(view.tables.header.protocol_errors)  violations \(view.tables.header.violations)  stalls \(view.tables.header.ordering_stalls)\n\n"

        var peers = Table(["PEER", "PID", "POOL USE", "SLICES", "WAIT", "SENT/S", "COMMAND"])
        for p in view.peerRows() {
            let sent = view.channels.filter { $0.row.sender == p.id }
            let rates = sent.map(rate)
            let total = rates.contains("-") || rates.isEmpty ? (seconds > 0 && sent.isEmpty ? "0" : "-")
                : String(format: "%.0f", rates.compactMap { Double($0) }.reduce(0, +))
            let use = p.poolSize == 0 ? "-" : String(format: "%.1f%%", Double(p.poolBytesInUse) * 100 / Double(p.poolSize))
            peers.add([p.id, p.pid, use, p.slicesInUse, p.wait, total, String(p.command.prefix(40))])
        }
        var channels = Table(["CHANNEL", "FROM", "TO", "FILL", "HELD", "MSG/S", "ERRORS"])
        for c in view.channels {
            channels.add([c.row.channel_id, c.row.sender, c.row.receiver, "\(Self.fillBar(c.waiting, of: c.capacity)) \(c.waiting)/\(c.capacity)", c.heldByReceiver, rate(c),
                          c.findings.isEmpty ? "-" : "\(c.findings.count)"])
        }
        return out + peers.render() + "\n" + channels.render() + "\n"
    }

    /// A ring's fill as ten cells, `[####......]`. `waiting` comes from indices a
    /// peer can overwrite: a count past the capacity draws a full bar (the number
    /// beside it shows the corrupt value), never a longer one. Sizing the bar from
    /// the raw count once asked for 42,949,673,008 bytes at `sub_tail` = 2^40.
    static func fillBar(_ waiting: UInt64, of capacity: UInt64) -> String {
        let cells = capacity == 0 ? 0 : Int(min(waiting, capacity) * 10 / capacity)  // capacity < 2^32: no overflow
        return "[" + String(repeating: "#", count: cells) + String(repeating: ".", count: 10 - cells) + "]"
    }
}
