import Bus1Linux

/// Hooks for tests of the coordinator's own failures. Not API: reachable only
/// through `@_spi(Testing) import Bus1Coordinator`.
@_spi(Testing)
extension Coordinator {
    /// Makes the shared object (memfd) the coordinator makes after the next
    /// `skipping` ones fail at `step` with `errno`, as if the kernel had refused
    /// it; once. What needed the object is refused with `BUS1_ERR_INTERNAL` and
    /// that errno. Safe from any thread while the loop runs.
    public func failSharedObject(skipping: Int = 0, at step: SharedObjectStep, errno: Int32) {
        sharedObjects.failNext(skipping: skipping, at: step, errno: errno)
    }
}
