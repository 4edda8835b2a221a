import Testing

/// Spawns `bus1-test-peer role address=… key=value…` against the bus at `address`.
package func testPeer(_ role: String, address: String, _ settings: [String: String] = [:]) throws -> ChildProcess {
    var arguments = [role, "address=\(address)"]
    for (key, value) in settings.sorted(by: { $0.key < $1.key }) { arguments.append("\(key)=\(value)") }
    return try ChildProcess("bus1-test-peer", arguments)
}

/// A checked exchange between two test peers on the bus at `address`: a
/// `consumer` publishes `name`, then a `producer` sends it `count` messages of
/// mixed sizes; the consumer checks every byte and the order, the producer waits
/// until every slice came back, and both must exit 0 within `timeoutSeconds`.
/// `consumer` and `producer` add settings of their own (`mode`, `park`, …).
/// Returns both, ended, for a look at their lines.
@discardableResult
package func exchangeCheckedMessages(on address: String, name: String, count: Int,
                                     consumer consumerSettings: [String: String] = [:], producer producerSettings: [String: String] = [:],
                                     timeoutSeconds: Double = 300,
                                     sourceLocation: SourceLocation = #_sourceLocation) throws -> (consumer: ChildProcess, producer: ChildProcess) {
    let consumer = try testPeer("consumer", address: address, consumerSettings.merging(["name": name, "count": "\(count)"]) { $1 })
    #expect(consumer.awaitLine(prefix: "READY", timeoutSeconds: 30) != nil, "\(consumer.transcript)", sourceLocation: sourceLocation)
    let producer = try testPeer("producer", address: address, producerSettings.merging(["name": name, "count": "\(count)"]) { $1 })
    #expect(producer.finish(timeoutSeconds: timeoutSeconds) == .exited(0), "\(producer.transcript)", sourceLocation: sourceLocation)
    #expect(consumer.finish(timeoutSeconds: timeoutSeconds) == .exited(0), "\(consumer.transcript)", sourceLocation: sourceLocation)
    return (consumer, producer)
}

extension BusFixture {
    /// Spawns the test peer in `role` on this bus.
    package func peer(_ role: String, _ settings: [String: String]) throws -> ChildProcess {
        try testPeer(role, address: address, settings)
    }

    /// ``exchangeCheckedMessages(on:name:count:consumer:producer:timeoutSeconds:sourceLocation:)`` on this bus.
    @discardableResult
    package func exchangeCheckedMessages(name: String, count: Int, consumer: [String: String] = [:], producer: [String: String] = [:],
                                         timeoutSeconds: Double = 300,
                                         sourceLocation: SourceLocation = #_sourceLocation) throws -> (consumer: ChildProcess, producer: ChildProcess) {
        try Bus1IntegrationSupport.exchangeCheckedMessages(on: address, name: name, count: count, consumer: consumer, producer: producer,
                                                           timeoutSeconds: timeoutSeconds, sourceLocation: sourceLocation)
    }
}
