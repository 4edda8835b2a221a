// bus1-test-peer: one real peer process driven by the integration tests.
//
//   bus1-test-peer ROLE key=value...
//
// Roles:
//   consumer  name= count= [mode=] [park=] [linger=1]  publish a node, receive `count`
//             messages, check every byte and the order, print "OK received=N bytes=B".
//             linger=1: then stay alive until killed.
//   producer  name= count= [mode=] [start=] [pace-us=] [progress=]  look `name` up, send `count`
//             messages of mixed sizes (1 B ... 4 MiB), wait until every slice came back, print
//             "CLOCK anomalies=A" and "OK sent=N reclaimed" (progress=N: "PROGRESS N" after N).
//   streamer  name=  send forever (blocking on credit) until the channel closes,
//             then print "CLOSED reason=... slices=N" once the pool is reclaimed.
//   hostile   name= attack=  send one honest message, then the attack; print
//             "CLOSED reason=..." when the coordinator closes its channel.
//   burst     names= count= [size=]  send `count` messages to every name (multicast)
//             without waiting, print "SENT", then reclaim and print "INUSE n" until killed.
//   chaos     index= survivors= [seed=] [final=]  random work among peers that die (see
//             the role); on SIGUSR1 send `final` messages to "final" and print fd counts.
//   garbage   malformed control datagrams at the coordinator; print "OK" if each got
//             BUS1_ERR_PROTOCOL and the bus still serves a lookup afterwards.
//   relay     name= [next=]  publish a node, receive one message carrying a handle;
//             with next=: pass the handle on to `next` and release it ("FORWARDED"),
//             else send "reached" through it and release it ("REACHED"); then linger.
//   racer     name=  send numbered messages to `name` until a send fails because the
//             node was destroyed ("STOPPED sent=N ticket=T": T is the notification's).
//   watch     names= notes=  look the names up, print "READY", then print every
//             notification as "NOTE kind=K node=N from=P ticket=T" until `notes` came.
//   attachflood name= threads= count= [cue=1]  `threads` peers (threads) each send up to
//             `count` messages to `name` with a handle attached, as fast as the
//             coordinator answers; a thread stops at its first fair-share refusal (prints
//             "REFUSED" the first time); "STARTED" once all looked up (with cue=1 they
//             then wait for SIGUSR1), "DONE attached=A refused=R"; then linger.
//   flood     address= [seconds=] [hold=] [seed=]  connection flood (see Flood.swift).
//   victim / fdflood / nodeflood  a service and two attachment floods against it
//             (see AttachFloods.swift).
//   fdsink    name=  receive one message with fds attached, write "fd <i>" into each,
//             print "WROTE fds=N cloexec=C" (C: how many were close-on-exec); linger.
//   snoop     name= count= pid=  a receiver of another uid looking for what its sender
//             sent to others (see Snoop.swift).
//   churn     count= [warmup=]  open and close `count` channels; print the mapping
//             count before and after (see ChannelChurn.swift).
//   clockwarp, staller, corruptsink, victimsender: shared-word attacks and their
//             honest victim (see SharedWordAttacks.swift).
// Every line goes to stdout, flushed; failures print "FAIL ..." and exit 1.
import Bus1
@_spi(HostileTesting) import Bus1
import Bus1Core
import Bus1Linux
import Bus1TestSupport
import CBus1Wire
import Glibc

/// Prints one line and flushes it at once (the test reads lines as they come).
func say(_ line: String) {
    print(line)
    fflush(nil)
}

func fail(_ message: String) -> Never {
    say("FAIL \(message)")
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { fail("usage: bus1-test-peer ROLE key=value...") }
let settings: [String: String] = Dictionary(uniqueKeysWithValues: arguments.dropFirst(2).map { argument in
    guard let eq = argument.firstIndex(of: "=") else { fail("bad argument \(argument)") }
    return (String(argument[..<eq]), String(argument[argument.index(after: eq)...]))
})
func setting(_ key: String) -> String {
    guard let value = settings[key] else { fail("missing \(key)=") }
    return value
}
func intSetting(_ key: String, _ fallback: Int? = nil) -> Int {
    if let value = settings[key] {
        guard let number = Int(value) else { fail("bad \(key)=\(value)") }
        return number
    }
    if let fallback { return fallback }
    fail("missing \(key)=")
}

let waitMode: WaitMode = switch settings["mode"] ?? "default" {
case "busy": .busyPoll
case "park": .park
default: .default
}
let options: PeerOptions = {
    var options = PeerOptions(address: settings["address"])
    options.waitMode = waitMode
    if let stall = settings["stall-ms"].flatMap({ UInt64($0) }) { options.orderingStallTimeoutNanoseconds = stall * 1_000_000 }
    if let backend = settings["park"] {
        guard let parsed = ParkBackend(rawValue: backend) else { fail("bad park=\(backend)") }
        options.parkBackend = parsed
    }
    return options
}()

/// Payload of message `seq`: its size, and bytes from a ramp that depends on seq,
/// with seq itself in the first 8 bytes, so a misplaced or torn message shows.
enum Pattern {
    static let ramp: [UInt8] = (0..<(4 << 20) + 512).map { UInt8(truncatingIfNeeded: $0) }

    static func size(_ seq: Int) -> Int {
        if seq % 1000 == 999 { return 4 << 20 }
        if seq % 100 == 99 { return 64 << 10 }
        if seq % 10 == 9 { return 4096 }
        return 1 + (seq &* 7919) % 512
    }

    static func fill(_ buffer: UnsafeMutableRawBufferPointer, seq: Int) {
        let start = seq % 251
        ramp.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + start, byteCount: buffer.count) }
        if buffer.count >= 8 { buffer.storeBytes(of: UInt64(seq).littleEndian, as: UInt64.self) }
    }

    /// The seq a payload claims (from its first 8 bytes), if it is long enough.
    static func claimedSeq(_ payload: UnsafeRawBufferPointer) -> Int? {
        payload.count >= 8 ? Int(UInt64(littleEndian: payload.loadUnaligned(as: UInt64.self))) : nil
    }

    static func check(_ payload: UnsafeRawBufferPointer, seq: Int) -> Bool {
        guard payload.count == size(seq) else { return false }
        let start = seq % 251
        if payload.count >= 8 {
            guard claimedSeq(payload) == seq else { return false }
            return ramp.withUnsafeBytes { memcmp(payload.baseAddress! + 8, $0.baseAddress! + start + 8, payload.count - 8) == 0 }
        }
        return ramp.withUnsafeBytes { memcmp(payload.baseAddress!, $0.baseAddress! + start, payload.count) == 0 }
    }
}

/// Random pauses from a seed: sched_yield, short sleeps, or nothing (bursts).
struct JitterSource {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func maybePause() {
        switch next() % 64 {
        case 0: usleep(UInt32(next() % 300))
        case 1, 2, 3: sched_yield()
        default: break
        }
    }
}

func connect() -> Peer {
    do { return try Peer.connect(options: options) } catch { fail("connect: \(error)") }
}

/// Looks `name` up, waiting up to 20 s for it to be published.
func lookupWhenPublished(_ peer: Peer, _ name: String) -> Handle {
    do { return try peer.lookup(name, waitingUpToNanoseconds: 20_000_000_000) } catch { fail("lookup \(name): \(error)") }
}

/// Sends message 0 of the pattern (1 byte) the honest way.
func sendFirstHonestMessage(_ peer: Peer, to target: Handle) {
    do {
        var loan = try peer.loan(8, for: target)
        loan.count = Pattern.size(0)
        Pattern.fill(loan.payload, seq: 0)
        try peer.send(loan, to: target, wait: .park)
    } catch { fail("honest send: \(error)") }
}

func printEvents(_ peer: Peer) {
    for event in peer.takeEvents() {
        switch event {
        case .violationDetected(let sender, let violation): say("VIOLATION peer=\(sender) kind=\(violation.rawValue)")
        case .inboundClosed(let sender, let reason): say("INBOUND-CLOSED peer=\(sender) reason=\(reason)")
        case .outboundClosed(let receiver, let reason): say("OUTBOUND-CLOSED peer=\(receiver) reason=\(reason)")
        case .orderingStall(let sender): say("ORDERING-STALL peer=\(sender)")
        case .clockAnomaly(let clock, let issued): say("CLOCK-ANOMALY clock=\(clock) issued=\(issued)")
        }
    }
}

func waitUntilReclaimed(_ peer: Peer) {
    let deadline = monotonicNanoseconds() + 30_000_000_000
    while peer.currentStatistics.slicesInUse > 0 {
        do { try peer.reclaimCompleted() } catch { fail("reclaim: \(error)") }
        if monotonicNanoseconds() > deadline { fail("pool not reclaimed: \(peer.currentStatistics)") }
        usleep(500)
    }
}

switch arguments[1] {
case "consumer":
    let peer = connect()
    let count = intSetting("count")
    let node: Handle
    do { node = try peer.createNode() } catch { fail("createNode: \(error)") }
    do { try peer.publish(node, as: setting("name")) } catch { fail("publish: \(error)") }
    say("READY peer=\(peer.id) park=\(peer.parkMechanism)")
    var bytes = 0
    var lastTicket: UInt64 = 0
    var lastTicketFrom: [UInt64: UInt64] = [:]
    var inversions = 0
    var nextSeq: [UInt64: Int] = [:]  // per sender: messages are numbered from 0 by each producer
    var jitter = settings["jitter"].flatMap { UInt64($0) }.map { JitterSource(seed: $0) }
    var lastArrival: [UInt64: UInt64] = [:]  // per sender: when its previous message arrived
    var maxGap: UInt64 = 0  // the longest wait between two messages of one sender
    for _ in 0..<count {
        jitter?.maybePause()
        let message: Message
        do { message = try receiveData(peer, timeoutNanoseconds: 60_000_000_000) } catch { fail("receive: \(error)") }
        let now = monotonicNanoseconds()
        if let previous = lastArrival[message.sender] { maxGap = max(maxGap, now - previous) }
        lastArrival[message.sender] = now
        printEvents(peer)
        // Per-channel FIFO is the guarantee here (the seq check below); tickets never
        // fall per sender (equal only once a sender's tickets saturate at UInt64.max
        // after a clock jump); a lower ticket after a higher one from another sender
        // is counted (global order is the ordering issue's work).
        guard message.ticket >= lastTicketFrom[message.sender, default: 1] else {
            fail("ticket order from peer \(message.sender): \(message.ticket) after \(lastTicketFrom[message.sender]!)")
        }
        lastTicketFrom[message.sender] = message.ticket
        if message.ticket < lastTicket { inversions += 1 }
        lastTicket = max(lastTicket, message.ticket)
        guard message.node == node else { fail("message for \(message.node), expected \(node)") }
        let seq = nextSeq[message.sender, default: 0]
        guard Pattern.check(message.payload, seq: seq) else {
            fail("payload of seq \(seq) from peer \(message.sender) is wrong (size \(message.payload.count), claims \(Pattern.claimedSeq(message.payload) ?? -1))")
        }
        nextSeq[message.sender] = seq + 1
        bytes += message.payload.count
    }
    printEvents(peer)
    say("MAXGAP ms=\(maxGap / 1_000_000) stalls=\(peer.currentStatistics.orderingStalls)")
    say("OK received=\(count) bytes=\(bytes) cross-sender-inversions=\(inversions)")
    if settings["linger"] == "1" {
        while true { pause() }  // stays until killed (for kill tests)
    }

case "producer":
    let peer = connect()
    let count = intSetting("count")
    let target = lookupWhenPublished(peer, setting("name"))
    say("READY peer=\(peer.id)")
    // jitter=SEED: pause at random points (yield, short sleeps, bursts) so runs
    // interleave differently with every seed.
    var jitter = settings["jitter"].flatMap { UInt64($0) }.map { JitterSource(seed: $0) }
    let pace = UInt32(intSetting("pace-us", 0))  // pace-us=N: sleep N µs after each message
    let progress = intSetting("progress", 0)  // progress=N: print "PROGRESS N" after N messages
    for seq in 0..<count {
        jitter?.maybePause()
        if pace > 0 && seq > 0 { usleep(pace) }
        do {
            var loan = try peer.loan(Pattern.size(seq), for: target, wait: waitMode, timeoutNanoseconds: 60_000_000_000)
            loan.count = Pattern.size(seq)
            Pattern.fill(loan.payload, seq: seq)
            try peer.send(loan, to: target, wait: waitMode, timeoutNanoseconds: 60_000_000_000)
        } catch {
            fail("send \(seq): \(error)")
        }
        if seq + 1 == progress { say("PROGRESS \(progress)") }
    }
    waitUntilReclaimed(peer)
    printEvents(peer)
    say("CLOCK anomalies=\(peer.currentStatistics.clockAnomalies)")
    say("OK sent=\(count) reclaimed")

case "streamer":
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    say("READY peer=\(peer.id)")
    var seq = 0
    while true {
        do {
            var loan = try peer.loan(Pattern.size(seq), for: target, wait: waitMode, timeoutNanoseconds: 60_000_000_000)
            loan.count = Pattern.size(seq)
            Pattern.fill(loan.payload, seq: seq)
            try peer.send(loan, to: target, wait: waitMode, timeoutNanoseconds: 60_000_000_000)
            seq += 1
            if seq == 1000 { say("STREAMING") }
        } catch .channelClosed(_, let reason) {
            // Every slice that was in flight to the dead receiver is back already.
            let slices = peer.currentStatistics.slicesInUse
            say("CLOSED reason=\(reason) sent=\(seq) slices=\(slices)")
            printEvents(peer)
            exit(slices == 0 ? 0 : 1)
        } catch {
            fail("send \(seq): \(error)")
        }
    }

case "burst":
    // Sends `count` messages of `size` bytes ("burst <seq>") to every name in
    // `names` (one multicast each) without waiting, then keeps taking completions
    // back, printing INUSE <slices> whenever that changes, until killed.
    let peer = connect()
    let targets = setting("names").split(separator: ",").map { lookupWhenPublished(peer, String($0)) }
    let count = intSetting("count"), size = intSetting("size", 64)
    for seq in 0..<count {
        do {
            let loan = try peer.loan(size, for: targets)
            let text = Array("burst \(seq)".utf8)
            loan.payload.copyBytes(from: text.prefix(size))
            try peer.send(loan, to: targets)
        } catch {
            fail("send \(seq): \(error)")
        }
    }
    var inUse = peer.currentStatistics.slicesInUse
    say("SENT \(count) peer=\(peer.id) inuse=\(inUse)")
    while true {
        do { try peer.reclaimCompleted() } catch { fail("reclaim: \(error)") }
        let now = peer.currentStatistics.slicesInUse
        if now != inUse { inUse = now; say("INUSE \(now)") }
        usleep(2000)
    }

case "chaos":
    // Random work on a bus where peers die: publishes chaos.<index>, talks to the
    // survivors chaos.0 ..< survivors (and to every peer that says hello), sends
    // unicast and multicast slices of random sizes, holds received messages for a
    // while, releases handles. Errors a dying peer causes are expected; anything
    // else fails. On SIGUSR1 (a survivor's cue) it stops, sends `final` honest
    // messages to the consumer `final`, waits until every slice came back, and
    // prints its fd counts: "OK final sent=N fds=START->END"; on a second SIGUSR1
    // it exits.
    var pendingSignals = sigset_t()
    sigemptyset(&pendingSignals)
    sigaddset(&pendingSignals, SIGUSR1)
    sigprocmask(SIG_BLOCK, &pendingSignals, nil)
    /// Takes a pending SIGUSR1, if one came (it stays blocked: no handler races).
    func takeCue() -> Bool {
        var zero = timespec()
        return sigtimedwait(&pendingSignals, nil, &zero) == SIGUSR1
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
    let myNode: Handle
    do { myNode = try peer.createNode(); try peer.publish(myNode, as: "chaos.\(me)") } catch { fail("publish: \(error)") }
    let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)  // passed in attachments
    let startFDs = openDescriptorCount()
    var targets: [Handle] = []  // distinct: a lookup of a known node returns the same handle
    func add(_ handle: Handle) { if !targets.contains(handle) { targets.append(handle) } }
    for k in 0..<survivors where k != me {
        do { targets.append(try peer.lookup("chaos.\(k)", waitingUpToNanoseconds: 30_000_000_000)) } catch { fail("lookup chaos.\(k): \(error)") }
    }
    for target in targets {
        let hello = Array("hello \(me)".utf8)
        do {
            let loan = try peer.loan(hello.count, for: target)
            loan.payload.copyBytes(from: hello)
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
                if message.payload.count > 6, message.payload.starts(with: Array("hello ".utf8)),
                   let k = Int(String(decoding: message.payload.dropFirst(6), as: UTF8.self)), k != me {
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
                    let loan = try peer.loan(size, for: destinations)
                    loan.payload.initializeMemory(as: UInt8.self, repeating: 0x78)  // never a stale "hello"
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
            if rng.next() % 16 == 0 { usleep(UInt32(rng.next() % 500)) }
        } catch {
            if !expected(error) { fail("chaos: \(error)") }
        }
    }
    held.removeAll()
    let final = intSetting("final", 100)
    let consumer: Handle
    do { consumer = try peer.lookup("final", waitingUpToNanoseconds: 30_000_000_000) } catch { fail("lookup final: \(error)") }
    for seq in 0..<final {
        do {
            var loan = try peer.loan(Pattern.size(seq), for: consumer, wait: .park, timeoutNanoseconds: 60_000_000_000)
            loan.count = Pattern.size(seq)
            Pattern.fill(loan.payload, seq: seq)
            try peer.send(loan, to: consumer, wait: .park, timeoutNanoseconds: 60_000_000_000)
        } catch {
            fail("final send \(seq): \(error)")
        }
    }
    // Other survivors wait for their slices too: keep taking and releasing what
    // they sent here, or everyone waits for everyone.
    let deadline = monotonicNanoseconds() + 30_000_000_000
    while peer.currentStatistics.slicesInUse > 0 {
        do {
            while try peer.tryReceive() != nil {}
            try peer.reclaimCompleted()
        } catch {
            if !expected(error) { fail("final reclaim: \(error)") }
        }
        if monotonicNanoseconds() > deadline { fail("pool not reclaimed: \(peer.currentStatistics)") }
        usleep(500)
    }
    say("OK final sent=\(final) fds=\(startFDs)->\(openDescriptorCount())")
    // Stay, still releasing what arrives, until the second cue: the test gives it
    // once every survivor is done, as the others may still be sending here.
    while !takeCue() {
        do { while try peer.tryReceive() != nil {} } catch { if !expected(error) { fail("draining: \(error)") } }
        usleep(1000)
    }

case "slowsink":
    // Publishes nodes flood.0 ..< nodes, says READY, does not look at its socket
    // for `sleep` ms (busy elsewhere), then receives `count` messages and prints
    // "OK received=N violations=V".
    let peer = connect()
    for i in 0..<intSetting("nodes") {
        do { try peer.publish(try peer.createNode(), as: "flood.\(i)") } catch { fail("publish: \(error)") }
    }
    say("READY peer=\(peer.id)")
    usleep(UInt32(intSetting("sleep")) * 1000)
    for _ in 0..<intSetting("count") {
        do { _ = try receiveData(peer, timeoutNanoseconds: 30_000_000_000) } catch { fail("receive: \(error)") }
    }
    say("OK received=\(intSetting("count")) violations=\(peer.currentStatistics.violationsDetected)")

case "relay":
    let peer = connect()
    do { try peer.publish(try peer.createNode(), as: setting("name")) } catch { fail("publish: \(error)") }
    let next = settings["next"].map { lookupWhenPublished(peer, $0) }
    say("READY peer=\(peer.id)")
    let message: Message
    do { message = try receiveData(peer, timeoutNanoseconds: 30_000_000_000) } catch { fail("receive: \(error)") }
    guard message.handles.count == 1, let passed = message.handles.first, passed.isValid else { fail("expected one valid handle, got \(message.handles)") }
    do {
        if let next {
            try peer.send(try peer.loan(0, for: next), to: next, attaching: [passed])
            try peer.release(passed)
            say("FORWARDED handle=\(passed.id)")
        } else {
            try Array("reached".utf8).withUnsafeBytes { try peer.send(copying: $0, to: passed) }
            try peer.release(passed)
            say("REACHED handle=\(passed.id)")
        }
    } catch { fail("relay: \(error)") }
    while true { pause() }

case "racer":
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    say("READY peer=\(peer.id)")
    var sent: UInt64 = 0
    var notifiedAt: UInt64 = 0
    while true {
        do {
            while let note = try peer.tryReceive() {
                if note.kind == .nodeDestroyed && note.node == target { notifiedAt = note.ticket }
            }
            let loan = try peer.loan(8, for: target, wait: .park)
            loan.bytes.storeBytes(of: sent, as: UInt64.self)
            try peer.send(loan, to: target, wait: .park)
            sent += 1
        } catch .nodeDestroyed(target) {
            guard notifiedAt != 0 else { fail("nodeDestroyed before the notification") }
            break
        } catch { fail("racer: \(error)") }
    }
    say("STOPPED sent=\(sent) ticket=\(notifiedAt)")
    while true { pause() }

case "watch":
    let peer = connect()
    let names = setting("names").split(separator: ",").map(String.init)
    let held = names.map { lookupWhenPublished(peer, $0) }
    say("READY peer=\(peer.id) handles=\(held.map { String($0.id) }.joined(separator: ","))")
    var notes = 0
    while notes < intSetting("notes") {
        let message: Message
        do { message = try peer.receive(timeoutNanoseconds: 30_000_000_000) } catch { fail("receive: \(error)") }
        guard message.kind != .data else { continue }
        notes += 1
        say("NOTE kind=\(message.kind) node=\(message.node.id) from=\(message.sender) ticket=\(message.ticket)")
    }
    say("DONE")
    while true { pause() }

case "attachflood":
    let tally = FloodTally()
    let threads = intSetting("threads"), count = intSetting("count")
    let name = setting("name"), peerOptions = options
    var cue = sigset_t()
    sigemptyset(&cue)
    sigaddset(&cue, SIGUSR1)
    sigprocmask(SIG_BLOCK, &cue, nil)  // before the threads exist: they inherit it
    if settings["cue"] != "1" { tally.go = true }
    let workers = (0..<threads).map { _ in
        startThread { attachFloodThread(tally, options: peerOptions, name: name, threads: threads, count: count) }
    }
    while tally.lock.locked({ tally.started < threads }) { usleep(100) }
    say("STARTED")
    if !tally.go {
        var signal: Int32 = 0
        sigwait(&cue, &signal)
        tally.lock.locked { tally.go = true }
    }
    for thread in workers { pthread_join(thread, nil) }
    say("DONE attached=\(tally.attached) refused=\(tally.refused)")
    while true { pause() }  // the receiver may still be taking our messages

case "fdsink":
    let peer = connect()
    do { try peer.publish(try peer.createNode(), as: setting("name")) } catch { fail("publish: \(error)") }
    say("READY peer=\(peer.id)")
    let message: Message
    do { message = try receiveData(peer, timeoutNanoseconds: 30_000_000_000) } catch { fail("receive: \(error)") }
    guard let attachment = message.attachment else { fail("no attachment") }
    let fds = attachment.takeFileDescriptors()
    var closeOnExec = 0
    for (i, fd) in fds.enumerated() {
        if fcntl(fd, F_GETFD) & FD_CLOEXEC != 0 { closeOnExec += 1 }
        let text = Array("fd \(i)".utf8)
        guard write(fd, text, text.count) == text.count else { fail("write to fd \(i): errno \(errno)") }
        close(fd)
    }
    say("WROTE fds=\(fds.count) cloexec=\(closeOnExec)")
    while true { pause() }

case "hostile":
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    sendFirstHonestMessage(peer, to: target)
    // Attack only once the honest message was taken and released: a forged index
    // would otherwise (rightly) close the channel before the receiver saw it.
    waitUntilReclaimed(peer)
    let forgery: Peer.Forgery
    switch setting("attack") {
    case "bad-offset": forgery = .init(offset: 1 << 40)
    case "huge-length": forgery = .init(length: .max)
    case "unknown-node": forgery = .init(node: 987_654_321)
    case "ticket-backwards": forgery = .init(ticket: 0)  // below the honest message's ticket (tickets start at 1)
    case "ring-index": forgery = .init(tailOverride: 1 << 20)
    case "lying-attachment": forgery = .init(flags: BUS1_DESC_ATTACHMENT)  // no attachment was asked for
    case "unknown-flag": forgery = .init(flags: 0x80)
    case "unknown-segment": forgery = .init(offset: 7 << UInt64(BUS1_SEGMENT_SHIFT) | 1 << 16)  // a segment it never opened
    case "segment-beyond": forgery = .init(offset: UInt64(BUS1_SEGMENTS_MAX) << UInt64(BUS1_SEGMENT_SHIFT))  // past the wire's 16
    default: fail("unknown attack")
    }
    do { try peer.sendForged(to: target, forgery) } catch { fail("forged send: \(error)") }
    say("ATTACKED")
    // The receiver reports us; the coordinator closes our channel and tells us.
    // (Sending more now could overwrite the forged index before the receiver saw it.)
    let deadline = monotonicNanoseconds() + 20_000_000_000
    while monotonicNanoseconds() < deadline {
        do { try peer.reclaimCompleted() } catch { fail("after attack: \(error)") }
        for case .outboundClosed(_, let reason) in peer.takeEvents() {
            // Sending on the closed channel is now a typed error.
            var again: Loan
            do { again = try peer.loan(8, for: target) } catch { fail("loan: \(error)") }
            again.count = 8
            do {
                try peer.send(again, to: target)
                fail("send after close succeeded")
            } catch .channelClosed(_, let sendReason) where sendReason == reason {
                say("CLOSED reason=\(reason) slices=\(peer.currentStatistics.slicesInUse)")
                exit(0)
            } catch {
                fail("send after close: \(error)")
            }
        }
        usleep(1000)
    }
    fail("channel never closed")

case "stalled":
    // Sends one honest message, then freezes mid-send: staging mark set, no ticket.
    let peer = connect()
    let target = lookupWhenPublished(peer, setting("name"))
    sendFirstHonestMessage(peer, to: target)
    do { try peer.stageWithoutSending(to: target) } catch { fail("stall setup: \(error)") }
    say("STAGED")
    raise(SIGSTOP)
    say("CONTINUED")

case "intruder":
    // Receives one message, then tries every way to write the sender's pool.
    let peer = connect()
    let node: Handle
    do { node = try peer.createNode(); try peer.publish(node, as: setting("name")) } catch { fail("setup: \(error)") }
    say("READY peer=\(peer.id)")
    let message: Message
    do { message = try receiveData(peer, timeoutNanoseconds: 30_000_000_000) } catch { fail("receive: \(error)") }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let address = UInt(bitPattern: message.payload.baseAddress!)
    let pageStart = UnsafeMutableRawPointer(bitPattern: address & ~UInt(page - 1))!
    let original = message.payload.load(as: UInt8.self)

    // 1. mprotect the read-only view writable.
    if mprotect(pageStart, page, PROT_READ | PROT_WRITE) == 0 { fail("mprotect(PROT_WRITE) succeeded") }
    say("DENIED mprotect errno=\(errno)")

    // 2. Find the mapping's file and reopen it for writing (/proc/self/map_files).
    var range: String?
    if let maps = fopen("/proc/self/maps", "r") {
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), maps) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let bounds = text.split(separator: " ")[0].split(separator: "-").compactMap { UInt(String($0), radix: 16) }
            if bounds.count == 2, bounds[0] <= address, address < bounds[1] { range = String(text.split(separator: " ")[0]) }
        }
        fclose(maps)
    }
    guard let range else { fail("payload mapping not in /proc/self/maps") }
    let writable = open("/proc/self/map_files/\(range)", O_RDWR | O_CLOEXEC)
    if writable < 0 {
        say("DENIED reopen-for-write errno=\(errno)")
    } else {
        // The open itself may succeed (root); the seals must still refuse writes.
        let shared = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_SHARED, writable, 0)
        if shared != MAP_FAILED { fail("writable MAP_SHARED mapping of the sender's pool succeeded") }
        say("DENIED writable-shared-map errno=\(errno)")
        var byte: UInt8 = 0x5A
        if pwrite(writable, &byte, 1, off_t(Int(bitPattern: address) - Int(bitPattern: pageStart) + 0)) >= 0 { fail("pwrite to the sender's pool succeeded") }
        say("DENIED pwrite errno=\(errno)")
        // A private writable mapping is copy-on-write: it must not reach the sender.
        let priv = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE, writable, 0)
        if priv != MAP_FAILED {
            priv!.storeBytes(of: ~original, as: UInt8.self)
            munmap(priv, page)
        }
        close(writable)
    }
    guard message.payload.load(as: UInt8.self) == original else { fail("the sender's bytes changed") }
    say("OK")

case "waiter":
    // Parks in receive() until the coordinator dies; must get .coordinatorGone.
    let peer = connect()
    let node: Handle
    do { node = try peer.createNode(); try peer.publish(node, as: setting("name")) } catch { fail("setup: \(error)") }
    say("READY peer=\(peer.id)")
    let started = monotonicNanoseconds()
    do {
        _ = try peer.receive(timeoutNanoseconds: 60_000_000_000)
        fail("received a message nobody sent")
    } catch .coordinatorGone {
        say("GONE after_ms=\((monotonicNanoseconds() - started) / 1_000_000)")
    } catch {
        fail("receive: \(error)")
    }
    do {
        _ = try peer.createNode()
        fail("createNode on a dead bus succeeded")
    } catch .coordinatorGone {
        say("OK")
    } catch {
        fail("createNode: \(error)")
    }
    // reconnect=1: a restarted coordinator on the same path takes a new peer, which
    // can publish the same name again (the old bus's state is gone with it).
    if settings["reconnect"] == "1" {
        let deadline = monotonicNanoseconds() + 30_000_000_000
        while true {
            do {
                let again = try Peer.connect(options: options)
                try again.publish(try again.createNode(), as: setting("name"))
                say("RECONNECTED peer=\(again.id)")
                break
            } catch .coordinatorGone, .noBus {
                if monotonicNanoseconds() > deadline { fail("no coordinator came back") }
                usleep(10_000)
            } catch {
                fail("reconnect: \(error)")
            }
        }
    }

case "flood":
    runFlood()

case "victim":
    runVictim()

case "fdflood":
    runFdFlood()

case "nodeflood":
    runNodeFlood()

case "snoop": runSnoop()
case "churn": runChannelChurn()
case "clockwarp": runClockWarp()
case "staller": runStaller()
case "corruptsink": runCorruptSink()
case "victimsender": runVictimSender()

case "garbage":
    let address = settings["address"] ?? Peer.defaultAddress()
    let socket: Int32  // a raw number: the nested function below captures it
    do { socket = try SeqPacket.connect(path: address).release() } catch { fail("connect: \(error)") }
    var buffer = [UInt8](repeating: 0, count: 1024)
    func expectProtocolError(_ datagram: [UInt8], fds: [Int32] = [], _ what: String) {
        do { try SeqPacket.send(socket, datagram, fds: fds) } catch { fail("send \(what): \(error)") }
        let reply = buffer.withUnsafeMutableBytes { raw -> ControlMessage? in
            guard let d = try? SeqPacket.receive(socket, into: raw) else { return nil }
            return try? ControlMessage.decode(UnsafeRawBufferPointer(rebasing: raw[..<d.count]), descriptorCount: d.fds.count).message
        }
        guard reply == .error(code: BUS1_ERR_PROTOCOL.rawValue, detail: 0) else { fail("\(what): got \(String(describing: reply))") }
        say("REFUSED \(what)")
    }
    var valid = ControlMessage.nodeCreate.encode(requestID: 9)
    expectProtocolError([1, 2, 3], "short datagram")
    var badMagic = valid; badMagic[0] ^= 0xFF
    expectProtocolError(badMagic, "bad magic")
    var badVersion = valid; badVersion[4] = 99
    expectProtocolError(badVersion, "bad version")
    var badType = valid; badType[6] = 200
    expectProtocolError(badType, "unknown type")
    var badSize = valid; badSize[8] = 200
    expectProtocolError(badSize, "size mismatch")
    valid.append(contentsOf: [0, 0, 0, 0])
    expectProtocolError(valid, "trailing bytes")
    expectProtocolError(ControlMessage.ok.encode(requestID: 5), "reply type sent by a peer")
    var name = ControlMessage.nameLookup(name: "x").encode(requestID: 6)
    name[24] = 0  // length field = 0
    expectProtocolError(name, "empty name")
    expectProtocolError(ControlMessage.nodeCreate.encode(requestID: 7), fds: [1], "unexpected fd")
    // The same bus still serves a well-behaved peer.
    let peer = connect()
    let node: Handle
    do { node = try peer.createNode() } catch { fail("createNode after garbage: \(error)") }
    do { try peer.publish(node, as: "garbage-survivor-\(peer.id)") } catch { fail("publish after garbage: \(error)") }
    say("OK")

default:
    fail("unknown role \(arguments[1])")
}

/// The next data message; notifications (destroyed and released nodes) are printed
/// as NOTE lines and skipped.
func receiveData(_ peer: Peer, timeoutNanoseconds: UInt64) throws(Bus1Error) -> Message {
    while true {
        let message = try peer.receive(timeoutNanoseconds: timeoutNanoseconds)
        if message.kind == .data { return message }
        say("NOTE kind=\(message.kind) node=\(message.node.id) from=\(message.sender)")
    }
}

/// A pthread mutex, for the few threads of `attachflood`.
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// What the `attachflood` threads did, under its lock.
final class FloodTally: @unchecked Sendable {
    var attached = 0, refused = 0, ready = 0, started = 0, go = false
    /// The threads' peers, kept connected until the process ends.
    var peers: [Peer] = []
    let lock = NSLockLike()
}

/// One `attachflood` thread: its own peer sends up to `count` messages with a
/// handle attached until the fair share refuses it.
@Sendable nonisolated func attachFloodThread(_ tally: FloodTally, options: PeerOptions, name: String, threads: Int, count: Int) {
    let peer: Peer, own: Handle, target: Handle
    do {
        peer = try Peer.connect(options: options)
        own = try peer.createNode()
        target = try peer.lookup(name, waitingUpToNanoseconds: 20_000_000_000)
    } catch { fail("attachflood setup: \(error)") }
    tally.lock.locked { tally.peers.append(peer) }
    tally.lock.locked { tally.ready += 1; tally.started += 1 }
    while tally.lock.locked({ tally.started < threads || !tally.go }) { usleep(100) }
    for _ in 0..<count {
        let outcome: Bus1Error?
        do {
            try peer.send(try peer.loan(8, for: target, wait: .park), to: target, attaching: [own], wait: .park)
            outcome = nil
        } catch {
            outcome = error
        }
        switch outcome {
        case nil:
            tally.lock.locked { tally.attached += 1 }
        case .refused(.quotaExceeded(.messages))?:
            if tally.lock.locked({ () -> Bool in tally.refused += 1; return tally.refused == 1 }) { say("REFUSED") }
            tally.lock.locked { tally.ready -= 1 }
            while tally.lock.locked({ tally.ready > 0 }) { usleep(1000) }
            return
        case let error?:
            fail("attachflood: \(error)")
        }
    }
    // Stay connected until every thread is done (the receiver may still be taking our messages).
    tally.lock.locked { tally.ready -= 1 }
    while tally.lock.locked({ tally.ready > 0 }) { usleep(1000) }
}

/// Runs `body` on a new pthread (outside any actor: the role's peers are per thread).
nonisolated func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Job: @unchecked Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Job(body)).toOpaque()
    guard pthread_create(&thread, nil, { raw in
        Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, box) == 0 else { fail("pthread_create") }
    return thread
}
