/// A quota group: default limits for its agents and totals for all of them.
///
/// Each group is a cgroup subtree (`<root>/<group>`); its totals land in the
/// group cgroup's `memory.max`, `cpu.max` and `pids.max`.
public struct QuotaGroup: Equatable, Codable, Sendable {
    public var name: String
    public var description: String
    /// Per-agent limits of agents in this group.
    public var limits: LimitSet
    /// Totals for the whole group, in each resource's unit.
    public var totals: [Resource: Double]
    /// Escalation delays for this group (nil: the configuration's defaults).
    public var escalation: EscalationPolicy?
    /// What its agents may do: syscall filter, user, cgroup namespace, rlimits.
    public var security: SecurityPolicy
    /// The group's weight against other groups, and its agents' priority unless they set their own.
    public var priority: Priority

    public init(
        name: String, description: String, limits: LimitSet, totals: [Resource: Double],
        escalation: EscalationPolicy? = nil, security: SecurityPolicy = .standard, priority: Priority = .standard
    ) {
        self.priority = priority
        self.name = name
        self.description = description
        self.limits = limits
        self.totals = totals
        self.escalation = escalation
        self.security = security
    }

    enum CodingKeys: String, CodingKey {
        case name, description, limits, totals, escalation, security, priority
    }

    /// Groups saved before policies existed decode with the standard policy.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            description: try container.decode(String.self, forKey: .description),
            limits: try container.decode(LimitSet.self, forKey: .limits),
            totals: try container.decode([Resource: Double].self, forKey: .totals),
            escalation: try container.decodeIfPresent(EscalationPolicy.self, forKey: .escalation),
            security: try container.decodeIfPresent(SecurityPolicy.self, forKey: .security) ?? .standard,
            priority: try container.decodeIfPresent(Priority.self, forKey: .priority) ?? .standard)
    }

    /// The kernel settings of the group cgroup itself (totals only).
    public var totalsSettings: CgroupSettings {
        var settings = CgroupSettings()
        if let memory = totals[.memory] { settings.memoryMax = .limit(Int64(memory)) }
        if let cpu = totals[.cpu] { settings.cpuMax = CPUMax(percent: cpu) }
        if let pids = totals[.processes] { settings.pidsMax = .limit(Int64(pids)) }
        settings.applyPriority(priority, memorySoft: nil, always: false)
        return settings
    }
}

extension QuotaGroup {
    /// The three built-in groups: lightweight, standard and heavy computation
    /// (bytes are decimal: 50 MB = 50_000_000; cpu in percent of one CPU).
    public static let seedGroups: [QuotaGroup] = [lightweight, standard, heavyComputation]

    public static let lightweight = QuotaGroup(
        name: "lightweight_agent",
        description: "Lightweight agents with minimal resource requirements",
        limits: LimitSet([
            .memory: ResourceLimit(soft: 50_000_000, hard: 100_000_000, action: .warn),
            .cpu: ResourceLimit(soft: 5, hard: 10, action: .throttle),
            .processes: ResourceLimit(soft: 10, hard: 20, action: .suspend),
        ]),
        totals: [.memory: 1_000_000_000, .cpu: 200, .processes: 500]
    )

    public static let standard = QuotaGroup(
        name: "standard_agent",
        description: "Standard agents with moderate resource requirements",
        limits: LimitSet([
            .memory: ResourceLimit(soft: 200_000_000, hard: 500_000_000, action: .throttle),
            .cpu: ResourceLimit(soft: 15, hard: 30, action: .throttle),
            .processes: ResourceLimit(soft: 50, hard: 100, action: .scaleDown),
        ]),
        totals: [.memory: 4_000_000_000, .cpu: 600, .processes: 2000]
    )

    public static let heavyComputation = QuotaGroup(
        name: "heavy_computation_agent",
        description: "Agents requiring significant computational resources",
        limits: LimitSet([
            .memory: ResourceLimit(soft: 1_000_000_000, hard: 2_000_000_000, action: .suspend),
            .cpu: ResourceLimit(soft: 40, hard: 80, action: .scaleDown),
            .processes: ResourceLimit(soft: 100, hard: 200, action: .terminate),
        ]),
        totals: [.memory: 8_000_000_000, .cpu: 1600, .processes: 1000]
    )

    /// The group `corral run` uses when none is named.
    public static let defaultGroupName = "standard_agent"
}

/// Escalation delays: an action fires only if its violation still holds when
/// the delay expires. Seed: warn 0, throttle 30 s, suspend 5 min, terminate 10 min.
public struct EscalationPolicy: Equatable, Codable, Sendable {
    public var delays: [EnforcementAction: Duration]
    /// Time between SIGTERM and `cgroup.kill` when terminating.
    public var terminationGrace: Duration
    /// Sent to every process of an agent when its degradation level rises or
    /// relapses and it has no listener on its event stream (for programs that
    /// do not follow it; they must handle the signal); nil: none.
    public var degradationSignal: Int32?

    public init(delays: [EnforcementAction: Duration], terminationGrace: Duration, degradationSignal: Int32? = nil) {
        self.delays = delays
        self.terminationGrace = terminationGrace
        self.degradationSignal = degradationSignal
    }

    public static let seed = EscalationPolicy(
        delays: [
            .warn: .zero, .throttle: .seconds(30), .suspend: .seconds(300), .terminate: .seconds(600),
            .scaleDown: .zero, .migrate: .zero, .custom: .zero,
        ],
        terminationGrace: .seconds(5)
    )

    public func delay(for action: EnforcementAction) -> Duration {
        delays[action] ?? .zero
    }

    // JSON: `{"delays": {"throttle": "30s", …}, "termination_grace": "5s"}`.
    enum CodingKeys: String, CodingKey {
        case delays
        case terminationGrace
        case degradationSignal
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func duration(_ text: String, _ key: CodingKeys) throws -> Duration {
            switch Quantity.parseDuration(text) {
            case .success(let value): return value
            case .failure(let error):
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: error.description)
            }
        }
        var delays: [EnforcementAction: Duration] = [:]
        // Keyed by the action's name; a snake_case key strategy may have
        // turned "scale_down" into "scaleDown", so compare without underscores.
        for (name, text) in try container.decode([String: String].self, forKey: .delays) {
            let plain = name.replacingUnderscores().lowercased()
            guard let action = EnforcementAction.allCases.first(where: { $0.rawValue.replacingUnderscores() == plain }) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .delays, in: container,
                    debugDescription: "unknown action '\(name)'; actions: \(EnforcementAction.acceptedNames)")
            }
            delays[action] = try duration(text, .delays)
        }
        var signal: Int32?
        if let name = try container.decodeIfPresent(String.self, forKey: .degradationSignal) {
            guard let number = SignalName.notice(named: name) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .degradationSignal, in: container, debugDescription: "'\(name)' is not a notice signal")
            }
            signal = number
        }
        self.init(
            delays: delays, terminationGrace: try duration(try container.decode(String.self, forKey: .terminationGrace), .terminationGrace),
            degradationSignal: signal)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(
            Dictionary(uniqueKeysWithValues: delays.map { ($0.key.rawValue, Quantity.formatDuration($0.value)) }), forKey: .delays)
        try container.encode(Quantity.formatDuration(terminationGrace), forKey: .terminationGrace)
        try container.encodeIfPresent(degradationSignal.map(SignalName.name), forKey: .degradationSignal)
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
