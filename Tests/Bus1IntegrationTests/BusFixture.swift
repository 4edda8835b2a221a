import Bus1
import Bus1Coordinator
import Logging

/// An embedded coordinator on a private socket for one test; stopped in `deinit`.
final class BusFixture {
    let embedded: EmbeddedCoordinator
    var address: String { embedded.address }
    var coordinator: Coordinator { embedded.coordinator }

    init(_ label: String = "test", configure: (inout CoordinatorConfiguration) -> Void = { _ in }) throws {
        embedded = try EmbeddedCoordinator.onPrivateSocket(named: label, configure: configure)
    }

    deinit { embedded.stop() }

    /// A peer in this process (its own pool and channels on the real coordinator),
    /// parking when it waits.
    func connect(ringCapacity: Int = 0, poolSize: Int = 0) throws -> Peer {
        var options = PeerOptions(address: address)
        options.ringCapacity = ringCapacity
        options.poolSize = poolSize
        options.waitMode = .park
        return try Peer.connect(options: options)
    }

    /// Spawns the test peer in `role` on this bus.
    func peer(_ role: String, _ settings: [String: String]) throws -> ChildProcess {
        var arguments = [role, "address=\(address)"]
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) { arguments.append("\(key)=\(value)") }
        return try ChildProcess("bus1-test-peer", arguments)
    }
}
