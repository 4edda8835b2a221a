import Bus1
import CBus1API
import Dispatch
import Glibc

// The patterns of bus1.h: topics and request/reply over the Swift library's
// `Topic`, `TopicSubscriber`, `Service` and `ServiceClient`, each on a peer of
// its own. The client is an actor: a C thread waits for each call on a semaphore.

private typealias TopicObject = PatternObject<Topic>
private typealias SubscriptionObject = PatternObject<TopicSubscriber>
private typealias ServiceObject = PatternObject<Service>
private typealias ClientObject = PatternObject<ServiceClient>

/// Options for a pattern's own peer at `address` (NULL or "": the default bus).
private func peerOptions(_ address: UnsafePointer<CChar>?) -> PeerOptions {
    let text = address.map { String(cString: $0) }
    return PeerOptions(address: text?.isEmpty == false ? text : nil)
}

/// Stores a new retained object in `out`.
private func hand<Object: AnyObject>(_ object: Object, to out: UnsafeMutablePointer<OpaquePointer?>) {
    out.pointee = OpaquePointer(Unmanaged.passRetained(object).toOpaque())
}

/// Runs `body`: 0, or the negative errno value of what it threw.
private func result(_ body: () throws(Bus1Error) -> Void) -> Int32 {
    do throws(Bus1Error) {
        try body()
        return 0
    } catch {
        return errnoResult(error)
    }
}

/// Frees a pattern object C held.
private func free<Pattern>(_ pointer: OpaquePointer?, _: Pattern.Type) {
    guard let pointer else { return }
    Unmanaged<PatternObject<Pattern>>.fromOpaque(UnsafeRawPointer(pointer)).release()
}

/// The bytes C passed (`size` at `data`; NULL only with size 0), in place: a
/// send copies them into its loan, which checks the size before reading any.
private func bytes(_ data: UnsafeRawPointer?, _ size: Int) -> UnsafeRawBufferPointer? {
    guard size >= 0, size == 0 || data != nil else { return nil }
    return UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size)
}

// MARK: Topics

@c @implementation
public func bus1_topic_host(_ address: UnsafePointer<CChar>!, _ name: UnsafePointer<CChar>!, _ whenFull: Int32, _ history: UInt32,
                            _ topic: UnsafeMutablePointer<OpaquePointer?>!) -> Int32 {
    guard let name, let topic else { return -EINVAL }
    topic.pointee = nil
    let policies: [Topic.FullRingPolicy] = [.block, .skip, .disconnect]
    guard policies.indices.contains(Int(whenFull)), history <= 1024 else { return -EINVAL }
    return result { () throws(Bus1Error) in
        let hosted = try Topic(hosting: String(cString: name), connecting: peerOptions(address),
                               options: .init(whenFull: policies[Int(whenFull)], history: Int(history)))
        hand(TopicObject(hosted), to: topic)
    }
}

@c @implementation
public func bus1_topic_publish(_ topic: OpaquePointer!, _ data: UnsafeRawPointer!, _ size: Int, _ timeoutNanoseconds: Int64,
                               _ sequence: UnsafeMutablePointer<UInt64>!) -> Int32 {
    guard let topic, let payload = bytes(data, size) else { return -EINVAL }
    let host = Unmanaged<TopicObject>.object(topic).pattern
    return result { () throws(Bus1Error) in
        let receipt = try host.publish(copying: payload, timeout: timeout(timeoutNanoseconds))
        sequence?.pointee = receipt.sequence
    }
}

@c @implementation
public func bus1_topic_serve(_ topic: OpaquePointer!) -> Int32 {
    guard let topic else { return -EINVAL }
    let host = Unmanaged<TopicObject>.object(topic).pattern
    let status = result { () throws(Bus1Error) in try host.serve() }
    return status != 0 ? status : Int32(clamping: host.subscriberCount)
}

@c @implementation
public func bus1_topic_wait_for_subscribers(_ topic: OpaquePointer!, _ count: Int, _ timeoutNanoseconds: Int64) -> Int32 {
    guard let topic, count >= 0 else { return -EINVAL }
    let host = Unmanaged<TopicObject>.object(topic).pattern
    return result { () throws(Bus1Error) in
        try host.waitForSubscribers(count, timeout: timeout(timeoutNanoseconds) ?? .seconds(Int64.max))
    }
}

@c @implementation
public func bus1_topic_flush(_ topic: OpaquePointer!, _ timeoutNanoseconds: Int64) -> Int32 {
    guard let topic else { return -EINVAL }
    let host = Unmanaged<TopicObject>.object(topic).pattern
    return result { () throws(Bus1Error) in try host.flush(timeout: timeout(timeoutNanoseconds)) }
}

@c @implementation
public func bus1_topic_free(_ topic: OpaquePointer!) {
    free(topic, Topic.self)
}

@c @implementation
public func bus1_subscribe(_ address: UnsafePointer<CChar>!, _ name: UnsafePointer<CChar>!, _ timeoutNanoseconds: Int64,
                           _ subscription: UnsafeMutablePointer<OpaquePointer?>!) -> Int32 {
    guard let name, let subscription else { return -EINVAL }
    subscription.pointee = nil
    return result { () throws(Bus1Error) in
        let subscriber = try TopicSubscriber(topic: String(cString: name), connecting: peerOptions(address),
                                             timeout: timeout(timeoutNanoseconds) ?? .seconds(Int64.max))
        hand(SubscriptionObject(subscriber), to: subscription)
    }
}

@c @implementation
public func bus1_subscription_receive(_ subscription: OpaquePointer!, _ timeoutNanoseconds: Int64,
                                      _ message: UnsafeMutablePointer<OpaquePointer?>!, _ sequence: UnsafeMutablePointer<UInt64>!,
                                      _ missedBefore: UnsafeMutablePointer<UInt64>!) -> Int32 {
    guard let subscription, let message else { return -EINVAL }
    message.pointee = nil
    let subscriber = Unmanaged<SubscriptionObject>.object(subscription).pattern
    return result { () throws(Bus1Error) in
        let received = try subscriber.receive(timeout: timeout(timeoutNanoseconds))
        sequence?.pointee = received.sequence
        missedBefore?.pointee = received.missedBefore
        hand(MessageObject(topic: received), to: message)
    }
}

@c @implementation
public func bus1_subscription_missed(_ subscription: OpaquePointer!) -> UInt64 {
    read(subscription, as: SubscriptionObject.self, or: 0) { $0.pattern.missed }
}

@c @implementation
public func bus1_subscription_free(_ subscription: OpaquePointer!) {
    free(subscription, TopicSubscriber.self)  // unsubscribes as it goes
}

// MARK: Request/reply

@c @implementation
public func bus1_service_create(_ address: UnsafePointer<CChar>!, _ name: UnsafePointer<CChar>!,
                                _ service: UnsafeMutablePointer<OpaquePointer?>!) -> Int32 {
    guard let name, let service else { return -EINVAL }
    service.pointee = nil
    return result { () throws(Bus1Error) in
        hand(ServiceObject(try Service(name: String(cString: name), connecting: peerOptions(address))), to: service)
    }
}

@c @implementation
public func bus1_service_next(_ service: OpaquePointer!, _ timeoutNanoseconds: Int64,
                              _ request: UnsafeMutablePointer<OpaquePointer?>!) -> Int32 {
    guard let service, let request else { return -EINVAL }
    request.pointee = nil
    let server = Unmanaged<ServiceObject>.object(service).pattern
    return result { () throws(Bus1Error) in
        hand(MessageObject(request: try server.nextRequest(timeout: timeout(timeoutNanoseconds))), to: request)
    }
}

@c @implementation
public func bus1_service_reply(_ service: OpaquePointer!, _ request: OpaquePointer!, _ data: UnsafeRawPointer!, _ size: Int) -> Int32 {
    guard let service, let request, let payload = bytes(data, size) else { return -EINVAL }
    let server = Unmanaged<ServiceObject>.object(service).pattern
    return answer(Unmanaged<MessageObject>.object(request)) { (call) throws(Bus1Error) in try server.reply(to: call, copying: payload) }
}

@c @implementation
public func bus1_service_fail(_ service: OpaquePointer!, _ request: OpaquePointer!, _ reason: UnsafePointer<CChar>!) -> Int32 {
    guard let service, let request, let reason else { return -EINVAL }
    let server = Unmanaged<ServiceObject>.object(service).pattern
    return answer(Unmanaged<MessageObject>.object(request)) { (call) throws(Bus1Error) in
        try server.fail(call, reason: String(cString: reason))
    }
}

/// Runs `body` with the request `object` holds: -EINVAL if it holds none (a
/// plain message or a topic message, or one released already).
private func answer(_ object: MessageObject, _ body: (borrowing ServiceRequest) throws(Bus1Error) -> Void) -> Int32 {
    switch object.request {
    case .some(let call): result { () throws(Bus1Error) in try body(call) }
    case .none: -EINVAL
    }
}

@c @implementation
public func bus1_service_free(_ service: OpaquePointer!) {
    free(service, Service.self)
}

@c @implementation
public func bus1_client_create(_ address: UnsafePointer<CChar>!, _ name: UnsafePointer<CChar>!, _ timeoutNanoseconds: Int64,
                               _ client: UnsafeMutablePointer<OpaquePointer?>!) -> Int32 {
    guard let name, let client else { return -EINVAL }
    client.pointee = nil
    let (options, service) = (peerOptions(address), String(cString: name))
    let wait = timeout(timeoutNanoseconds) ?? .seconds(Int64.max)
    switch blockOn({ try await ServiceClient(service: service, connecting: options, timeout: wait) }) {
    case .success(let made):
        hand(ClientObject(made), to: client)
        return 0
    case .failure(let error):
        return error.result
    }
}

@c @implementation
public func bus1_client_call(_ client: OpaquePointer!, _ request: UnsafeRawPointer!, _ size: Int, _ timeoutNanoseconds: Int64,
                             _ reply: UnsafeMutablePointer<UnsafeMutableRawPointer?>!, _ replySize: UnsafeMutablePointer<Int>!) -> Int32 {
    guard let client, let reply, let replySize, let request = bytes(request, size) else { return -EINVAL }
    reply.pointee = nil
    replySize.pointee = 0
    // Copied here (the call runs in a task): no slice holds more than 4 GiB, so
    // nothing larger is read.
    guard size <= Int(UInt32.max) else { return -EMSGSIZE }
    let payload = Array(request)
    let caller = Unmanaged<ClientObject>.object(client).pattern
    let wait = timeout(timeoutNanoseconds)
    switch blockOn({ try await caller.call(payload, timeout: wait) }) {
    case .success(let answer):
        let copy = malloc(max(answer.count, 1))!
        answer.withUnsafeBytes { if let base = $0.baseAddress { copy.copyMemory(from: base, byteCount: $0.count) } }
        reply.pointee = copy
        replySize.pointee = answer.count
        return 0
    case .failure(let error):
        return error.result
    }
}

@c @implementation
public func bus1_client_free(_ client: OpaquePointer!) {
    free(client, ServiceClient.self)
}

/// Runs `body` in a task and blocks the calling C thread until it ends: what it
/// returned, or the errno value of what it threw.
private func blockOn<Value: Sendable>(_ body: @escaping @Sendable () async throws -> Value) -> Result<Value, Errno> {
    let outcome = Outcome<Value>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            outcome.result = .success(try await body())
        } catch let error as Bus1Error {
            outcome.result = .failure(Errno(-errnoResult(error)))
        } catch {
            outcome.result = .failure(Errno(ECANCELED))
        }
        done.signal()
    }
    done.wait()
    return outcome.result!
}

/// What ``blockOn(_:)``'s task ended with: written by the task before it
/// signals, read by the blocked thread after (the semaphore orders the two).
private final class Outcome<Value>: @unchecked Sendable {
    var result: Result<Value, Errno>?
}
