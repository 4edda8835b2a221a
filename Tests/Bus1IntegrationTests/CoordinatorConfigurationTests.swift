import Bus1Coordinator
import Bus1Core
import Bus1IntegrationSupport
import Bus1Linux
import CBus1Wire
import Glibc
import Testing

/// `CoordinatorConfiguration.validate()` as every coordinator applies it, and a
/// HELLO's pool sizing, which must refuse, never trap, whatever is asked.
@Suite("Coordinator configuration", .timeLimit(.minutes(10)))
struct CoordinatorConfigurationTests {
    @Test("An embedded coordinator refuses an out-of-range configuration before binding")
    func embeddedValidates() throws {
        #expect(throws: CoordinatorError.self) {
            _ = try EmbeddedCoordinator.onPrivateSocket(named: "invalid") { $0.defaultPoolDataSize = 1024 }
        }
        do {
            _ = try EmbeddedCoordinator.onPrivateSocket(named: "invalid") { $0.coordinatorRingCapacity = 3 }
            Issue.record("a coordinator ring of 3 entries was accepted")
        } catch {
            guard case .invalidConfiguration(let problem) = error else { Issue.record("\(error)"); return }
            #expect(problem.field == .coordinatorRingCapacity)
        }
        var configuration = CoordinatorConfiguration(address: "/tmp/unused")
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.maximumPoolDataSize = CoordinatorConfiguration.poolDataSizeLimits.upperBound
        #expect(throws: Never.self) { try configuration.validate() }
        #expect(CoordinatorConfiguration.poolDataSizeLimits == Int(BUS1_POOL_DATA_MIN)...(1 << 47))
    }

    @Test("HELLO asking for any pool size gets a pool or a typed quota error, and the coordinator keeps serving",
          arguments: [UInt64.max, UInt64(1) << 63, UInt64(1) << 48, bus1_pool_size_for(UInt64(1) << 47) + 1])
    func helloNeverTraps(requested: UInt64) throws {
        let bus = try BusFixture("hello-sizes") { $0.maximumPoolDataSize = CoordinatorConfiguration.poolDataSizeLimits.upperBound }
        let connection = try RawControlConnection(address: bus.address)
        func ask(_ message: ControlMessage, id: UInt32) throws -> ControlMessage {
            try connection.askClosingDescriptors(message, id: id).reply
        }
        #expect(try ask(.hello(poolSize: requested, ringCapacity: 0), id: 1)
                == .error(code: BUS1_ERR_QUOTA.rawValue, detail: BUS1_QUOTA_POOL_BYTES.rawValue))
        // Still connected and served: a small pool now.
        guard case .welcome(let welcome) = try ask(.hello(poolSize: 1, ringCapacity: 0), id: 2) else {
            Issue.record("no welcome after a refused HELLO"); return
        }
        #expect(welcome.poolSize == bus1_pool_size_for(UInt64(BUS1_POOL_DATA_MIN)))
    }
}
