import Bus1Core
import Bus1Linux
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

/// One conformance suite for every parking mechanism.
@Suite("Parkers", .timeLimit(.minutes(10)))
struct ParkerConformance {
    static let backends: [ParkBackend] = [.futex, .ioUring]

    func makeParker(_ backend: ParkBackend) throws -> (any Parker)? {
        do { return try backend.makeParker().parker } catch {
            print("skipping \(backend.rawValue) parker: \(error)")  // probed, not faked
            return nil
        }
    }

    @Test("A park with a stale expected value returns at once", arguments: backends)
    func staleValue(backend: ParkBackend) throws {
        guard let parker = try makeParker(backend) else { return }
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = 5
        #expect(try parker.park(word, expected: 4, timeoutNanoseconds: 5_000_000_000) == .woken)
    }

    @Test("A park times out when nobody wakes it", arguments: backends)
    func timeout(backend: ParkBackend) throws {
        guard let parker = try makeParker(backend) else { return }
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = 0
        #expect(try parker.park(word, expected: 0, timeoutNanoseconds: 20_000_000) == .timedOut)
    }

    @Test("A wake from another thread ends the park", arguments: backends)
    func wake(backend: ParkBackend) throws {
        guard let parker = try makeParker(backend) else { return }
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = 0
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let w = raw!.assumingMemoryBound(to: UInt32.self)
            usleep(20_000)
            (UnsafeMutableRawPointer(w)).storeBytes(of: 1, as: UInt32.self)
            _ = try? Futex.wake(w)
            return nil
        }, word)
        var result = Futex.WaitResult.timedOut
        for _ in 0..<100 where word.pointee == 0 {  // spurious returns are allowed
            result = try parker.park(word, expected: 0, timeoutNanoseconds: 10_000_000_000)
        }
        pthread_join(thread, nil)
        #expect(result == .woken)
    }
}
