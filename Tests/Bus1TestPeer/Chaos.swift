import Bus1
import Bus1Linux
import Bus1TestSupport
import Glibc

/// The `chaos` role: `index= survivors= [seed=] [final=]`. Random work on a bus
/// where peers die: publishes `chaos.<index>`, talks to the survivors
/// `chaos.0 ..< survivors` (and to every peer that says hello), sends unicast and
/// multicast slices of random sizes, holds received messages for a while,
/// passes handles and fds, releases handles. Errors a dying peer causes are
/// expected; anything else fails. On SIGUSR1 (a survivor's cue) it stops, sends
/// `final` honest messages to the consumer `final`, waits until every slice came
/// back, and prints its fd counts: "OK final sent=N fds=START->END"; on a second
/// SIGUSR1 it exits.
///
/// Driven by KillTests: three survivors, and victims it SIGKILLs at random moments.
@MainActor
func runChaos() {
    var pendingSignals = sigset_t()
    sigemptyset(&pendingSignals)
    sigaddset(&pendingSignals, SIGUSR1)
    sigprocmask(SIG_BLOCK, &pendingSignals, nil)
    /// Takes a pending SIGUSR1, waiting for it up to `microseconds` (it stays
    /// blocked: no handler races).
    func takeCue(waitingUpTo microseconds: Int = 0) -> Bool {
        var timeout = timespec(tv_sec: 0, tv_nsec: microseconds * 1000)
        return sigtimedwait(&pendingSignals, nil, &timeout) == SIGUSR1
    }
    /// Whether `error` is what a peer dying or a full ring or pool causes.
    func expected(_ error: Bus1Error) -> Bool {
        switch error {
        case .wouldBlock, .channelClosed, .unknownHandle, .nodeDestroyed, .timedOut: true
        case .refused(let refusal): refusal == .nameUnknown || refusal == .handleUnknown || refusal == .quotaExceeded(.messages)
        default: false
        }
    }
    final class Held {
        let message: Message
        init(_ message: consuming Message) { self.message = message }
    }
    let peer = connect()
    let me = intSetting("index"), survivors = intSetting("survivors")
    var rng = JitterSource(seed: UInt64(intSetting("seed", me + 1)))
    let myNode = publishNode(peer, as: "chaos.\(me)")
    let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)  // passed in attachments
    let startFDs = openDescriptorCount()
    var targets: [Handle] = []  // distinct: a lookup of a known node returns the same handle
    func add(_ handle: Handle) { if !targets.contains(handle) { targets.append(handle) } }
    for k in 0..<survivors where k != me {
        do { targets.append(try peer.lookup("chaos.\(k)", timeout: .seconds(30))) } catch { fail("lookup chaos.\(k): \(error)") }
    }
    for target in targets {
        let hello = Array("hello \(me)".utf8)
        do {
            var loan = try peer.loan(hello.count, for: target)
            loan.write(hello)
            try peer.send(loan, to: target)
        } catch {
            if !expected(error) { fail("hello: \(error)") }
        }
    }
    say("READY peer=\(peer.id)")
    var held: [Held] = []
    while !takeCue() {
        do {
            for _ in 0..<4 {
                guard let message = try peer.tryReceive() else { break }
                let text = message.copyPayload()
                if text.count > 6, text.starts(with: Array("hello ".utf8)),
                   let k = Int(String(decoding: text.dropFirst(6), as: UTF8.self)), k != me {
                    do { add(try peer.lookup("chaos.\(k)")) } catch where expected(error) {}
                }
                if message.kind == .nodeDestroyed { targets.removeAll { $0 == message.node } }
                for handle in message.handles where handle.isValid && handle != myNode { add(handle) }  // a handle that travelled
                if held.count < 32 && rng.next() % 2 == 0 { held.append(Held(message)) }
            }
            _ = peer.takeEvents()
            if !held.isEmpty && rng.next() % 5 == 0 { held.remove(at: Int(rng.next() % UInt64(held.count))) }
            if !targets.isEmpty {
                let fanout = min(targets.count, 1 + Int(rng.next() % 3))
                var destinations: [Handle] = []
                while destinations.count < fanout {
                    let pick = targets[Int(rng.next() % UInt64(targets.count))]
                    if !destinations.contains(pick) { destinations.append(pick) }
                }
                let size = rng.next() % 8 == 0 ? 65536 : 1 + Int(rng.next() % 4096)
                do {
                    var loan = try peer.loan(size, for: destinations)
                    loan.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0x78) }  // never a stale "hello"
                    if rng.next() % 8 == 0 {
                        // Mid handle transfer: a handle of ours and perhaps an fd, through the coordinator.
                        let passed = [targets[Int(rng.next() % UInt64(targets.count))], myNode]
                        try peer.send(loan, to: destinations[0], attaching: passed, fileDescriptors: rng.next() % 2 == 0 ? [devNull] : [])
                    } else {
                        try peer.send(loan, to: destinations)
                    }
                } catch .channelClosed {
                    targets.removeAll { destinations.contains($0) }
                } catch .nodeDestroyed(let handle) {
                    targets.removeAll { $0 == handle }
                }
                if !targets.isEmpty, rng.next() % 100 == 0 {
                    try peer.release(targets.remove(at: Int(rng.next() % UInt64(targets.count))))
                }
            }
            if rng.next() % 50 == 0, survivors > 1 {
                let k = Int(rng.next() % UInt64(survivors))
                if k != me { add(try peer.lookup("chaos.\(k)")) }
            }
            _ = try peer.reclaimCompleted()
            if rng.next() % 16 == 0 { usleep(UInt32(rng.next() % 500)) }  // a random pause: part of the chaos, not a wait
        } catch {
            if !expected(error) { fail("chaos: \(error)") }
        }
    }
    held.removeAll()
    let final = intSetting("final", 100)
    let consumer: Handle
    do { consumer = try peer.lookup("final", timeout: .seconds(30)) } catch { fail("lookup final: \(error)") }
    for seq in 0..<final {
        do {
            var loan = try peer.loan(Pattern.size(seq), for: consumer, wait: .park, timeout: .seconds(60))
            loan.count = Pattern.size(seq)
            fill(&loan, seq: seq)
            try peer.send(loan, to: consumer, wait: .park, timeout: .seconds(60))
        } catch {
            fail("final send \(seq): \(error)")
        }
    }
    // Other survivors wait for their slices too: keep taking and releasing what
    // they sent here, or everyone waits for everyone.
    let reclaimed = waitUntil(timeoutSeconds: 30, pollMicroseconds: 500) {
        do throws(Bus1Error) {
            while try peer.tryReceive() != nil {}
            try peer.reclaimCompleted()
        } catch {
            if !expected(error) { fail("final reclaim: \(error)") }
        }
        return peer.currentStatistics.slicesInUse == 0
    }
    if !reclaimed { fail("pool not reclaimed: \(peer.currentStatistics)") }
    say("OK final sent=\(final) fds=\(startFDs)->\(openDescriptorCount())")
    // Stay, still releasing what arrives, until the second cue: the test gives it
    // once every survivor is done, as the others may still be sending here.
    repeat {
        do { while try peer.tryReceive() != nil {} } catch { if !expected(error) { fail("draining: \(error)") } }
    } while !takeCue(waitingUpTo: 1000)
}
