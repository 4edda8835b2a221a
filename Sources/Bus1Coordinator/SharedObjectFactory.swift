import Bus1Core
import Bus1Linux
import CBus1Wire
import Glibc
import Synchronization

/// Where an injected failure of a shared object strikes (tests only: see
/// ``Coordinator/failSharedObject(skipping:at:errno:)``).
@_spi(Testing)
public enum SharedObjectStep: Sendable {
    /// memfd_create, before anything is made.
    case create
    /// mmap, once the memfd exists and is sealed (it is closed again).
    case map
}

/// A memfd the coordinator made, and its own writable mapping of it.
struct SharedObject: ~Copyable {
    let memory: FileDescriptor
    let mapping: Mapping

    /// The memfd alone; the coordinator's mapping is unmapped here.
    consuming func takeMemory() -> FileDescriptor { memory }
}

/// Makes every shared object of the bus (clock page, wake pages, coordinator
/// rings, channels, pool segments, snapshots) the one way: a close-on-exec memfd
/// of its final size, sealed against resizing and its header written by the
/// coordinator before any peer can see it.
///
/// Every step that can fail (memfd_create at the fd limit, ftruncate, the seals,
/// mmap) throws the `LinuxError` naming it and its errno; a request that needed
/// the object passes that errno to its peer as `BUS1_ERR_INTERNAL`
/// (``RequestError/system(_:)``).
///
/// Tests can make an object fail as the kernel would (``failNext(skipping:at:errno:)``):
/// the only reliable way to reach those refusals in a process that shares its fd
/// limit with the test.
final class SharedObjectFactory: Sendable {
    /// Seals of an object whose size and seals never change again.
    static let fixed: MemFD.Seals = [.shrink, .grow, .seal]

    private let injected = Mutex<InjectedFailure?>(nil)

    /// A memfd of `size` bytes named `name`, sealed with `seals`, and the
    /// coordinator's writable mapping of its first `mappedBytes` (all of it by
    /// default) on which `initialize` has written the header.
    func make(_ name: String, size: Int, seals: MemFD.Seals = fixed, mappedBytes: Int? = nil,
              initialize: (borrowing Mapping) -> Void) throws(LinuxError) -> SharedObject {
        try failIfInjected(at: .create)
        let memory = try MemFD.create(name: name, size: size)
        try MemFD.addSeals(seals, to: memory)
        try failIfInjected(at: .map)
        let mapping = try Mapping(memory, count: mappedBytes ?? size, writable: true)
        initialize(mapping)
        return SharedObject(memory: memory, mapping: mapping)
    }

    /// A one-page object (clock or wake page).
    func makePage(_ name: String, initialize: (borrowing Mapping) -> Void) throws(LinuxError) -> SharedObject {
        try make(name, size: Int(BUS1_PAGE_SIZE), initialize: initialize)
    }

    /// A channel memfd (a data channel or a coordinator ring) of `geometry`, its
    /// header naming `channel`, `sender` and `receiver`.
    func makeChannel(_ name: String, geometry: ChannelGeometry, channel: UInt64, sender: UInt64,
                     receiver: UInt64) throws(LinuxError) -> SharedObject {
        try make(name, size: geometry.size) { geometry.initialize($0, channel: channel, sender: sender, receiver: receiver) }
    }

    /// A memfd whose `size` bytes `write` fills once, then sealed against every
    /// change (`F_SEAL_WRITE`, which needs the coordinator's writable mapping gone
    /// first): what a reader maps can never move under it.
    func makeImmutable(_ name: String, size: Int, write: (borrowing Mapping) -> Void) throws(LinuxError) -> FileDescriptor {
        let memory = try make(name, size: size, seals: [.shrink, .grow], initialize: write).takeMemory()
        try MemFD.addSeals([.write, .seal], to: memory)
        return memory
    }

    // MARK: Failure injection (tests)

    typealias Step = SharedObjectStep

    private struct InjectedFailure {
        /// Objects still to be made whole before the one that fails.
        var skipping: Int
        let step: Step
        let errno: Int32
        /// The object being made is the one to fail (at `map`).
        var striking = false
    }

    /// Makes the object after the next `skipping` ones fail at `step` with
    /// `errno`, once. Safe from any thread.
    func failNext(skipping: Int = 0, at step: Step, errno: Int32) {
        injected.withLock { $0 = InjectedFailure(skipping: skipping, step: step, errno: errno) }
    }

    private func failIfInjected(at step: Step) throws(LinuxError) {
        let errno: Int32? = injected.withLock { failure in
            guard var planned = failure else { return nil }
            switch step {
            case .create where planned.skipping > 0:
                planned.skipping -= 1
                failure = planned
                return nil
            case .create where planned.step == .map:
                planned.striking = true
                failure = planned
                return nil
            case .map where !planned.striking:
                return nil
            case .create, .map:
                failure = nil
                return planned.errno
            }
        }
        guard let errno else { return }
        throw LinuxError(step == .create ? "memfd_create" : "mmap", code: errno)
    }
}
