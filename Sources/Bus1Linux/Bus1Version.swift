/// The release of this Bus1 build, printed by every tool's `--version`.
///
/// One constant for the whole package (the wire format has its own
/// `BUS1_WIRE_VERSION`, which changes only when shared memory or the control
/// protocol does). It lives in the platform layer because every tool, including
/// `shm-inspect`, which must not link the runtime, already depends on it.
public enum Bus1Version {
    public static let string = "0.10.0"
}
