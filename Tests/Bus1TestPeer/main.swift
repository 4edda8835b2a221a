// bus1-test-peer: one real peer process driven by the integration tests.
//
//   bus1-test-peer ROLE key=value...
//
// This file parses the command line (the settings every role reads: address=,
// mode=, park=, stall-ms=, ring=) and runs the role. Each role is a function in a file of
// its own, whose doc comment gives its settings, what it prints and which tests
// drive it:
//
//   consumer, producer                     Consumer.swift, Producer.swift (the ``Pattern``: Pattern.swift)
//   streamer                               Streamer.swift
//   burst                                  Burst.swift
//   chaos                                  Chaos.swift
//   slowsink                               SlowSink.swift
//   relay, racer, watch, fdsink            Relay.swift, Racer.swift, Watch.swift, FdSink.swift
//   attachflood                            FairShareFlood.swift
//   hostile, stalled, intruder, garbage    Hostile.swift, Stalled.swift, Intruder.swift, Garbage.swift
//   waiter                                 Waiter.swift
//   namer                                  Namer.swift
//   flood                                  Flood.swift
//   victim, fdflood, nodeflood             AttachFloods.swift
//   snoop                                  Snoop.swift
//   churn                                  ChannelChurn.swift
//   clockwarp, staller, corruptsink, victimsender   SharedWordAttacks.swift
//   asyncconsumer, asyncproducer, asynccancel       AsyncRoles.swift (the async API, on the main actor)
//   topicsub, echoservice, deafservice              PatternRoles.swift (topics and request/reply)
//
// What the roles share (output, connecting, lookups, events, reclaiming) is in
// PeerCommon.swift. Every line goes to stdout, flushed; failures print
// "FAIL ..." and exit 1.
import Bus1
import Bus1Core
import Glibc

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

/// mode=busy|spin|park (`WaitMode.argumentNames`); anything else: the default (spin, then park).
let waitMode = settings["mode"].flatMap(WaitMode.init(argument:)) ?? .default
let options: PeerOptions = {
    var options = PeerOptions(address: settings["address"])
    options.waitMode = waitMode
    if let stall = settings["stall-ms"].flatMap({ UInt64($0) }) { options.orderingStallTimeout = .milliseconds(stall) }
    if let ring = settings["ring"].flatMap({ Int($0) }) { options.ringCapacity = ring }
    if let backend = settings["park"] {
        guard let parsed = ParkBackend(rawValue: backend) else { fail("bad park=\(backend)") }
        options.parkBackend = parsed
    }
    return options
}()

switch arguments[1] {
case "consumer": runConsumer()
case "producer": runProducer()
case "streamer": runStreamer()
case "burst": runBurst()
case "chaos": runChaos()
case "slowsink": runSlowSink()
case "relay": runRelay()
case "racer": runRacer()
case "watch": runWatch()
case "attachflood": runAttachFlood()
case "fdsink": runFdSink()
case "hostile": runHostile()
case "stalled": runStalled()
case "intruder": runIntruder()
case "waiter": runWaiter()
case "namer": runNamer()
case "flood": runFlood()
case "victim": runVictim()
case "fdflood": runFdFlood()
case "nodeflood": runNodeFlood()
case "snoop": runSnoop()
case "churn": runChannelChurn()
case "clockwarp": runClockWarp()
case "staller": runStaller()
case "corruptsink": runCorruptSink()
case "victimsender": runVictimSender()
case "garbage": runGarbage()
case "asyncconsumer": await runAsyncConsumer()
case "asyncproducer": await runAsyncProducer()
case "asynccancel": await runAsyncCancel()
case "topicsub": runTopicSubscriber()
case "echoservice": runEchoService()
case "deafservice": runDeafService()
default: fail("unknown role \(arguments[1])")
}
