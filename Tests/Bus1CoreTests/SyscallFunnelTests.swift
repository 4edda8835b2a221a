import Bus1Core
import Bus1Linux
import CBus1Linux
import Glibc
import Synchronization
import Testing

/// The syscall funnel (Bus1Linux/LinuxError.swift) is the one place `EINTR` is
/// retried: first its rules on scripted results, then real signals delivered to
/// threads blocked in a SEQPACKET receive, a futex wait and an io_uring park.
@Suite("Syscall funnel", .serialized, .timeLimit(.minutes(10)))
struct SyscallFunnelTests {
    @Test("The shim funnel retries EINTR, returns tolerated codes and throws the rest with the call's name")
    func shimFunnelRules() throws {
        var script: [Int32] = [-EINTR, -EINTR, 7]
        var calls = 0
        let value = try retryingOnInterrupt("scripted") { calls += 1; return script.removeFirst() }
        #expect(value == 7 && calls == 3)

        script = [-EINTR, -EAGAIN]
        #expect(try retryingOnInterrupt("scripted", tolerating: [EAGAIN]) { script.removeFirst() } == -EAGAIN)

        script = [-EINTR, -EPERM]
        #expect(throws: LinuxError("scripted", code: EPERM)) {
            try retryingOnInterrupt("scripted", tolerating: [EAGAIN]) { script.removeFirst() }
        }
    }

    @Test("The libc funnel retries EINTR read from errno and throws the rest with the call's name")
    func libcFunnelRules() throws {
        var calls = 0
        let value = try retryingLibcOnInterrupt("scripted") { () -> Int32 in
            calls += 1
            if calls < 3 { errno = EINTR; return -1 }
            return 3
        }
        #expect(value == 3 && calls == 3)
        #expect(try retryingLibcOnInterrupt("fcntl(F_GETFD)", tolerating: [EBADF]) { fcntl(-1, F_GETFD) } == -EBADF)
        #expect(throws: LinuxError("fcntl(F_GETFD)", code: EBADF)) {
            try retryingLibcOnInterrupt("fcntl(F_GETFD)") { fcntl(-1, F_GETFD) }
        }
    }

    @Test("A shim call returns -errno and leaves the caller's errno alone")
    func shimKeepsErrno() {
        errno = EDOM
        #expect(b1l_get_seals(-1) == -EBADF)
        #expect(errno == EDOM)
        errno = EDOM
        #expect(b1l_pidfd_open(-1) == -EINVAL)  // through syscall(), which sets errno
        #expect(errno == EDOM)
    }

    @Test("A blocking SEQPACKET receive interrupted by signals still gets the datagram sent after them")
    func receiveSurvivesSignals() throws {
        var pair: [Int32] = [-1, -1]
        try retryingLibcOnInterrupt("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair)
        }
        defer { close(pair[0]); close(pair[1]) }
        let receiver = pair[1]
        let target = SignalledThread {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
            defer { buffer.deallocate() }
            do {
                guard let datagram = try SeqPacket.receive(receiver, into: buffer) else { return "nil datagram" }
                return "received \(Array(buffer.prefix(datagram.count)))"
            } catch {
                return "threw \(error)"
            }
        }
        for _ in 0..<3 {
            #expect(target.waitUntilBlocked(inSyscall: Syscall.recvmsg))
            target.interrupt()
        }
        #expect(target.waitUntilBlocked(inSyscall: Syscall.recvmsg))
        try SeqPacket.send(pair[0], [1, 2, 3])
        #expect(target.join() == "received [1, 2, 3]")
        #expect(target.signalsHandled >= 3)
    }

    @Test("A futex wait interrupted by signals returns at its deadline, timed out, not early or late")
    func futexWaitKeepsDeadline() {
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = 0
        let target = SignalledThread {
            do { return "\(try Futex.wait(word, expected: 0, timeoutNanoseconds: Self.timeout))" } catch { return "threw \(error)" }
        }
        let (outcome, elapsed) = Self.signalUntilDone(target, inSyscall: Syscall.futex)
        #expect(outcome == "\(Futex.WaitResult.timedOut)")
        #expect(elapsed >= UInt64(Self.timeout))
        #expect(elapsed < Self.restartedBound, "a restarted timeout would outlast the signals")
        #expect(target.signalsHandled >= 1)
    }

    @Test("An io_uring park interrupted by signals returns at its timeout, timed out, not early or late")
    func ringParkKeepsTimeout() throws {
        guard let ring = try? IOURing(entries: 8), ring.supportsFutex else {
            print("skipping: \(IOURing.futexUnsupportedReason() ?? "io_uring futex unavailable")")  // probed, not faked
            return
        }
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = 0
        let target = SignalledThread {
            do {
                return "\(try ring.futexWait(word, expected: 0, timeoutNanoseconds: Self.timeout))"
            } catch {
                return "threw \(error)"
            }
        }
        let (outcome, elapsed) = Self.signalUntilDone(target, inSyscall: Syscall.ioUringEnter)
        #expect(outcome == "\(Futex.WaitResult.timedOut)")
        #expect(elapsed >= UInt64(Self.timeout))
        #expect(elapsed < Self.restartedBound, "a restarted timeout would outlast the signals")
        #expect(target.signalsHandled >= 1)
        // Nothing was submitted twice: no FUTEX_WAIT is left waiting on the word,
        // and a wake through the ring completes with its own result.
        #expect(try Futex.wake(word) == 0)
        #expect(try ring.futexWake(word) == 0)
    }

    /// The waits' timeout.
    static let timeout: Int64 = 400_000_000
    /// Signals go on for this long (unless the wait ends first)...
    static let signalling: UInt64 = 1_500_000_000
    /// ...so a wait whose timeout restarted at each signal would end after this.
    static let restartedBound: UInt64 = 1_400_000_000

    /// Interrupts `target` every 30 ms while it is blocked in `syscall`, until
    /// it returns or ``signalling`` passes; its outcome and how long it took.
    static func signalUntilDone(_ target: SignalledThread, inSyscall syscall: Int) -> (String, UInt64) {
        while !target.isDone && monotonicNanoseconds() - target.started < signalling {
            if target.waitUntilBlocked(inSyscall: syscall, for: 50_000_000) { target.interrupt() }
            usleep(30_000)
        }
        let outcome = target.join()
        return (outcome, target.finished - target.started)
    }
}

/// System call numbers as `/proc/<pid>/task/<tid>/syscall` shows them.
enum Syscall {
    #if arch(x86_64)
    static let recvmsg = 47
    static let futex = 202
    #elseif arch(arm64)
    static let recvmsg = 212
    static let futex = 98
    #endif
    static let ioUringEnter = 426
}

/// A thread that runs `body` with `SIGUSR2` unblocked, and a no-op handler for
/// `SIGUSR2` installed without `SA_RESTART`: a signal makes its blocking call
/// fail with `EINTR`, which only the funnel may retry.
final class SignalledThread: @unchecked Sendable {
    private let body: () -> String
    private let state = Mutex<(tid: Int32, outcome: String?, finished: UInt64)>((0, nil, 0))
    private var thread = pthread_t()
    let started = monotonicNanoseconds()

    static let handled = Atomic<Int>(0)
    private static let installed: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in SignalledThread.handled.add(1, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART
        sigaction(SIGUSR2, &action, nil)
    }()
    private let handledBefore: Int

    init(_ body: @escaping () -> String) {
        _ = Self.installed
        handledBefore = Self.handled.load(ordering: .relaxed)
        self.body = body
        let box = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<SignalledThread>.fromOpaque(raw!).takeRetainedValue()
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            let tid = SignalledThread.currentThreadID()
            me.state.withLock { $0.tid = tid }
            let outcome = me.body()
            me.state.withLock { $0 = ($0.tid, outcome, monotonicNanoseconds()) }
            return nil
        }, box)
        precondition(rc == 0, "pthread_create: \(rc)")
    }

    var isDone: Bool { state.withLock { $0.outcome != nil } }
    var finished: UInt64 { state.withLock { $0.finished } }
    /// Signals handled since this thread was made (only these tests send `SIGUSR2`).
    var signalsHandled: Int { Self.handled.load(ordering: .relaxed) - handledBefore }

    /// Whether the thread sits in system call `number` within `timeout` ns.
    func waitUntilBlocked(inSyscall number: Int, for timeout: UInt64 = 10_000_000_000) -> Bool {
        let until = monotonicNanoseconds() + timeout
        while monotonicNanoseconds() < until {
            let tid = state.withLock { $0.outcome == nil ? $0.tid : -1 }
            if tid < 0 { return false }
            if tid > 0, Self.currentSyscall(tid) == number {
                // /proc reports the syscall on entry; give it a moment to go to sleep.
                usleep(2_000)
                return true
            }
            usleep(1_000)
        }
        return false
    }

    /// Sends `SIGUSR2` to the thread and waits (briefly) until it was handled or
    /// the thread is done (a thread that has returned handles no more signals).
    func interrupt() {
        let before = Self.handled.load(ordering: .relaxed)
        pthread_kill(thread, SIGUSR2)
        let until = monotonicNanoseconds() + 1_000_000_000
        while Self.handled.load(ordering: .relaxed) == before && !isDone && monotonicNanoseconds() < until { usleep(500) }
    }

    /// Joins the thread; what `body` returned.
    func join() -> String {
        pthread_join(thread, nil)
        return state.withLock { $0.outcome ?? "no outcome" }
    }

    /// The calling thread's kernel id, from the /proc/thread-self link ("<pid>/task/<tid>").
    static func currentThreadID() -> Int32 {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard n > 0 else { return -1 }
        let link = String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return link.split(separator: "/").last.flatMap { Int32($0) } ?? -1
    }

    /// The first field of /proc/self/task/<tid>/syscall: the number of the system
    /// call the thread is blocked in (nil while it runs).
    static func currentSyscall(_ tid: Int32) -> Int? {
        let fd = open("/proc/self/task/\(tid)/syscall", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        let text = String(decoding: buffer.prefix(n), as: UTF8.self)
        return Int(text.prefix { $0 != " " && $0 != "\n" })
    }
}
