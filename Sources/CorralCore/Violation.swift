/// How far a usage is over a limit.
public enum ViolationKind: String, CaseIterable, Codable, CodingKeyRepresentable, Sendable, Comparable, CaseHashable {
    /// Over the soft limit: warn.
    case soft
    /// Over the burst allowance: throttle.
    case burst
    /// Over (or at, when the kernel stopped it) the hard limit: the limit's action.
    case hard
    /// Not this agent's own limit: the host as a whole was short (the host ladder's steps).
    case hostPressure = "host_pressure"

    public static func < (lhs: ViolationKind, rhs: ViolationKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The action this kind of violation leads to under `limit`.
    public func action(under limit: ResourceLimit) -> EnforcementAction {
        switch self {
        case .soft: .warn
        case .burst: .throttle
        case .hard: limit.action
        case .hostPressure: .suspend  // the host ladder's own steps; the agent's ladder has none
        }
    }
}

/// An observed usage over a limit of one agent.
public struct Violation: Equatable, Hashable, Codable, Sendable {
    public var agent: String
    public var resource: Resource
    public var kind: ViolationKind
    public var current: Double
    /// The threshold that was crossed (soft, burst or hard amount).
    public var limit: Double

    public init(agent: String, resource: Resource, kind: ViolationKind, current: Double, limit: Double) {
        self.agent = agent
        self.resource = resource
        self.kind = kind
        self.current = current
        self.limit = limit
    }

    /// How far over the limit, relative to it: (current − limit) / limit.
    public var excessRatio: Double {
        limit > 0 ? (current - limit) / limit : 0
    }

    /// Classifies `usage` of `resource` against `limit`; nil when within the soft limit.
    /// See `ResourceLimit` for what burst means per resource.
    public static func classify(
        agent: String, resource: Resource, usage: Double, limit: ResourceLimit
    ) -> Violation? {
        func make(_ kind: ViolationKind, _ threshold: Double) -> Violation {
            Violation(agent: agent, resource: resource, kind: kind, current: usage, limit: threshold)
        }
        if resource == .cpu, let burst = limit.burst, burst > limit.hard {
            if usage > burst { return make(.hard, limit.hard) }
            if usage > limit.hard { return make(.burst, limit.hard) }
        } else {
            if usage > limit.hard { return make(.hard, limit.hard) }
            if let burst = limit.burst, usage > burst { return make(.burst, burst) }
        }
        if usage > limit.soft { return make(.soft, limit.soft) }
        return nil
    }
}

extension LimitSet {
    /// All violations of `usage` against these limits, most severe first.
    public func violations(agent: String, usage: [Resource: Double]) -> [Violation] {
        resources.compactMap { resource in
            guard let limit = limits[resource], let current = usage[resource] else { return nil }
            return Violation.classify(agent: agent, resource: resource, usage: current, limit: limit)
        }
        .sorted { ($0.kind, $1.resource) > ($1.kind, $0.resource) }
    }
}
