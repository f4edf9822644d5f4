/// An enum with string raw values that hashes its case, not its raw string.
///
/// For a `RawRepresentable` type the standard library's `hash(into:)` hashes
/// `rawValue`: for these enums a `String` is made and run through SipHash at
/// every dictionary lookup, and `[Resource: Double]`, `[AgentState: Int]` and the
/// like are looked up on every observation, step and scrape (`perf` of a scrape
/// showed `String.hash(into:)` under `Resource`'s hash). Equality compares the
/// cases already; hashing the case's tag agrees with it. Only for enums without
/// payloads, whose value is the tag itself (one byte: checked in the tests).
public protocol CaseHashable: RawRepresentable, Hashable where RawValue == String {}

extension CaseHashable {
    @inlinable public func hash(into hasher: inout Hasher) {
        hasher.combine(withUnsafeBytes(of: self) { $0.first ?? 0 })
    }

    @inlinable public var hashValue: Int {
        var hasher = Hasher()
        hash(into: &hasher)
        return hasher.finalize()
    }

    /// The case's place in the declaration, which is `allCases`' order where
    /// that is synthesized (checked in the tests): for tables indexed by case.
    @inlinable public var caseIndex: Int { withUnsafeBytes(of: self) { Int($0.first ?? 0) } }
}
