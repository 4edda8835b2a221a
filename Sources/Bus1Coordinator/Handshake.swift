import Bus1Core
import Bus1Linux
import CBus1Wire

/// The handshake: HELLO gets the peer its objects (pool, wake page, clock page,
/// coordinator ring) in WELCOME; POOL_MAPPED seals the pool and makes it `ready`.
extension Coordinator {
    /// HELLO: makes the peer's objects and answers WELCOME. Every object is made
    /// before the record changes, so a refusal (a quota, or `BUS1_ERR_INTERNAL`
    /// with the errno of an object the coordinator could not make) leaves the peer
    /// `connected` with nothing made or charged: it may say HELLO again.
    func welcome(_ peer: PeerRecord, poolSize requested: UInt64, ringCapacity requestedCapacity: UInt32) throws(RequestError) -> Response {
        // The payload area: a power of two, such that the whole pool (header, ledger,
        // payload) is at least what was asked for; never traps (see `pool(forRequest:)`).
        guard let (poolSize, layout) = configuration.pool(forRequest: requested) else { throw .quota(.poolBytes) }
        try tables.accounts.check(.poolBytes, poolSize, for: peer.uid)
        let capacity = requestedCapacity == 0 ? configuration.defaultRingCapacity : Int(requestedCapacity)
        guard CoordinatorConfiguration.isRingCapacity(capacity) else { throw .protocolError }
        guard CoordinatorConfiguration.isRingCapacity(configuration.coordinatorRingCapacity) else { throw .state }
        let pool = try makeSegment(index: 0, size: poolSize, layout: layout, audience: [peer.uid], for: peer)
        let memory = try makeWakePage(for: peer)
        let ring = try makeNotificationRing(for: peer)

        peer.memory = memory
        peer.segments = [pool]
        peer.notifications = ring
        peer.poolSize = poolSize
        tables.accounts.add(.poolBytes, poolSize, to: peer.uid)
        peer.ringCapacity = capacity
        peer.state = .welcomed
        let flags = configuration.ordering == .fifo ? BUS1_WELCOME_FIFO_ONLY : 0
        let welcome = ControlMessage.Welcome(peer: peer.id, poolSize: UInt64(poolSize), ringCapacity: UInt32(capacity), flags: flags,
                                             coordinatorRing: ring.id, coordinatorRingCapacity: UInt32(ring.producer.capacity),
                                             uid: peer.uid, pid: peer.pid)
        return Response(message: .welcome(welcome),
                        fds: [pool.memory.rawValue, memory.wake.rawValue, clockObject.memory.rawValue, ring.memory.rawValue],
                        owners: [peer])
    }

    /// POOL_MAPPED: seals the pool (segment 0) like any segment; the handshake is done.
    func sealPool(of peer: PeerRecord) throws(RequestError) -> Response {
        guard let pool = peer.segments.first else { throw .state }
        try RequestError.passingErrno { () throws(LinuxError) in try pool.seal() }
        peer.state = .ready
        admission.finishHandshake(of: peer)
        return .ok
    }

    /// The peer's wake page (its doorbell and `control_seq`), with the
    /// coordinator's view of it.
    private func makeWakePage(for peer: PeerRecord) throws(RequestError) -> PeerMemory {
        let object = try RequestError.passingErrno { () throws(LinuxError) in
            try sharedObjects.makePage("bus1-wake-\(peer.id)") { WakePage.initialize($0, peer: peer.id) }
        }
        // A page-sized mapping always holds the words: this view cannot refuse.
        guard let page = try? WakePage(object.mapping) else { throw .state }
        return PeerMemory(wake: object.memory, wakeMapping: object.mapping, wakePage: page)
    }

    /// The coordinator's producer end of the peer's coordinator ring. Its id is a
    /// channel id (taken even if the ring cannot be made, as ever).
    private func makeNotificationRing(for peer: PeerRecord) throws(RequestError) -> NotificationRing {
        let id = tables.nextChannelID()
        let geometry = ChannelGeometry(capacity: configuration.coordinatorRingCapacity)
        let object = try RequestError.passingErrno { () throws(LinuxError) in
            try sharedObjects.makeChannel("bus1-notes-\(peer.id)", geometry: geometry, channel: id,
                                    sender: UInt64(BUS1_COORDINATOR_PEER), receiver: peer.id)
        }
        let memory = object.memory
        let view: ChannelMemory
        // The header was written just above with this id and capacity: this view cannot refuse.
        do { view = try ChannelMemory(object.mapping, channel: id, capacity: geometry.capacity) } catch { throw .state }
        return NotificationRing(id: id, memory: memory, producer: SubmissionProducer(view))
    }
}
