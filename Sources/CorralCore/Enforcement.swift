/// What the watcher saw of one resource of one agent.
public struct UsageReading: Equatable, Codable, Sendable {
    public var resource: Resource
    /// In the resource's unit (bytes, percent of one CPU, count).
    public var usage: Double
    /// The kernel reported the hard limit being hit since the previous reading:
    /// memory.events max/oom/oom_kill, pids.events max, cpu.stat nr_throttled.
    public var hitHard: Bool
    /// The kernel reported the soft limit being crossed: memory.events high.
    public var hitSoft: Bool

    public init(resource: Resource, usage: Double, hitHard: Bool = false, hitSoft: Bool = false) {
        self.resource = resource
        self.usage = usage
        self.hitHard = hitHard
        self.hitSoft = hitSoft
    }

    /// The violation this reading shows under `limit`, if any. The kernel's own
    /// signals count as much as the usage figure: memory cannot be sampled
    /// above memory.max, CPU not above cpu.max, yet hitting them is a hard violation.
    public func violation(agent: String, limit: ResourceLimit) -> Violation? {
        let classified = Violation.classify(agent: agent, resource: resource, usage: usage, limit: limit)
        if classified?.kind == .hard { return classified }
        if hitHard || atKernelCap(limit.hard) {
            return Violation(agent: agent, resource: resource, kind: .hard, current: max(usage, limit.hard), limit: limit.hard)
        }
        if let classified { return classified }
        if hitSoft { return Violation(agent: agent, resource: resource, kind: .soft, current: max(usage, limit.soft), limit: limit.soft) }
        return nil
    }
}

extension UsageReading {
    /// Share of memory.max at which an agent is pressing its hard limit (the
    /// kernel reclaims there, and usage can never be seen above it).
    public static let memoryCapShare = 0.98

    /// Whether usage sits at a limit the kernel enforces, so it cannot be
    /// seen above it: processes at pids.max, memory at (nearly) memory.max.
    /// Such an agent still violates its hard limit while it stays there,
    /// also when frozen. CPU at cpu.max shows as throttling (`hitHard`).
    public func atKernelCap(_ hard: Double) -> Bool {
        switch resource {
        case .processes: usage >= hard
        case .memory: usage >= hard * Self.memoryCapShare
        case .cpu, .files, .connections, .network, .disk: false
        }
    }
}

/// One action the escalation engine took (or tried), with its real outcome.
public struct EnforcementRecord: Equatable, Codable, Sendable {
    /// Assigned by the store; nil until recorded.
    public var id: Int64?
    public var agent: String
    public var resource: Resource
    public var kind: ViolationKind
    public var current: Double
    public var limit: Double
    public var action: EnforcementAction
    public var at: Timestamp
    /// True only when the action verifiably took effect (e.g. cgroup.events said frozen).
    public var succeeded: Bool
    /// The error when it did not.
    public var error: String?
    /// What was done: "cpu.max 30000 100000 → 15000 100000", "frozen in 31 ms", …
    public var details: String

    public init(
        id: Int64? = nil, violation: Violation, action: EnforcementAction, at: Timestamp, succeeded: Bool,
        error: String? = nil, details: String
    ) {
        self.id = id
        self.agent = violation.agent
        self.resource = violation.resource
        self.kind = violation.kind
        self.current = violation.current
        self.limit = violation.limit
        self.action = action
        self.at = at
        self.succeeded = succeeded
        self.error = error
        self.details = details
    }

    public var violation: Violation {
        Violation(agent: agent, resource: resource, kind: kind, current: current, limit: limit)
    }
}

/// Throttle factor by how far usage is over the limit: excess > 1.0 → 0.5,
/// > 0.5 → 0.7, > 0.2 → 0.85, else 0.9.
public enum ThrottleFactor {
    public static func forExcess(_ excessRatio: Double) -> Double {
        if excessRatio > 1.0 { return 0.5 }
        if excessRatio > 0.5 { return 0.7 }
        if excessRatio > 0.2 { return 0.85 }
        return 0.9
    }
}

/// A request to an agent to shrink, with its deadline (defaults: 80% of the limit, 30 s).
public struct ScaleDownRequest: Equatable, Codable, Sendable {
    public var resource: Resource
    public var current: Double
    public var target: Double
    public var deadline: Timestamp

    public init(resource: Resource, current: Double, target: Double, deadline: Timestamp) {
        self.resource = resource
        self.current = current
        self.target = target
        self.deadline = deadline
    }
}

/// An error of a store that says whether trying again later may succeed: the
/// disk is full, an I/O error, a lock held by another process — as opposed to
/// a write that is wrong and fails every time. The engine keeps the steps a
/// transient failure could not store and writes them when it can.
public protocol TransientFailure: Error {
    var isTransient: Bool { get }
}
