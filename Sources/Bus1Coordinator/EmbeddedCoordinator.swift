import Bus1Linux
import Glibc
import Logging

/// A coordinator running on a thread of the calling process: what tests,
/// examples and benchmarks start when no `bus1d` runs. Same code as `bus1d`.
/// Sendable: `failure` is written by the coordinator's thread before it ends and
/// read only after `pthread_join` (which orders the two); the rest is immutable.
public final class EmbeddedCoordinator: @unchecked Sendable {
    public let coordinator: Coordinator
    private var thread: pthread_t?
    private var failure: CoordinatorError?

    /// Binds `configuration.address` and starts serving on a new thread.
    public init(configuration: CoordinatorConfiguration, logger: Logger = Logger(label: "bus1.embedded")) throws(CoordinatorError) {
        coordinator = try Coordinator(configuration: configuration, logger: logger)
        do throws(LinuxError) {
            thread = try PlatformThread.start { [self] in
                do throws(CoordinatorError) { try coordinator.run() } catch { failure = error }
            }
        } catch {
            throw .system(error)
        }
    }

    /// A coordinator on a fresh private socket path under `/tmp`.
    public static func onPrivateSocket(
        named label: String = "embedded", logger: Logger = Logger(label: "bus1.embedded"),
        configure: (inout CoordinatorConfiguration) -> Void = { _ in }
    ) throws(CoordinatorError) -> EmbeddedCoordinator {
        var template = Array("/tmp/bus1-\(label)-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw .system(LinuxError("mkdtemp", code: errno)) }
        let directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var configuration = CoordinatorConfiguration(address: directory + "/bus")
        configure(&configuration)
        return try EmbeddedCoordinator(configuration: configuration, logger: logger)
    }

    public var address: String { coordinator.configuration.address }

    /// Stops the loop and joins its thread; idempotent.
    public func stop() {
        guard let thread else { return }
        coordinator.stop()
        pthread_join(thread, nil)
        self.thread = nil
        if let slash = address.lastIndex(of: "/") { rmdir(String(address[..<slash])) }
    }

    deinit {
        stop()
    }
}
