#if canImport(Glibc)
    import Glibc
#endif

/// How much an agent matters when the host is short: a `priority` from
/// 0 (least) to 10 (most), 5 by default. It maps to the kernel's
/// proportional controls and orders the host ladder's steps (the lowest
/// priority is degraded, throttled and frozen first: `HostPressureLadder`).
///
/// - `cpu.weight` (and `io.weight` where the io controller is enabled) is
///   100 × 2^(priority − 5): each step doubles the share under contention;
///   5 is the kernel's default 100, 0 is 3 and 10 is 3200. Weights only
///   matter between siblings: an agent's weight orders it within its group,
///   a group's weight orders the groups.
/// - `memory.low` (protection from reclaim) for priorities above 5:
///   (priority − 5) / 5 of the agent's memory soft limit, so 6 protects 20%
///   of it and 10 all of it; 5 and below protect nothing. A group's
///   memory.low is the sum of its agents', at most the group's memory total
///   (the kernel shares a parent's protection among children that claim more).
public struct Priority: RawRepresentable, Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: Int

    public static let range = 0...10
    public static let standard = Priority(rawValue: 5)!
    public static let acceptedText = "a whole number from 0 (least) to 10 (most); 5 is the default"

    public init?(rawValue: Int) {
        guard Self.range.contains(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let value = try container.decode(Int.self)
        guard let priority = Priority(rawValue: value) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "priority \(value): \(Self.acceptedText)")
        }
        self = priority
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// Parses "7"; the error names what is accepted.
    public static func parse(_ text: String) -> Priority? {
        Int(text.trimmingSpaces()).flatMap(Priority.init(rawValue:))
    }

    public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { String(rawValue) }

    /// cpu.weight and io.weight (kernel range 1…10000, default 100).
    public var weight: Int {
        Swift.max(1, Int((100 * pow(2, Double(rawValue - 5))).rounded()))
    }

    /// memory.low for an agent whose memory soft limit is `soft` bytes.
    public func memoryLow(soft: Double) -> Int64 {
        guard rawValue > 5, soft > 0 else { return 0 }
        return Int64((soft * Double(rawValue - 5) / 5).rounded(.down))
    }

    /// A group's memory.low: the sum of its agents' protection, at most its
    /// memory total (nil: no total).
    public static func groupProtection(agentLows: [Int64], total: Double?) -> Int64 {
        let sum = agentLows.reduce(0, +)
        guard let total else { return sum }
        return Swift.min(sum, Int64(total))
    }
}

extension CgroupSettings {
    /// The proportional controls of `priority` (cpu.weight, io.weight and, when the
    /// memory soft limit is known, memory.low). `always`: also when they are the
    /// kernel's defaults (a live change back to 5 must write them).
    public mutating func applyPriority(_ priority: Priority, memorySoft: Double?, always: Bool) {
        guard always || priority != .standard else { return }
        cpuWeight = priority.weight
        ioWeight = priority.weight
        if let memorySoft { memoryLow = .limit(priority.memoryLow(soft: memorySoft)) }
    }
}
