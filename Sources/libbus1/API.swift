import Bus1
import Bus1Linux
import CBus1API
import Glibc

// bus1.h, implemented: each function is `@c @implementation`, so the compiler
// checks it against the header's declaration. Arguments C can get wrong (NULL,
// a disconnected peer, a size out of range, an unknown handle) are refused with
// -EINVAL, -ENOTCONN, -EMSGSIZE or -EBADF before anything is touched.

// MARK: Version and errors

/// A C string made once and never freed or written: safe to share.
private struct StaticText: @unchecked Sendable {
    let pointer: UnsafePointer<CChar>
    init(_ text: String) { pointer = UnsafePointer(strdup(text)!) }
}

private let versionText = StaticText(Bus1Version.string)
private let successText = StaticText("Success")
private let notAnErrorText = StaticText("Not an error code (bus1 errors are negative errno values)")

@c @implementation
public func bus1_version() -> UnsafePointer<CChar>! {
    versionText.pointer
}

@c @implementation
public func bus1_strerror(_ error: Int32) -> UnsafePointer<CChar>! {
    guard error < 0, error != Int32.min else { return error == 0 ? successText.pointer : notAnErrorText.pointer }
    return UnsafePointer(strerror(-error))
}

// MARK: Connecting

@c @implementation
public func bus1_connect(_ address: UnsafePointer<CChar>!, _ peer: UnsafeMutablePointer<OpaquePointer?>!) -> Int32 {
    guard let peer else { return -EINVAL }
    peer.pointee = nil
    var options = PeerOptions(address: address.map { String(cString: $0) })
    if options.address?.isEmpty == true { options.address = nil }
    do throws(Bus1Error) {
        let connected = try Peer.connect(options: options)
        peer.pointee = OpaquePointer(Unmanaged.passRetained(PeerObject(connected)).toOpaque())
        return 0
    } catch {
        return errnoResult(error)
    }
}

@c @implementation
public func bus1_disconnect(_ peer: OpaquePointer!) -> Int32 {
    guard let peer else { return -EINVAL }
    let object = Unmanaged<PeerObject>.object(peer)
    guard let connected = object.peer else { return -ENOTCONN }
    connected.disconnect()
    object.peer = nil
    return 0
}

@c @implementation
public func bus1_peer_free(_ peer: OpaquePointer!) {
    guard let peer else { return }
    let object = Unmanaged<PeerObject>.fromOpaque(UnsafeRawPointer(peer)).takeRetainedValue()
    object.peer?.disconnect()
    object.peer = nil
}

@c @implementation
public func bus1_peer_id(_ peer: OpaquePointer!) -> UInt64 {
    guard let peer, let connected = Unmanaged<PeerObject>.object(peer).peer else { return 0 }
    return connected.id
}

// MARK: Nodes, names, handles

@c @implementation
public func bus1_node_create(_ peer: OpaquePointer!, _ node: UnsafeMutablePointer<UInt64>!) -> Int32 {
    guard let node else { return -EINVAL }
    return withPeer(peer) { (peer) throws(Bus1Error) in node.pointee = try peer.createNode().id }
}

@c @implementation
public func bus1_name_publish(_ peer: OpaquePointer!, _ node: UInt64, _ name: UnsafePointer<CChar>!) -> Int32 {
    guard let name else { return -EINVAL }
    return withPeer(peer) { (peer) throws(Bus1Error) in try peer.publish(Handle(id: node), as: String(cString: name)) }
}

@c @implementation
public func bus1_name_lookup(_ peer: OpaquePointer!, _ name: UnsafePointer<CChar>!, _ timeoutNanoseconds: Int64,
                             _ handle: UnsafeMutablePointer<UInt64>!) -> Int32 {
    guard let name, let handle else { return -EINVAL }
    return withPeer(peer) { (peer) throws(Bus1Error) in
        let text = String(cString: name)
        let found = timeoutNanoseconds == 0 ? try peer.lookup(text) : try peer.lookup(text, timeout: timeout(timeoutNanoseconds) ?? .seconds(Int64.max))
        handle.pointee = found.id
    }
}

@c @implementation
public func bus1_handle_release(_ peer: OpaquePointer!, _ handle: UInt64) -> Int32 {
    withPeer(peer) { (peer) throws(Bus1Error) in try peer.release(Handle(id: handle)) }
}

@c @implementation
public func bus1_node_destroy(_ peer: OpaquePointer!, _ nodes: UnsafePointer<UInt64>!, _ count: Int) -> Int32 {
    guard let nodes, count > 0 else { return -EINVAL }
    guard count <= 32 else { return -E2BIG }  // before reading any: `count` may lie
    return withPeer(peer) { (peer) throws(Bus1Error) in
        try peer.destroy(UnsafeBufferPointer(start: nodes, count: count).map { Handle(id: $0) })
    }
}

// MARK: Loans and sending

@c @implementation
public func bus1_loan_create(_ peer: OpaquePointer!, _ size: Int, _ reader: UInt64, _ timeoutNanoseconds: Int64,
                             _ loan: UnsafeMutablePointer<OpaquePointer?>!) -> Int32 {
    guard let loan else { return -EINVAL }
    loan.pointee = nil
    guard size >= 0 else { return -EMSGSIZE }
    return withPeer(peer) { (peer) throws(Bus1Error) in
        let wait: WaitMode? = timeoutNanoseconds == 0 ? nil : defaultWait
        let made = reader == 0 ? try peer.loan(size, wait: wait, timeout: timeout(timeoutNanoseconds))
                               : try peer.loan(size, for: Handle(id: reader), wait: wait, timeout: timeout(timeoutNanoseconds))
        loan.pointee = OpaquePointer(Unmanaged.passRetained(LoanObject(made, owner: peer)).toOpaque())
    }
}

@c @implementation
public func bus1_loan_data(_ loan: OpaquePointer!) -> UnsafeMutableRawPointer! {
    read(loan, as: LoanObject.self, or: nil) { $0.data }
}

@c @implementation
public func bus1_loan_capacity(_ loan: OpaquePointer!) -> Int {
    read(loan, as: LoanObject.self, or: 0) { $0.capacity }
}

@c @implementation
public func bus1_loan_set_size(_ loan: OpaquePointer!, _ size: Int) -> Int32 {
    guard let loan else { return -EINVAL }
    let object = Unmanaged<LoanObject>.object(loan)
    guard size >= 0, size <= object.capacity else { return -EMSGSIZE }
    object.loan?.count = size
    return 0
}

@c @implementation
public func bus1_loan_free(_ loan: OpaquePointer!) {
    guard let loan else { return }
    Unmanaged<LoanObject>.fromOpaque(UnsafeRawPointer(loan)).release()  // the Loan inside goes back to its pool
}

@c @implementation
public func bus1_send(_ peer: OpaquePointer!, _ loan: OpaquePointer!, _ handle: UInt64, _ timeoutNanoseconds: Int64) -> Int32 {
    guard let taken = take(loan) else { return -EINVAL }
    if let refusal = wrongPeer(taken, peer) { return refusal }
    return withPeer(peer) { (peer) throws(Bus1Error) in
        let wait: WaitMode? = timeoutNanoseconds == 0 ? nil : defaultWait
        try peer.send(taken.loan.take()!, to: Handle(id: handle), wait: wait, timeout: timeout(timeoutNanoseconds))
    }
}

@c @implementation
public func bus1_try_send(_ peer: OpaquePointer!, _ loan: OpaquePointer!, _ handle: UInt64) -> Int32 {
    guard let loan else { return -EINVAL }
    let object = Unmanaged<LoanObject>.object(loan)
    guard object.loan != nil else { return -EINVAL }
    if let refusal = wrongPeer(object, peer) { return refusal }  // the loan stays the caller's
    var result: Int32 = 0
    let status = withPeer(peer) { (peer) throws(Bus1Error) in
        if let back = try peer.trySend(object.loan.take()!, to: Handle(id: handle)) {
            object.loan = consume back  // the ring is full: still the caller's
            result = -EAGAIN
        }
    }
    if status != 0 || result == 0 { Unmanaged<LoanObject>.fromOpaque(UnsafeRawPointer(loan)).release() }
    return status != 0 ? status : result
}

@c @implementation
public func bus1_send_multicast(_ peer: OpaquePointer!, _ loan: OpaquePointer!, _ handles: UnsafePointer<UInt64>!, _ count: Int,
                                _ timeoutNanoseconds: Int64) -> Int32 {
    guard let taken = take(loan) else { return -EINVAL }
    guard let handles, count > 0, count <= maximumMulticast else { return -EINVAL }  // before reading any
    if let refusal = wrongPeer(taken, peer) { return refusal }
    return withPeer(peer) { (peer) throws(Bus1Error) in
        let destinations = UnsafeBufferPointer(start: handles, count: count).map { Handle(id: $0) }
        let wait: WaitMode? = timeoutNanoseconds == 0 ? nil : defaultWait
        try peer.send(taken.loan.take()!, to: destinations, wait: wait, timeout: timeout(timeoutNanoseconds))
    }
}

@c @implementation
public func bus1_send_attached(_ peer: OpaquePointer!, _ loan: OpaquePointer!, _ handle: UInt64, _ handles: UnsafePointer<UInt64>!,
                               _ handleCount: Int, _ fds: UnsafePointer<Int32>!, _ fdCount: Int, _ timeoutNanoseconds: Int64) -> Int32 {
    guard let taken = take(loan) else { return -EINVAL }
    if let refusal = wrongPeer(taken, peer) { return refusal }
    guard handleCount >= 0, fdCount >= 0, handleCount == 0 || handles != nil, fdCount == 0 || fds != nil else { return -EINVAL }
    guard handleCount <= 16, fdCount <= 4 else { return -E2BIG }
    return withPeer(peer) { (peer) throws(Bus1Error) in
        let passed = handleCount == 0 ? [] : UnsafeBufferPointer(start: handles, count: handleCount).map { Handle(id: $0) }
        let descriptors = fdCount == 0 ? [] : Array(UnsafeBufferPointer(start: fds, count: fdCount))
        let wait: WaitMode? = timeoutNanoseconds == 0 ? nil : defaultWait
        try peer.send(taken.loan.take()!, to: Handle(id: handle), attaching: passed, fileDescriptors: descriptors, wait: wait,
                      timeout: timeout(timeoutNanoseconds))
    }
}

/// -EINVAL if `loan` did not come from the (connected) peer `peer`: a slice
/// of one pool cannot be sent through another; nil otherwise (a NULL or
/// disconnected peer is the send's own error to report).
private func wrongPeer(_ loan: LoanObject, _ peer: OpaquePointer?) -> Int32? {
    guard case .success(let sender) = connected(peer), loan.owner != ObjectIdentifier(sender) else { return nil }
    return -EINVAL
}

/// Takes a `bus1_loan` over from C (a send owns it now: dropping the object gives
/// the loan back to the pool if the send does not take it); nil for NULL or a loan
/// already sent.
private func take(_ loan: OpaquePointer?) -> LoanObject? {
    guard let loan else { return nil }
    let object = Unmanaged<LoanObject>.fromOpaque(UnsafeRawPointer(loan)).takeRetainedValue()
    return object.loan == nil ? nil : object
}

// MARK: Receiving

@c @implementation
public func bus1_receive(_ peer: OpaquePointer!, _ mode: Int32, _ timeoutNanoseconds: Int64,
                         _ message: UnsafeMutablePointer<OpaquePointer?>!) -> Int32 {
    guard let message else { return -EINVAL }
    message.pointee = nil
    guard (0...3).contains(mode) else { return -EINVAL }
    var received: MessageObject?
    let status = withPeer(peer) { (peer) throws(Bus1Error) in
        if timeoutNanoseconds == 0 {
            if let ready = try peer.tryReceive() { received = MessageObject(ready) }
        } else {
            received = MessageObject(try peer.receive(mode: waitMode(mode, default: defaultWait), timeout: timeout(timeoutNanoseconds)))
        }
    }
    guard status == 0 else { return status }
    guard let received else { return -EAGAIN }  // timeout 0 and nothing ready
    message.pointee = OpaquePointer(Unmanaged.passRetained(received).toOpaque())
    return 0
}

@c @implementation
public func bus1_message_data(_ message: OpaquePointer!) -> UnsafeRawPointer! {
    read(message, as: MessageObject.self, or: nil) { $0.data }
}

@c @implementation
public func bus1_message_size(_ message: OpaquePointer!) -> Int {
    read(message, as: MessageObject.self, or: 0) { $0.size }
}

@c @implementation
public func bus1_message_kind(_ message: OpaquePointer!) -> Int32 {
    read(message, as: MessageObject.self, or: -EINVAL) { $0.kind }
}

@c @implementation
public func bus1_message_ticket(_ message: OpaquePointer!) -> UInt64 {
    read(message, as: MessageObject.self, or: 0) { $0.ticket }
}

@c @implementation
public func bus1_message_node(_ message: OpaquePointer!) -> UInt64 {
    read(message, as: MessageObject.self, or: 0) { $0.node }
}

@c @implementation
public func bus1_message_sender(_ message: OpaquePointer!) -> UInt64 {
    read(message, as: MessageObject.self, or: 0) { $0.sender }
}

@c @implementation
public func bus1_message_credentials(_ message: OpaquePointer!, _ uid: UnsafeMutablePointer<UInt32>!,
                                     _ pid: UnsafeMutablePointer<Int32>!) -> Int32 {
    guard let message, let uid, let pid else { return -EINVAL }
    guard let credentials = Unmanaged<MessageObject>.object(message).credentials else { return -ENODATA }
    uid.pointee = credentials.uid
    pid.pointee = credentials.pid
    return 0
}

@c @implementation
public func bus1_message_handle_count(_ message: OpaquePointer!) -> Int {
    read(message, as: MessageObject.self, or: 0) { $0.handles.count }
}

@c @implementation
public func bus1_message_handle(_ message: OpaquePointer!, _ index: Int) -> UInt64 {
    guard let message else { return 0 }
    let handles = Unmanaged<MessageObject>.object(message).handles
    guard handles.indices.contains(index), handles[index].isValid else { return 0 }
    return handles[index].id
}

@c @implementation
public func bus1_message_take_fds(_ message: OpaquePointer!, _ fds: UnsafeMutablePointer<Int32>!, _ capacity: Int) -> Int32 {
    guard let message, capacity >= 0, capacity == 0 || fds != nil else { return -EINVAL }
    let object = Unmanaged<MessageObject>.object(message)
    guard let attachment = object.message?.attachment else { return 0 }
    let taken = attachment.takeFileDescriptors()
    for (i, fd) in taken.enumerated() {
        if i < capacity { fds[i] = fd } else { close(fd) }  // more than the caller has room for: closed, not leaked
    }
    return Int32(min(taken.count, capacity))
}

@c @implementation
public func bus1_message_release(_ message: OpaquePointer!) {
    guard let message else { return }
    Unmanaged<MessageObject>.fromOpaque(UnsafeRawPointer(message)).release()  // the slice goes back to its sender
}

// MARK: Event loops and statistics

@c @implementation
public func bus1_readiness_fd(_ peer: OpaquePointer!) -> Int32 {
    var fd: Int32 = -1
    let status = withPeer(peer) { (peer) throws(Bus1Error) in fd = try peer.readinessDescriptor() }
    return status != 0 ? status : fd
}

@c @implementation
public func bus1_readiness_arm(_ peer: OpaquePointer!) -> Int32 {
    var ready = false
    let status = withPeer(peer) { (peer) throws(Bus1Error) in ready = try peer.armReadiness() }
    return status != 0 ? status : ready ? 1 : 0
}

@c @implementation
public func bus1_peer_statistics(_ peer: OpaquePointer!, _ statistics: UnsafeMutablePointer<bus1_statistics>!) -> Int32 {
    guard let statistics else { return -EINVAL }
    return withPeer(peer) { (peer) throws(Bus1Error) in
        let s = peer.currentStatistics
        statistics.pointee = bus1_statistics(
            messages_sent: UInt64(s.messagesSent), messages_received: UInt64(s.messagesReceived),
            pool_bytes_in_use: UInt64(s.poolBytesInUse), slices_in_use: UInt64(s.slicesInUse), parks: UInt64(s.parks),
            credit_waits: UInt64(s.creditWaits), loan_waits: UInt64(s.loanWaits), messages_abandoned: UInt64(s.messagesAbandoned),
            violations_detected: UInt64(s.violationsDetected))
    }
}
