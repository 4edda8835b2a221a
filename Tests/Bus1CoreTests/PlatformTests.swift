import Bus1Core
import Bus1Linux
import Bus1TestSupport
import Glibc
import Testing

@Suite("memfd seals", .timeLimit(.minutes(10)))
struct SealTests {
    @Test("After F_SEAL_FUTURE_WRITE: the owner's mapping stays writable; new writable maps, writes and resizes fail")
    func futureWrite() throws {
        let fd = try MemFD.create(name: "seal-test", size: 1 << 16)
        try MemFD.addSeals([.shrink, .grow], to: fd)
        let owner = try Mapping(fd, count: 1 << 16, writable: true)
        try MemFD.addSeals([.futureWrite, .seal], to: fd)
        owner.base.storeBytes(of: 0xAB, as: UInt8.self)  // still writable

        #expect(throws: LinuxError.self) { _ = try Mapping(fd, count: 1 << 16, writable: true) }
        let readOnly = try MemFD.reopen(fd, writable: false)
        let view = try Mapping(readOnly, count: 1 << 16, writable: false)
        #expect(view.bytes[0] == 0xAB)
        #expect(mprotect(view.base, 4096, PROT_READ | PROT_WRITE) != 0)
        var byte: UInt8 = 1
        #expect(pwrite(fd.rawValue, &byte, 1, 0) < 0 && errno == EPERM)
        #expect(ftruncate(fd.rawValue, 1 << 10) != 0)
        #expect(throws: LinuxError.self) { try MemFD.addSeals([.write], to: fd) }
    }
}

/// One conformance suite for every parking mechanism: the same checks
/// (``ParkerChecks``) for each backend, the io_uring one only where the kernel
/// has it (probed, never faked: elsewhere it is skipped, saying why).
@Suite("Parkers", .timeLimit(.minutes(10)))
struct ParkerConformance {
    /// Why an io_uring parker cannot be made here (no io_uring, or no futex
    /// opcodes), or nil if it can.
    static let ioUringUnavailable: String? = {
        do { _ = try ParkBackend.ioUring.makeParker(); return nil } catch { return "\(error)" }
    }()

    @Suite("futex")
    struct FutexParker {
        @Test("A park with a stale expected value returns at once")
        func staleValue() throws { try ParkerChecks.staleValue(.futex) }

        @Test("A park times out when nobody wakes it")
        func timeout() throws { try ParkerChecks.timeout(.futex) }

        @Test("A wake from another thread ends the park")
        func wake() throws { try ParkerChecks.wake(.futex) }
    }

    @Suite("io_uring", .enabled(if: ioUringUnavailable == nil, Comment(rawValue: ioUringUnavailable ?? "")))
    struct IOUringParker {
        @Test("A park with a stale expected value returns at once")
        func staleValue() throws { try ParkerChecks.staleValue(.ioUring) }

        @Test("A park times out when nobody wakes it")
        func timeout() throws { try ParkerChecks.timeout(.ioUring) }

        @Test("A wake from another thread ends the park")
        func wake() throws { try ParkerChecks.wake(.ioUring) }
    }
}

/// What every parking backend must do.
enum ParkerChecks {
    static func staleValue(_ backend: ParkBackend) throws {
        try withParker(backend, word: 5) { parker, word throws in
            #expect(try parker.park(word, expected: 4, timeoutNanoseconds: 5_000_000_000) == .woken)
        }
    }

    static func timeout(_ backend: ParkBackend) throws {
        try withParker(backend, word: 0) { parker, word throws in
            #expect(try parker.park(word, expected: 0, timeoutNanoseconds: 20_000_000) == .timedOut)
        }
    }

    /// The waker changes the word and wakes only once this thread is asleep in the
    /// park: a wake before the park would only test the stale-value path.
    static func wake(_ backend: ParkBackend) throws {
        try withParker(backend, word: 0) { parker, word throws in
            let parking = currentThreadID()
            nonisolated(unsafe) let shared = word
            let waker = startThread {
                _ = waitUntil(timeoutSeconds: 10) { threadIsSleeping(parking) }
                UnsafeMutableRawPointer(shared).storeBytes(of: 1, as: UInt32.self)
                _ = try? Futex.wake(shared)
            }
            var result = Futex.WaitResult.timedOut
            for _ in 0..<100 where word.pointee == 0 {  // spurious returns are allowed
                result = try parker.park(word, expected: 0, timeoutNanoseconds: 10_000_000_000)
            }
            pthread_join(waker, nil)
            #expect(result == .woken)
        }
    }

    /// Runs `body` with a parker of `backend` and a word holding `value` to park on.
    private static func withParker(_ backend: ParkBackend, word value: UInt32,
                                   _ body: (any Parker, UnsafeMutablePointer<UInt32>) throws -> Void) throws {
        let parker = try backend.makeParker().parker
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = value
        try body(parker, word)
    }
}
