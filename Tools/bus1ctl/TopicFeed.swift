import ArgumentParser
import Bus1
import Glibc

/// Where `subscribe` and `hz` get a topic's messages: from its host, or, when
/// nobody hosts it, from hosting it here (then what `bus1ctl publish` contributes
/// is relayed to any other subscribers and shown here too).
enum TopicFeed {
    case subscribed(TopicSubscriber)
    case hosting(Topic)

    /// What is known of one message besides its bytes.
    struct Delivery {
        let sequence: UInt64
        /// The bus-wide ticket; nil for a message this process published as host
        /// (``Topic/relay(_:)`` does not say it).
        let ticket: UInt64?
        /// The host's peer id (this process's when it hosts).
        let sender: UInt64
        let credentials: PeerCredentials?
        /// Messages this subscriber missed right before this one.
        let missedBefore: UInt64
        /// Messages missed in all so far.
        let missed: UInt64
    }

    /// Subscribes to `name`'s host, or hosts `name` if nobody does. A host that
    /// appears between the look-up and hosting is subscribed to instead.
    static func open(_ name: String, options: PeerOptions, timeout: Duration) throws(Bus1Error) -> TopicFeed {
        let peer = try Peer.connect(options: options)
        if try !isPublished(name, on: peer) {
            do {
                return .hosting(try Topic(hosting: name, on: peer))
            } catch .refused(.nameTaken) {
                // Someone hosted it meanwhile: subscribe to them.
            }
        }
        return .subscribed(try TopicSubscriber(topic: name, on: peer, timeout: timeout))
    }

    /// Whether `name` is published now (the look-up's handle is given back).
    private static func isPublished(_ name: String, on peer: Peer) throws(Bus1Error) -> Bool {
        do {
            try peer.release(try peer.lookup(name))
            return true
        } catch .refused(.nameUnknown) {
            return false
        }
    }

    var peer: Peer {
        switch self {
        case .subscribed(let subscriber): subscriber.peer
        case .hosting(let topic): topic.peer
        }
    }

    var isHosting: Bool { if case .hosting = self { true } else { false } }

    /// Before a command that hosts the topic leaves on its own (`--count`): waits
    /// up to the timeout for the other subscribers to read what it relayed (a
    /// host that leaves takes what they have not read with it); says so on
    /// stderr if they did not.
    func finish(timeout: TimeoutOption) {
        guard case .hosting(let topic) = self else { return }
        do {
            try topic.flush(timeout: timeout.duration)
        } catch {
            writeLine("bus1ctl: leaving \(escaped(topic.name)) before its other subscribers read everything (\(error))", to: STDERR_FILENO)
        }
    }

    /// Hands each message to `body` until it returns false. Throws
    /// ``Bus1Error/subscriptionEnded(topic:reason:)`` when the host leaves or drops
    /// this subscriber, ``Bus1Error/interrupted`` when the peer's interrupter fires.
    func forEach(_ body: (Delivery, Span<UInt8>) -> Bool) throws(Bus1Error) {
        switch self {
        case .hosting(let topic):
            let peer = topic.peer
            try topic.relay { (sequence: UInt64, payload: Span<UInt8>) throws(Bus1Error) -> Bool in
                body(Delivery(sequence: sequence, ticket: nil, sender: peer.id, credentials: peer.credentials, missedBefore: 0, missed: 0),
                     payload)
            }
        case .subscribed(let subscriber):
            while true {
                let message = try subscriber.receive()
                let delivery = Delivery(sequence: message.sequence, ticket: message.ticket, sender: message.sender,
                                        credentials: message.senderCredentials, missedBefore: message.missedBefore,
                                        missed: subscriber.missed)
                if !body(delivery, message.payload) { return }
            }
        }
    }
}

extension TopicFeed {
    /// What `subscribe` and `hz` do: take SIGINT and SIGTERM, open the feed of
    /// `topic`, call `started` with it, then hand each message to `body` until it
    /// returns false or a signal (or `started`'s interrupter) ends the wait. A
    /// failure (no bus, the host left) exits 1 with a line naming the cause.
    static func run(_ topic: String, bus: BusOptions, wait: TimeoutOption, started: (TopicFeed) -> Void,
                    _ body: (Delivery, Span<UInt8>) -> Bool) throws {
        TerminationSignals.block()
        let context = Context(kind: "topic", name: topic, address: bus.address, waited: wait.text)
        let feed: TopicFeed
        do { feed = try open(topic, options: bus.peerOptions, timeout: wait.duration) } catch { throw failure(error, context) }
        TerminationSignals.interrupt(feed.peer.interrupter)
        started(feed)
        do {
            try feed.forEach(body)
            feed.finish(timeout: wait)
        } catch .interrupted {
            return  // SIGINT, SIGTERM, or the command's own end (hz --count)
        } catch {
            throw failure(error, context)
        }
    }
}
