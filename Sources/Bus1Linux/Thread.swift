import Glibc

/// A pthread running a closure: for the few places Bus1 needs a thread of its
/// own, outside Swift's cooperative pool (the async reactor, the embedded
/// coordinator, bus1d's signal relay).
public enum PlatformThread {
    /// Starts `body` on a new thread. `detached`: nobody joins it (its resources go
    /// back when it returns); otherwise join the returned thread.
    @discardableResult
    public static func start(detached: Bool = false, _ body: @escaping @Sendable () -> Void) throws(LinuxError) -> pthread_t {
        final class Job: @unchecked Sendable {  // immutable after init; handed to one thread
            let run: @Sendable () -> Void
            init(_ run: @escaping @Sendable () -> Void) { self.run = run }
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Job(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Job>.fromOpaque(box).release()
            throw LinuxError("pthread_create", code: rc)
        }
        if detached { pthread_detach(thread) }
        return thread
    }
}
