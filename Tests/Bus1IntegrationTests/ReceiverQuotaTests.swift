import Bus1
import Bus1Coordinator
import Bus1IntegrationSupport
import Glibc
import Testing

/// What another uid can push into a service through attachments is charged to
/// that uid: fds until the service takes (or drops) the message, handles within a
/// fair share of the service's table. The attacker is refused, typed; the service
/// stays connected and its fd count bounded.
@Suite("Receiver quotas", .timeLimit(.minutes(10)))
struct ReceiverQuotaTests {
    @Test("Another uid's attachment flood (fds never followed by a message) and a 5,000-node attach-and-leave: the service stays connected, its fds bounded, the attacker refused",
          .enabled(unless: OtherUID.unavailableReason))
    func attachmentFloods() throws {
        let other = try OtherUID.make(copying: ["bus1-test-peer"])
        let bus = try BusFixture.admittingOtherUID("receiver-quota") {
            $0.maximumQueuedDescriptorsPerUID = 64
            $0.coordinatorRingCapacity = 1024
        }
        let victim = try bus.peer("victim", ["name": "service"])
        let ready = try #require(victim.awaitLine(prefix: "READY", timeoutSeconds: 30), "\(victim.transcript)")
        let baseline = try #require(numberField(ready, "fds"))

        let fdFlood = try other.spawn("bus1-test-peer", ["fdflood", "address=\(bus.address)", "name=service", "count=500"])
        let fdDone = try #require(fdFlood.awaitLine(prefix: "DONE", timeoutSeconds: 60), "\(fdFlood.transcript)")
        #expect(numberField(fdDone, "attached") == 16, "64 fds in flight are 16 attachments of 4: \(fdDone)")
        #expect(numberField(fdDone, "refused") == 484, "\(fdDone)")

        let nodeFlood = try other.spawn("bus1-test-peer", ["nodeflood", "address=\(bus.address)", "name=service", "nodes=5000"])
        #expect(nodeFlood.finish(timeoutSeconds: 120) == .exited(0), "\(nodeFlood.transcript)")
        let nodeDone = try #require(nodeFlood.lines.first { $0.hasPrefix("DONE") })
        let attachedNodes = try #require(numberField(nodeDone, "attached"))
        #expect(attachedNodes > 0 && attachedNodes <= 512, "at most half the service's 1024-entry ring: \(nodeDone)")
        #expect((numberField(nodeDone, "refused") ?? 0) > 0, "\(nodeDone)")

        // The service is still connected and served: a message from this uid reaches it.
        let client = try bus.connect()
        var stop = try client.loan(4)
        stop.write(Array("stop".utf8))
        try client.send(stop, to: try client.lookup("service"))
        #expect(victim.finish(timeoutSeconds: 60) == .exited(0), "\(victim.transcript)")
        let done = try #require(victim.lines.first { $0.hasPrefix("DONE") })
        let fdsMax = try #require(numberField(done, "fdsMax"))
        #expect(fdsMax <= baseline + 64 + 8, "the service held \(fdsMax) fds (from \(baseline)); the quota is 64 in flight")
        #expect(numberField(done, "notes") ?? 0 >= attachedNodes, "every attached node's destruction reached it: \(done)")
        print("receiver quotas: \(fdDone); \(nodeDone); service \(done), \(baseline) fds at start")
        fdFlood.signal(SIGKILL)
        _ = fdFlood.finish()
    }
}
