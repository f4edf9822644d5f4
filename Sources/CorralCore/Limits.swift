/// Soft and hard limit of one resource, with the action a hard violation takes.
///
/// Amounts are in the resource's `unit`. How they reach the kernel:
/// memory soft → `memory.high`, hard → `memory.max`; cpu hard → `cpu.max`,
/// burst → `cpu.max.burst`; processes hard → `pids.max`. Soft limits of cpu and
/// processes are watcher thresholds.
///
/// `burst` is optional. For memory, processes and the measured resources it
/// lies between soft and hard: usage above soft is a *soft* violation (warn),
/// above burst a *burst* violation (throttle), above hard a *hard* one. For
/// cpu it lies at or above hard: the kernel lets the agent run up to it for a
/// short time (`cpu.max.burst`), and usage between hard and burst is a *burst*
/// violation.
public struct ResourceLimit: Equatable, Codable, Sendable {
    public var soft: Double
    public var hard: Double
    public var burst: Double?
    public var action: EnforcementAction

    public init(soft: Double, hard: Double, burst: Double? = nil, action: EnforcementAction) {
        self.soft = soft
        self.hard = hard
        self.burst = burst
        self.action = action
    }

    /// Problems that make this limit unusable for `resource`, as sentences
    /// naming the values and what to change. Empty when the limit is valid.
    public func problems(for resource: Resource) -> [String] {
        let unit = resource.unit
        var problems: [String] = []
        if soft < 0 { problems.append("soft limit \(unit.format(soft)) is negative") }
        if hard <= 0 { problems.append("hard limit \(unit.format(hard)) must be greater than zero") }
        if soft > hard {
            problems.append("soft limit \(unit.format(soft)) is above the hard limit \(unit.format(hard)): make soft ≤ hard")
        }
        if let burst {
            if resource == .cpu {
                if burst < hard {
                    problems.append(
                        "cpu burst \(unit.format(burst)) is below the hard limit \(unit.format(hard)): a cpu burst is how far above hard the kernel may briefly allow, so make burst ≥ hard"
                    )
                }
            } else if burst < soft || burst > hard {
                problems.append("burst \(unit.format(burst)) must lie between soft \(unit.format(soft)) and hard \(unit.format(hard))")
            }
        }
        if resource == .cpu, hard > 0, hard < CPUMax.minimumPercent {
            problems.append(
                "cpu hard limit \(unit.format(hard)) is below the kernel's minimum of \(unit.format(CPUMax.minimumPercent)) (1 ms per 1 s period)"
            )
        }
        if resource == .processes, hard > SystemLimits.maximumProcesses {
            problems.append(
                "processes hard limit \(unit.format(hard)) is above the kernel's maximum of \(Int(SystemLimits.maximumProcesses)) (PID_MAX_LIMIT)"
            )
        }
        if resource == .memory || resource == .processes {
            for (name, value) in [("soft", soft), ("hard", hard)] + (burst.map { [("burst", $0)] } ?? [])
            where value != value.rounded() {
                problems.append("\(name) limit \(value) is not a whole number of \(unit == .bytes ? "bytes" : "processes")")
            }
        }
        return problems
    }
}

/// The limits an agent runs under: one `ResourceLimit` per resource it limits.
/// Encoded as an object keyed by resource name: `{"memory": {...}, "cpu": {...}}`.
public struct LimitSet: Equatable, Codable, Sendable {
    public var limits: [Resource: ResourceLimit]

    public init(_ limits: [Resource: ResourceLimit] = [:]) {
        self.limits = limits
    }

    public init(from decoder: any Decoder) throws {
        limits = try decoder.singleValueContainer().decode([Resource: ResourceLimit].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(limits)
    }

    public subscript(resource: Resource) -> ResourceLimit? {
        get { limits[resource] }
        set { limits[resource] = newValue }
    }

    /// Resources with a limit, in a stable order.
    public var resources: [Resource] { limits.keys.sorted() }

    /// These limits with `overrides` applied field by field.
    public func applying(_ overrides: [Resource: LimitOverride]) -> LimitSet {
        var result = self
        for (resource, change) in overrides {
            if let existing = result.limits[resource] {
                result.limits[resource] = change.apply(to: existing, of: resource)
            } else if let created = change.asLimit() {
                result.limits[resource] = created
            } else if let hard = change.hard {
                // Only a hard limit given for a resource the group does not limit:
                // soft follows hard, the mildest action applies.
                result.limits[resource] = ResourceLimit(
                    soft: change.soft ?? hard, hard: hard, burst: change.burst, action: change.action ?? .warn)
            }
        }
        return result
    }
}

/// A partial change to a limit, from a flag, a per-agent override or the API.
public struct LimitOverride: Equatable, Codable, Sendable {
    public var soft: Double?
    public var hard: Double?
    public var burst: Double?
    public var action: EnforcementAction?

    public init(soft: Double? = nil, hard: Double? = nil, burst: Double? = nil, action: EnforcementAction? = nil) {
        self.soft = soft
        self.hard = hard
        self.burst = burst
        self.action = action
    }

    public var isEmpty: Bool { soft == nil && hard == nil && burst == nil && action == nil }

    /// Applies the fields that are set. A hard limit lowered below the
    /// existing soft one pulls soft down with it (a flag like
    /// `--memory-max 64M` on a group with a 200 MB soft limit means "64M").
    public func apply(to limit: ResourceLimit, of resource: Resource) -> ResourceLimit {
        var result = limit
        if let hard {
            result.hard = hard
            if soft == nil, result.soft > hard { result.soft = hard }
            // An inherited burst that no longer fits the new hard limit is
            // dropped: for cpu it must stay at or above hard, elsewhere at or below.
            if self.burst == nil, let burst = result.burst,
                resource == .cpu ? burst < hard : burst > hard
            {
                result.burst = nil
            }
        }
        if let soft { result.soft = soft }
        if let burst { result.burst = burst }
        if let action { result.action = action }
        return result
    }

    /// A complete limit when soft, hard and action are all given.
    public func asLimit() -> ResourceLimit? {
        guard let soft, let hard, let action else { return nil }
        return ResourceLimit(soft: soft, hard: hard, burst: burst, action: action)
    }
}

/// Upper bounds beyond which a limit cannot mean anything on Linux.
public enum SystemLimits {
    /// PID_MAX_LIMIT on 64-bit kernels.
    public static let maximumProcesses: Double = 4_194_304
}
