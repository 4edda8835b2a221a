import Bus1
import Glibc

// The pattern roles: a topic subscriber, an echo service and a service that never
// answers, each a real process driving the pattern types of the Bus1 library.

/// The `topicsub` role: `topic= [delay-us=] [progress=] [leave-after=]`. Subscribes to `topic`,
/// prints "SUBSCRIBED first=S" (the first sequence it will get) and receives until
/// a message whose payload is "end", spending `delay-us` µs on each (a slow
/// subscriber). Each payload other than "end" must be its sequence number as 8
/// bytes (UInt64); sequences must rise. Prints "PROGRESS n" every `progress`
/// messages (default 100), "SEQ s" for each of the first 64 when `trace=1`, and at
/// the end "OK received=N missed=M first=F last=L" (the end message not counted).
/// With `leave-after=N` it unsubscribes after N messages instead, prints "LEFT
/// received=N", and exits 0.
///
/// Driven by PatternTests (a subscriber killed mid-stream, the skip policy, history).
func runTopicSubscriber() {
    let subscriber: TopicSubscriber
    do { subscriber = try TopicSubscriber(topic: setting("topic"), connecting: options, timeout: .seconds(20)) } catch {
        fail("subscribe: \(error)")
    }
    let delay = intSetting("delay-us", 0), progress = intSetting("progress", 100), trace = intSetting("trace", 0) == 1
    let leaveAfter = intSetting("leave-after", 0)
    say("SUBSCRIBED peer=\(subscriber.peer.id)")
    var received = 0, first: UInt64 = 0, last: UInt64 = 0
    while true {
        let message: TopicMessage
        do { message = try subscriber.receive(timeout: .seconds(60)) } catch { fail("receive: \(error)") }
        if message.payload.count == 3, message.copyPayload() == Array("end".utf8) { break }
        guard message.payload.count == 8 else { fail("message \(message.sequence) has \(message.payload.count) bytes") }
        let carried = message.payload.bytes.unsafeLoadUnaligned(as: UInt64.self)
        guard carried == message.sequence else { fail("message \(message.sequence) carries \(carried)") }
        guard message.sequence > last else { fail("sequence \(message.sequence) after \(last)") }
        if received == 0 { first = message.sequence }
        last = message.sequence
        received += 1
        if trace && received <= 64 { say("SEQ \(message.sequence)") }
        if received % progress == 0 { say("PROGRESS \(received)") }
        if received == leaveAfter {
            do { try subscriber.unsubscribe() } catch { fail("unsubscribe: \(error)") }
            say("LEFT received=\(received)")
            return
        }
        if delay > 0 { usleep(UInt32(delay)) }
    }
    say("OK received=\(received) missed=\(subscriber.missed) first=\(first) last=\(last)")
}

/// The `echoservice` role: `name=`. Serves `name`, prints "READY", and answers
/// every call with its own payload (a call whose payload is "fail" fails, with
/// the reason "asked to fail"), until killed.
///
/// Driven by PatternTests "1,000 concurrent calls".
func runEchoService() {
    let service: Service
    do { service = try Service(name: setting("name"), connecting: options) } catch { fail("serve: \(error)") }
    say("READY peer=\(service.peer.id)")
    do {
        try service.serve { request in
            let bytes = request.copyPayload()
            if bytes == Array("fail".utf8) { throw AskedToFail() }
            return bytes
        }
    } catch {
        fail("serve: \(error)")
    }
}

struct AskedToFail: Error, CustomStringConvertible {
    var description: String { "asked to fail" }
}

/// The `deafservice` role: `name=`. Serves `name`, prints "READY", takes calls in
/// without ever answering and prints "CALLS n" after each, until killed.
///
/// Driven by PatternTests "a service killed mid-call fails the pending calls at once".
func runDeafService() {
    let service: Service
    do { service = try Service(name: setting("name"), connecting: options) } catch { fail("serve: \(error)") }
    say("READY peer=\(service.peer.id)")
    var held: [UInt64] = []
    while true {
        do {
            let request = try service.nextRequest()
            held.append(request.id)
        } catch {
            fail("receive: \(error)")
        }
        say("CALLS \(held.count)")
    }
}
