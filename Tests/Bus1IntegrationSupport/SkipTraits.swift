import Testing

extension Trait where Self == ConditionTrait {
    /// `.enabled(if:_:)` for a probe that says why a test cannot run here (nil when
    /// it can): the test runs where the reason is nil, and is skipped elsewhere with
    /// the reason as the skip's comment, never passed in silence.
    ///
    ///     @Test("…", .enabled(unless: OtherUID.unavailableReason))
    package static func enabled(unless unavailableReason: String?) -> Self {
        .enabled(if: unavailableReason == nil, Comment(rawValue: unavailableReason ?? ""))
    }
}
