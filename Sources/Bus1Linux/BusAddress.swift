import Glibc

/// Where a bus's socket lives when nobody says: `$BUS1_ADDRESS`, else
/// `$XDG_RUNTIME_DIR/bus1/bus`, else `/tmp/bus1-<uid>/bus`. Shared by peers and
/// the coordinator so both pick the same path.
public enum BusAddress {
    public static func fromEnvironment() -> String {
        if let a = getenv("BUS1_ADDRESS"), a.pointee != 0 { return String(cString: a) }
        if let r = getenv("XDG_RUNTIME_DIR"), r.pointee != 0 { return String(cString: r) + "/bus1/bus" }
        return "/tmp/bus1-\(getuid())/bus"
    }
}
