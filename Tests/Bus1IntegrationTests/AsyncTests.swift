import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Glibc
import Logging
import MetricsTestKit
import Synchronization
import Testing

/// The async API and the ways into a peer from outside its thread: the readiness
/// descriptor in an event loop, the interrupter, cancellation. Multi-process
/// behaviour runs in real processes (the test peer's async roles, on their main
/// actor); the rest uses peers of this process on an embedded coordinator.
/// The readiness descriptor has two implementations (`DoorbellReadiness`): the
/// tests that wait run over both, the io_uring one where the kernel has its futex
/// wait (Linux 6.7; elsewhere skipped with the kernel's reason), the helper
/// thread's (`parkBackend` `.futex`) everywhere.
@Suite("Async, readiness and interruption", .timeLimit(.minutes(10)))
struct AsyncTests {
    @Test("A slow async consumer throttles an async producer (io_uring readiness)", .enabled(unless: IOURing.futexUnsupportedReason()))
    func slowConsumerThrottlesProducerIOURing() throws { try slowConsumerThrottlesProducer(.ioUring) }

    @Test("A slow async consumer throttles an async producer (helper-thread readiness)")
    func slowConsumerThrottlesProducerThread() throws { try slowConsumerThrottlesProducer(.futex) }

    /// An async producer and a deliberately slow async consumer in two processes:
    /// in order, none dropped, the producer throttled, memory flat.
    func slowConsumerThrottlesProducer(_ backend: ParkBackend) throws {
        let bus = try BusFixture("async-flow")
        let count = 3000
        let consumer = try ChildProcess("bus1-test-peer", ["asyncconsumer", "address=\(bus.address)", "name=slow",
                                                           "count=\(count)", "delay-us=100", "park=\(backend.rawValue)"])
        #expect(consumer.awaitLine(prefix: "READY") != nil, "\(consumer.transcript)")
        let producer = try ChildProcess("bus1-test-peer", ["asyncproducer", "address=\(bus.address)", "name=slow",
                                                           "count=\(count)", "size=1024", "park=\(backend.rawValue)"])
        let produced = producer.awaitLine(prefix: "OK"), consumed = consumer.awaitLine(prefix: "OK")
        #expect(producer.finish() == .exited(0) && consumer.finish() == .exited(0), "\(producer.transcript)\n\(consumer.transcript)")
        // In order and complete: the consumer fails on the first gap or swap.
        #expect(numberField(consumed, "received") == UInt64(count), "\(consumer.transcript)")
        #expect(numberField(produced, "sent") == UInt64(count) && numberField(produced, "slices-in-use") == 0, "\(producer.transcript)")
        // Throttled: the consumer's ring (256 entries) filled and the producer waited for credit.
        let waits = numberField(produced, "credit-waits") ?? 0
        #expect(waits > 100, "the producer never waited for the slow consumer: \(produced ?? "nothing")")
        // Flat: nothing buffered on either side beyond the rings and the pools (heap
        // and stacks, from a tenth of the way to the end). Not under ThreadSanitizer
        // (Scripts/tsan.sh sets BUS1_SANITIZER): its shadow memory grows with every
        // address touched, so there the numbers are printed, not judged.
        for (line, who) in [(produced, "producer"), (consumed, "consumer")] {
            let start = numberField(line, "rss-start") ?? 0, end = numberField(line, "rss-end") ?? .max
            if getenv("BUS1_SANITIZER") != nil {
                print("\(who) anonymous RSS \(start) → \(end) KiB (sanitized build: not judged)")
            } else {
                #expect(start > 0 && end < start + 2048, "\(who) anonymous RSS grew from \(start) to \(end) KiB")
            }
        }
    }

    @Test("A cancelled receive returns promptly with CancellationError, and the next receive gets what came after (io_uring readiness)",
          .enabled(unless: IOURing.futexUnsupportedReason()))
    func cancelledReceiveIOURing() throws { try cancelledReceive(.ioUring) }

    @Test("A cancelled receive returns promptly with CancellationError, and the next receive gets what came after (helper-thread readiness)")
    func cancelledReceiveThread() throws { try cancelledReceive(.futex) }

    func cancelledReceive(_ backend: ParkBackend) throws {
        let bus = try BusFixture("async-cancel")
        let child = try ChildProcess("bus1-test-peer", ["asynccancel", "address=\(bus.address)", "trials=7", "park=\(backend.rawValue)"])
        let line = child.awaitLine(prefix: "OK")
        #expect(child.finish() == .exited(0), "\(child.transcript)")
        #expect(field(line, "errors") == "0", "a cancelled receive ended otherwise: \(line ?? child.transcript)")
        #expect(field(line, "delivered") == "after", "the message after the cancellations was not delivered: \(line ?? "")")
        // Promptly: from cancel() to the task's end, the median under 10 ms (the
        // cancellation handler resumes the task at once; what remains is scheduling
        // on a loaded 2-core runner, hence the median and a far bound for the rest).
        let samples = field(line, "cancel-us").map { $0.split(separator: ",").compactMap { Int($0) } } ?? []
        try #require(samples.count == 7, "\(line ?? child.transcript)")
        let median = samples.sorted()[samples.count / 2]
        #expect(median < 10_000, "median \(median) µs from cancel to return: \(samples)")
        #expect(samples.allSatisfy { $0 < 1_000_000 }, "a cancellation took a second or more: \(samples)")
    }

    @Test("Async receive, loan and send in one process: forEachMessage in order, credit awaited, a timeout is timedOut")
    func asyncRoundTrip() async throws {
        let bus = try BusFixture("async-inproc")
        var options = PeerOptions(address: bus.address)
        options.ringCapacity = 4
        let address = bus.address
        // The consumer: its own task, its own peer; hands each message to a closure.
        let consumer = Task { () async throws -> [UInt64] in
            var options = PeerOptions(address: address)
            options.ringCapacity = 4
            let peer = try Peer.connect(options: options)
            try peer.publish(try peer.createNode(), as: "inproc")
            var seen: [UInt64] = []
            struct Done: Error {}
            do {
                try await peer.forEachMessage { message in
                    seen.append(message.payload.bytes.unsafeLoad(as: UInt64.self))
                    if seen.count == 64 { throw Done() }
                }
            } catch is Done {}
            await #expect(throws: Bus1Error.timedOut) { _ = try await peer.receive(timeout: .milliseconds(50)) }
            return seen
        }
        let producer = try Peer.connect(options: options)
        let target = try await producer.lookup("inproc", timeout: .seconds(20))
        for i in 0..<64 {
            var loan = try await producer.loan(8, for: target)
            loan.storeBytes(of: UInt64(i), as: UInt64.self)
            try await producer.send(loan, to: target, timeout: .seconds(30))
        }
        #expect(try await consumer.value == (0..<64).map { UInt64($0) })
        #expect(producer.currentStatistics.creditWaits > 0, "64 messages through a ring of 4 never waited for credit")
    }

    @Test("An async loan awaits pool space and resumes when a receiver releases a slice")
    func asyncLoanAwaitsPoolSpace() async throws {
        let bus = try BusFixture("async-loan")
        let receiver = try Peer.connect(options: PeerOptions(address: bus.address))  // its own region: it moves to a thread
        try receiver.publish(try receiver.createNode(), as: "holder")
        var options = PeerOptions(address: bus.address)
        options.poolSize = 1  // the smallest pool: four 16 KiB slices
        let producer = try Peer.connect(options: options)
        let target = try producer.lookup("holder")
        for _ in 0..<4 { try producer.send(try producer.loan(16 << 10, for: target, wait: nil), to: target, wait: nil) }  // the sync calls
        let sliceSize = 16 << 10
        #expect(throws: Bus1Error.wouldBlock(.poolExhausted(requested: sliceSize))) { _ = try producer.loan(sliceSize) }
        // The receiver gives one slice back a little later, from another thread, and
        // stays connected until the loan is in hand (a receiver that left would give
        // all four back by closing the channel).
        let owner = Mutex<Peer?>(receiver)
        let loaned = Mutex(false)
        let releaser = startThread {
            guard let peer = owner.withLock({ $0.take() }) else { return }
            usleep(50_000)
            _ = try? peer.receive(timeout: .seconds(10))  // received and dropped: its slice goes back
            _ = waitUntil(timeoutSeconds: 60) { loaned.withLock { $0 } }
            withExtendedLifetime(peer) {}
        }
        let loan = try await producer.loan(sliceSize, timeout: .seconds(30))
        #expect(loan.capacity >= sliceSize)
        #expect(producer.currentStatistics.slicesInUse == 4, "three still in the receiver's ring, and the new loan")
        loaned.withLock { $0 = true }
        _ = consume loan
        pthread_join(releaser, nil)
        #expect(producer.currentStatistics.loanWaits == 1)
    }

    @Test("The readiness descriptor and a pipe in one epoll set: each wakes the loop for its own event (io_uring)",
          .enabled(unless: IOURing.futexUnsupportedReason()))
    func readinessInEpollIOURing() throws { try readinessInEpoll(.ioUring) }

    @Test("The readiness descriptor and a pipe in one epoll set: each wakes the loop for its own event (helper thread)")
    func readinessInEpollThread() throws { try readinessInEpoll(.futex) }

    func readinessInEpoll(_ backend: ParkBackend) throws {
        let bus = try BusFixture("readiness")
        var options = PeerOptions(address: bus.address)
        options.parkBackend = backend
        let receiver = try Peer.connect(options: options), sender = try bus.connect()
        #expect(try receiver.readinessMechanism == (backend == .ioUring ? "io_uring FUTEX_WAIT" : "futex(2) helper thread"))
        try receiver.publish(try receiver.createNode(), as: "ready")
        let target = try sender.lookup("ready")
        let ends = try ChildDescriptors.pipe()  // close-on-exec: no other test's child may hold an end
        let pipeEnds = [ends.read, ends.write]
        defer { close(pipeEnds[0]); close(pipeEnds[1]) }
        let epoll = try Epoll()
        try epoll.add(try receiver.readinessDescriptor(), for: .readable, data: 1)
        try epoll.add(pipeEnds[0], for: .readable, data: 2)
        var events: [Epoll.Event] = []
        func ready(within milliseconds: Int) throws -> [UInt64] {
            try epoll.wait(timeoutMilliseconds: milliseconds, into: &events)
            return events.map(\.data).sorted()
        }

        #expect(try !receiver.armReadiness(), "nothing is waiting: the descriptor arms")
        #expect(try ready(within: 50) == [], "quiet while nothing happens")
        #expect(write(pipeEnds[1], "x", 1) == 1)
        #expect(try ready(within: 5000) == [2], "the pipe wakes the loop, the peer does not")
        var byte: UInt8 = 0
        #expect(read(pipeEnds[0], &byte, 1) == 1)

        try sender.send(copying: Array("ping".utf8), to: target)
        #expect(try ready(within: 5000) == [1], "the message wakes the loop, the pipe does not")
        #expect(try receiver.tryReceive()?.copyPayload() == Array("ping".utf8))
        #expect(try receiver.tryReceive() == nil)
        #expect(try !receiver.armReadiness())
        #expect(try ready(within: 50) == [], "armed again after the drain, and quiet")

        // A message that lands before the arm: the arm says so instead of sleeping.
        try sender.send(copying: Array("early".utf8), to: target)
        #expect(try receiver.armReadiness(), "a message is ready: nothing to wait for")
        #expect(try receiver.tryReceive()?.copyPayload() == Array("early".utf8))
    }

    @Test("The readiness descriptor reports a dead coordinator: the event loop gets coordinatorGone (io_uring)",
          .enabled(unless: IOURing.futexUnsupportedReason()))
    func readinessReportsDeadCoordinatorIOURing() throws { try readinessReportsDeadCoordinator(.ioUring) }

    @Test("The readiness descriptor reports a dead coordinator: the event loop gets coordinatorGone (helper thread)")
    func readinessReportsDeadCoordinatorThread() throws { try readinessReportsDeadCoordinator(.futex) }

    func readinessReportsDeadCoordinator(_ backend: ParkBackend) throws {
        let path = freshSocketPath("readiness-gone")
        let daemon = try ChildProcess("bus1d", ["--config", "/dev/null", "--address", path], mergeStandardError: true)
        try #require(waitForSocket(path), "\(daemon.transcript)")
        var options = PeerOptions(address: path)
        options.parkBackend = backend
        let peer = try Peer.connect(options: options)
        let epoll = try Epoll()
        try epoll.add(try peer.readinessDescriptor(), for: .readable, data: 1)
        #expect(try !peer.armReadiness())
        daemon.signal(SIGKILL)
        _ = daemon.finish()
        var events: [Epoll.Event] = []
        try epoll.wait(timeoutMilliseconds: 10_000, into: &events)
        #expect(events.map(\.data) == [1], "the hang-up woke the loop")
        // The documented loop (drain, arm, wait) learns of it within a turn or two,
        // instead of spinning on a descriptor that stays readable.
        var outcome: Bus1Error?
        for _ in 0..<3 where outcome == nil {
            do throws(Bus1Error) {
                while try peer.tryReceive() != nil {}
                if try !peer.armReadiness() { _ = try? epoll.wait(timeoutMilliseconds: 10_000, into: &events) }
            } catch {
                outcome = error
            }
        }
        #expect(outcome == .coordinatorGone)
    }

    @Test("An interrupter wakes a receive parked on another thread; the next receive still gets the message")
    func interruptParkedReceive() throws {
        let bus = try BusFixture("interrupt")
        let address = bus.address
        /// What the receiving thread shares: its interrupter, its thread id, what its receives ended with.
        struct Shared {
            var interrupter: PeerInterrupter?
            var tid: pid_t = 0
            var firstError: Bus1Error?
            var second: [UInt8]?
        }
        let shared = Mutex(Shared())
        // The peer lives on its own thread from connect to the end; only the
        // (Sendable) interrupter leaves it.
        let thread = startThread {
            do throws(Bus1Error) {
                var options = PeerOptions(address: address)
                options.waitMode = .park
                let peer = try Peer.connect(options: options)
                try peer.publish(try peer.createNode(), as: "interrupt")
                let interrupter = peer.interrupter
                shared.withLock { $0.interrupter = interrupter; $0.tid = currentThreadID() }
                do throws(Bus1Error) { _ = try peer.receive(timeout: .seconds(60)) } catch { shared.withLock { $0.firstError = error } }
                let second = try peer.receive(timeout: .seconds(30)).copyPayload()
                let again = try peer.tryReceive() == nil ? second : []
                shared.withLock { $0.second = again }
            } catch {
                shared.withLock { $0.firstError = $0.firstError ?? error }
            }
        }
        #expect(waitUntil(timeoutSeconds: 30) {
            let tid = shared.withLock { $0.tid }
            return tid != 0 && threadIsSleeping(tid)
        }, "the receiving thread never parked")
        shared.withLock { $0.interrupter }?.interrupt()
        #expect(waitUntil(timeoutSeconds: 30) { shared.withLock { $0.firstError } != nil })
        #expect(shared.withLock { $0.firstError } == .interrupted)
        let sender = try bus.connect()
        try sender.send(copying: Array("still here".utf8), to: try sender.lookup("interrupt"))
        pthread_join(thread, nil)
        #expect(shared.withLock { $0.second } == Array("still here".utf8), "the message after the interrupt, once")
    }
}

/// The example service, as users run it: messages and stdin on one poll(2) loop.
@Suite("bus1-poll-service", .timeLimit(.minutes(10)))
struct PollServiceTests {
    @Test("bus1-poll-service receives messages on its event loop and answers stdin")
    func pollService() throws { try PollServiceChecks.messagesAndInput(.debug) }

    @Test("bus1-poll-service refuses a missing bus and an empty name with a clear message")
    func pollServiceBadInput() throws {
        let missing = freshSocketPath("poll-missing")
        let noBus = try ChildProcess("bus1-poll-service", ["--name", "echo", "--address", missing], mergeStandardError: true)
        #expect(noBus.finish() == .exited(1), "\(noBus.transcript)")
        #expect(noBus.lines.contains { $0.contains("no bus at \(missing)") }, "\(noBus.transcript)")
        let bus = try BusFixture("poll-bad-name")
        let badName = try ChildProcess("bus1-poll-service", ["--name", "", "--address", bus.address], mergeStandardError: true)
        #expect(badName.finish() == .exited(1), "\(badName.transcript)")
        #expect(badName.lines.contains { $0.contains("invalid name") }, "\(badName.transcript)")
    }
}

/// The example service's check, for both builds (the release one in ``ReleaseToolTests``).
enum PollServiceChecks {
    static func messagesAndInput(_ build: ToolBuild) throws {
        let bus = try BusFixture("poll-service")
        let ends = try ChildDescriptors.pipe()  // close-on-exec: only the service gets the read end, as its stdin
        var input = [ends.read, ends.write]
        let service = try ChildProcess("bus1-poll-service", ["--name", "echo", "--address", bus.address], build: build,
                                       descriptors: [0: input[0]])
        close(input[0])
        defer { if input[1] >= 0 { close(input[1]) } }
        #expect(service.awaitLine(prefix: "READY") != nil, "\(service.transcript)")
        let client = try bus.connect()
        let target = try client.lookup("echo")
        for i in 0..<100 { try client.send(copying: Array("hello \(i)".utf8), to: target, wait: .park) }
        #expect(service.awaitLine(containing: "text=hello 99"), "\(service.transcript)")
        #expect(write(input[1], "stats\n", 6) == 6)
        let stats = service.awaitLine(prefix: "STATS")
        #expect(numberField(stats, "received") == 100, "\(service.transcript)")
        close(input[1])  // end of file: the service says goodbye
        input[1] = -1
        #expect(service.awaitLine(prefix: "BYE") != nil, "\(service.transcript)")
        #expect(service.finish() == .exited(0), "\(service.transcript)")
        let received = service.lines.filter { $0.hasPrefix("MESSAGE") }
        #expect(received.count == 100 && received.last?.hasSuffix("text=hello 99") == true, "\(service.transcript)")
    }
}

/// What a service sees of a peer from outside: its logs and its metrics.
@Suite("Logging and metrics", .timeLimit(.minutes(10)))
struct ObservabilityTests {
    @Test("The peer's counters reach a swift-metrics backend, recorded off the message path")
    func metricsReachTheBackend() throws {
        let bus = try BusFixture("metrics")
        let metrics = TestMetrics()
        var options = PeerOptions(address: bus.address)
        options.metrics = PeerMetricsOptions(dimensions: [("service", "test")], factory: metrics)
        let receiver = try bus.connect(), sender = try Peer.connect(options: options)
        try receiver.publish(try receiver.createNode(), as: "metrics")
        let target = try sender.lookup("metrics")
        for i in 0..<10 { try sender.send(copying: [UInt8(i)], to: target) }
        let dimensions = [("peer", "\(sender.id)"), ("service", "test")]
        #expect(try metrics.expectCounter("bus1_messages_sent", dimensions).totalValue == 0, "nothing is recorded per message")
        sender.recordMetrics()
        #expect(try metrics.expectCounter("bus1_messages_sent", dimensions).totalValue == 10)
        #expect(try metrics.expectGauge("bus1_slices_in_use", dimensions).lastValue == 10, "ten messages not yet received")
        while let message = try receiver.tryReceive() { _ = message.payload.count }
        try sender.send(copying: [42], to: target)
        sender.disconnect()  // records once more
        #expect(try metrics.expectCounter("bus1_messages_sent", dimensions).totalValue == 11)
        #expect(try metrics.expectGauge("bus1_slices_in_use", dimensions).lastValue == 1,
                "the ten received came back (current when read); the eleventh is still out")
    }
}

extension ObservabilityTests {
    /// What a ``CapturingLogHandler`` keeps: level and text of every record.
    final class Records: Sendable {
        let list = Mutex<[(Logger.Level, String)]>([])
        func contains(_ level: Logger.Level, _ text: String) -> Bool {
            list.withLock { $0.contains { $0.0 == level && $0.1.contains(text) } }
        }
    }

    /// Keeps every record logged through it.
    struct CapturingLogHandler: LogHandler {
        let records: Records
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            records.list.withLock { $0.append((event.level, "\(event.message) \(event.metadata ?? [:])")) }
        }
    }

    @Test("The peer logs through the caller's Logger, and nothing by default")
    func logsThroughTheCallersLogger() throws {
        let bus = try BusFixture("logging")
        let records = Records()
        var options = PeerOptions(address: bus.address)
        options.logger = Logger(label: "test") { _ in CapturingLogHandler(records: records) }
        let receiver = try Peer.connect(options: options)
        try receiver.publish(try receiver.createNode(), as: "logging")
        let sender = try bus.connect()
        try sender.send(copying: Array("hi".utf8), to: try sender.lookup("logging"))
        _ = try receiver.receive(timeout: .seconds(10))
        sender.disconnect()  // the receiver's inbound channel closes: logged at info
        #expect(waitUntil(timeoutSeconds: 30) {
            _ = try? receiver.tryReceive()
            return records.contains(.info, "channel closed")
        }, "\(records.list.withLock { $0.map(\.1) })")
        #expect(records.contains(.debug, "connected"))
        // The default logger discards: the sender (default options) logged nowhere we can see,
        // and the default handler is the no-op one.
        #expect(PeerOptions().logger.handler is SwiftLogNoOpLogHandler)
    }
}

/// Timeouts at the edges of `Duration`.
@Suite("Timeouts", .timeLimit(.minutes(10)))
struct TimeoutTests {
    @Test("A timeout too long for the clock waits without end instead of wrapping to one already passed; zero and negative ones have passed")
    func extremeTimeouts() throws {
        let bus = try BusFixture("timeouts")
        let receiver = try bus.connect(), sender = try bus.connect()
        try receiver.publish(try receiver.createNode(), as: "timeouts")
        let target = try sender.lookup("timeouts")
        #expect(throws: Bus1Error.timedOut) { _ = try receiver.receive(timeout: .zero) }
        #expect(throws: Bus1Error.timedOut) { _ = try receiver.receive(timeout: .seconds(-5)) }
        try sender.send(copying: Array("late".utf8), to: target)
        #expect(try receiver.receive(timeout: .seconds(Int64.max)).copyPayload() == Array("late".utf8))
        // Waiting for real with such a timeout: the message arrives from another thread.
        let address = bus.address
        let thread = startThread {
            usleep(50_000)
            guard let other = try? Peer.connect(options: PeerOptions(address: address)),
                  let handle = try? other.lookup("timeouts") else { return }
            try? other.send(copying: Array("later".utf8), to: handle, wait: .park)
            _ = waitUntil(timeoutSeconds: 30) { other.currentStatistics.slicesInUse == 0 }
        }
        #expect(try receiver.receive(mode: .park, timeout: .seconds(Int64.max)).copyPayload() == Array("later".utf8))
        pthread_join(thread, nil)
    }
}
