import Bus1
import Bus1Coordinator
import Logging

/// An embedded coordinator on a private socket for one test; stopped in `deinit`.
package final class BusFixture {
    package let embedded: EmbeddedCoordinator
    package var address: String { embedded.address }
    package var coordinator: Coordinator { embedded.coordinator }

    package init(_ label: String = "test", configure: (inout CoordinatorConfiguration) -> Void = { _ in }) throws {
        embedded = try EmbeddedCoordinator.onPrivateSocket(named: label, configure: configure)
    }

    deinit { embedded.stop() }

    /// A peer in this process (its own pool and channels on the real coordinator),
    /// parking when it waits.
    package func connect(ringCapacity: Int = 0, poolSize: Int = 0) throws -> Peer {
        var options = PeerOptions(address: address)
        options.ringCapacity = ringCapacity
        options.poolSize = poolSize
        options.waitMode = .park
        return try Peer.connect(options: options)
    }
}
