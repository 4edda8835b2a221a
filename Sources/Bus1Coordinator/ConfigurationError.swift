/// A setting of a ``CoordinatorConfiguration`` outside what the bus can serve:
/// which one, the value given, and what is allowed. Thrown by
/// ``CoordinatorConfiguration/validate()`` before anything is bound, so a bad
/// value stops `bus1d` (or an embedded coordinator) at start instead of failing
/// at the first peer.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public let field: CoordinatorConfiguration.Field
    /// The refused value, as written.
    public let value: String
    /// What the field accepts, e.g. "a power of two in 65536...1073741824".
    public let allowed: String

    public init(_ field: CoordinatorConfiguration.Field, value: String, allowed: String) {
        self.field = field
        self.value = value
        self.allowed = allowed
    }

    public var description: String { "\(field) \(value.isEmpty ? "''" : value) is not allowed: must be \(allowed)" }
}
