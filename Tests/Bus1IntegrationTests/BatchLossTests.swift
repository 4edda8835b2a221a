import Bus1
import Bus1IntegrationSupport
import Bus1TestSupport
import Glibc
import Testing

@Suite("Batches that fail midway", .timeLimit(.minutes(10)))
struct BatchLossTests {
    /// `sendBatch` takes its slices one by one; when the pool runs short it waits
    /// holding those it has. If the wait fails (here: `bus1d` is killed), every
    /// slice it took goes back to the pool.
    @Test("A batch waiting for pool space that loses its coordinator gives back the slices it had taken")
    func batchGivesSlicesBack() throws {
        let path = freshSocketPath("batch-gone")
        let daemon = try ChildProcess("bus1d", ["--config", "/dev/null", "--address", path], mergeStandardError: true)
        try #require(waitForSocket(path), "\(daemon.transcript)")
        var options = PeerOptions(address: path)
        options.waitMode = .park
        let receiver = try Peer.connect(options: options)
        try receiver.publish(try receiver.createNode(), as: "sink")
        options.poolSize = 1  // the smallest pool: 64 KiB of payload, four 16 KiB slices
        let sender = try Peer.connect(options: options)
        let sink = try sender.lookup("sink")
        try sender.sendBatch(to: sink, count: 2, sliceSize: 16 << 10) { _, _ in 8 }  // never received: held
        #expect(sender.currentStatistics.slicesInUse == 2)

        // bus1d dies once this thread is asleep in the batch's wait for pool space
        // (nothing else in sendBatch blocks), not before: a bus already dead when the
        // batch starts is refused before any slice is taken.
        let pid = daemon.pid, sending = currentThreadID()
        let killer = startThread {
            _ = waitUntil(timeoutSeconds: 60) { threadIsSleeping(sending) }
            kill(pid, SIGKILL)
        }
        // Three slices do not fit: it takes two and waits for the third, until the bus dies.
        #expect(throws: Bus1Error.coordinatorGone) {
            try sender.sendBatch(to: sink, count: 3, sliceSize: 16 << 10, wait: .park) { _, _ in 8 }
        }
        pthread_join(killer, nil)
        #expect(sender.currentStatistics.slicesInUse == 2, "the batch's own slices came back; the first batch's are still out")
        _ = daemon.finish()
        withExtendedLifetime(receiver) {}
    }
}
