import Bus1IntegrationSupport
import Bus1Linux
import Bus1TestSupport
import Glibc
import Testing

/// Crash cleanup: peers doing random work (`chaos`: loans, unicast and multicast
/// sends, held messages, handle releases) are SIGKILLed at random moments, from
/// before their HELLO to the middle of a multicast, while three survivors keep
/// working with them. Afterwards nothing may be leaked and every survivor must
/// still work.
///
/// `BUS1_SOAK=N` multiplies the kills.
@Suite("Crash cleanup", .timeLimit(.minutes(10 * Soak.factor)))
struct KillTests {
    @Test("200 random SIGKILLs leak no memfd, slice, handle, channel or fd, and every survivor still works")
    func randomKills() throws {
        let kills = 200 * Soak.factor
        let survivorCount = 3
        let path = freshSocketPath("kill")
        let daemon = try ChildProcess("bus1d", ["--address", path], mergeStandardError: true)
        #expect(daemon.awaitListening(), "\(daemon.transcript)")
        let baseline = openDescriptorCount(of: daemon.pid)

        var survivors: [ChildProcess] = []
        for index in 0..<survivorCount {
            survivors.append(try testPeer("chaos", address: path, ["index": "\(index)", "survivors": "\(survivorCount)"]))
        }
        for survivor in survivors { #expect(survivor.awaitLine(prefix: "READY", timeoutSeconds: 60) != nil, "\(survivor.transcript)") }

        var rng = SplitMix64(state: 0xB051)
        var victims: [ChildProcess] = []
        var next = survivorCount
        var killedAfterReady = 0
        for _ in 0..<kills {
            while victims.count < 4 {
                victims.append(try testPeer("chaos", address: path, ["index": "\(next)", "survivors": "\(survivorCount)", "seed": "\(next)"]))
                next += 1
            }
            // One kill in four lands anywhere in a victim's life, from exec to HELLO
            // onwards; the others land while it works (up to 20 ms after READY).
            let victim = victims.remove(at: Int(rng.next() % UInt64(victims.count)))
            if rng.next() % 4 != 0 { _ = victim.awaitLine(prefix: "READY", timeoutSeconds: 30) }
            usleep(UInt32(rng.next() % 20_000))  // a random moment to kill at: the thing under test, not a wait
            victim.signal(SIGKILL)
            let status = victim.finish(timeoutSeconds: 30)
            #expect(status == .signaled(SIGKILL), "a victim failed before it was killed: \(victim.transcript)")
            if victim.lines.contains(where: { $0.hasPrefix("READY") }) { killedAfterReady += 1 }
            if let dead = survivors.first(where: { $0.exitStatusIfEnded() != nil }) {
                Issue.record("a survivor ended (\(dead.finish())): \(dead.transcript)")
                break
            }
        }
        for victim in victims {
            victim.signal(SIGKILL)
            _ = victim.finish(timeoutSeconds: 30)
        }
        print("kill test: \(kills) kills, \(killedAfterReady) of them after the victim was working")
        #expect(killedAfterReady >= kills / 2, "too few kills landed while victims were working")

        // The bus as the survivors see it is consistent. The last victims died just
        // now: a survivor reclaims a dead receiver's slices only at its next call
        // (`slice.dead-receiver` until then), which a loaded machine may not schedule
        // for a while. A leak stays; give the survivors 2 s to catch up.
        let inspector = Inspector(build: .debug, address: path)
        var verify = ""
        let verified = try waitUntil(timeoutSeconds: 2, pollMicroseconds: 50_000) {
            let (status, output) = try inspector.run(["verify"])
            verify = output
            return status == .exited(0)
        }
        #expect(verified, "\(verify)")

        // Every survivor still works: each sends 100 checked messages to a fresh
        // consumer and gets every slice back (none stuck with a dead peer), with
        // as many fds open as before the chaos.
        let final = try testPeer("consumer", address: path, ["name": "final", "count": "\(100 * survivorCount)"])
        #expect(final.awaitLine(prefix: "READY", timeoutSeconds: 60) != nil, "\(final.transcript)")
        for survivor in survivors { survivor.signal(SIGUSR1) }
        for survivor in survivors {
            let line = survivor.awaitLine(prefix: "OK final", timeoutSeconds: 60) ?? ""
            #expect(!line.isEmpty, "\(survivor.transcript)")
            let fds = line.split(separator: " ").last { $0.hasPrefix("fds=") }?.dropFirst(4).split(separator: "-")
            #expect(fds?.count == 2 && fds?[0] == fds?[1].dropFirst(), "survivor fds changed: \(survivor.transcript)")
        }
        for survivor in survivors { survivor.signal(SIGUSR1) }
        for survivor in survivors { #expect(survivor.finish(timeoutSeconds: 60) == .exited(0), "\(survivor.transcript)") }
        #expect(final.finish(timeoutSeconds: 120) == .exited(0), "\(final.transcript)")

        // Everyone gone: the coordinator's tables are empty and it holds exactly
        // the descriptors it held before the first peer.
        var peers: [[String: Any]] = [[:]], channels: [[String: Any]] = [[:]], handles: [[String: Any]] = [[:]]
        var descriptors = -1
        _ = try waitUntil(timeoutSeconds: 60, pollMicroseconds: 50_000) {
            peers = try inspector.rows(["peers"], "peers")
            channels = try inspector.rows(["channels"], "channels")
            handles = try inspector.rows(["handles"], "handles")
            descriptors = openDescriptorCount(of: daemon.pid)
            return peers.isEmpty && channels.isEmpty && handles.isEmpty && descriptors == baseline
        }
        #expect(peers.isEmpty && channels.isEmpty && handles.isEmpty, "left in the tables: \(peers) \(channels) \(handles)")
        #expect(descriptors == baseline, "bus1d holds \(descriptors) fds, \(baseline) before any peer")

        daemon.signal(SIGTERM)
        #expect(daemon.finish(timeoutSeconds: 30) == .exited(0), "\(daemon.transcript)")
        // Victims dying is routine (debug level); anything the daemon found worth a
        // notice or a warning is not.
        let remarks = daemon.lines.filter { $0.contains(" notice ") || $0.contains(" warning ") || $0.contains(" error ") }
        #expect(remarks.isEmpty, "\(remarks.joined(separator: "\n"))")
    }
}
