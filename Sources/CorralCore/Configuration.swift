/// Everything a configuration file can set, with the built-in defaults.
public struct CorralConfiguration: Equatable, Sendable {
    /// Quota groups by name (the three built-in ones unless redefined; more may be added).
    public var groups: [String: QuotaGroup]
    /// Per-agent overrides by agent id.
    public var agents: [String: AgentOverride]
    public var escalation: EscalationPolicy
    public var intervals: Intervals
    public var reservation: SystemReservation
    /// The cgroup directory Corral owns (nil: the default for the mode it runs in).
    public var cgroupRoot: String?
    /// Commands run by the migrate and custom actions.
    public var handlers: HandlerCommands = HandlerCommands()
    /// When degradation strategies are taken back, stage by stage.
    public var recovery: RecoveryPolicy = .seed
    /// What happens to a new agent that would commit more than its group's totals or the allocatable.
    public var admission: AdmissionPolicy = .allow
    /// When the root as a whole is short of memory, and what the host ladder does.
    public var hostPressure: HostPressurePolicy = .standard

    public init(
        groups: [String: QuotaGroup] = CorralConfiguration.seedGroups, agents: [String: AgentOverride] = [:],
        escalation: EscalationPolicy = .seed, intervals: Intervals = .seed, reservation: SystemReservation = .seed,
        cgroupRoot: String? = nil
    ) {
        self.groups = groups
        self.agents = agents
        self.escalation = escalation
        self.intervals = intervals
        self.reservation = reservation
        self.cgroupRoot = cgroupRoot
    }

    public static let seedGroups: [String: QuotaGroup] = Dictionary(
        uniqueKeysWithValues: QuotaGroup.seedGroups.map { ($0.name, $0) })

    /// The built-in configuration: used when no file is given.
    public static let builtIn = CorralConfiguration()

    /// Group names in a stable order.
    public var groupNames: [String] { groups.keys.sorted() }

    /// The escalation policy for agents of `group`.
    public func escalation(for group: String) -> EscalationPolicy {
        groups[group]?.escalation ?? escalation
    }

    /// The security policy of agent `agent` in `group`: the group's, the
    /// agent's settings from the file, then `flags` (from the command line).
    public func security(agent: String, group: String, flags: SecurityOverride = SecurityOverride()) -> SecurityPolicy? {
        guard let quota = groups[group] else { return nil }
        var policy = quota.security
        if let override = agents[agent] { policy = override.security.apply(to: policy) }
        return flags.apply(to: policy)
    }

    /// The priority of agent `agent` in `group`: `flag`, else the agent's from the file,
    /// else the group's; and whether it is the agent's own (it does not follow the group's).
    public func priority(agent: String, group: String, flag: Priority? = nil) -> (priority: Priority, own: Bool)? {
        guard let quota = groups[group] else { return nil }
        if let own = flag ?? agents[agent]?.priority { return (own, true) }
        return (quota.priority, false)
    }

    /// The limits of agent `agent` in `group`: the group's defaults with the
    /// agent's overrides from the file, then `flags` (from the command line) on top.
    public func limits(
        agent: String, group: String, flags: [Resource: LimitOverride] = [:]
    ) -> LimitSet? {
        guard let quota = groups[group] else { return nil }
        var limits = quota.limits
        if let override = agents[agent] { limits = limits.applying(override.limits) }
        return limits.applying(flags)
    }
}

/// Per-agent settings in the configuration file.
public struct AgentOverride: Equatable, Sendable {
    /// The group the agent belongs to when started without `--group`.
    public var group: String?
    public var limits: [Resource: LimitOverride]
    /// Security settings on top of its group's policy.
    public var security: SecurityOverride
    /// Its own priority (nil: its group's).
    public var priority: Priority?

    public init(
        group: String? = nil, limits: [Resource: LimitOverride] = [:], security: SecurityOverride = SecurityOverride(),
        priority: Priority? = nil
    ) {
        self.priority = priority
        self.group = group
        self.limits = limits
        self.security = security
    }
}

/// Periods of the daemon's loops. Seed: sampling 1 s, analytics every 5 min over 1 h.
public struct Intervals: Equatable, Codable, Sendable {
    public var sampling: Duration
    public var analytics: Duration
    public var analyticsWindow: Duration
    /// How long minutes of usage history are kept in the database (7 days).
    public var historyRetention: Duration = .seconds(7 * 86_400)
    /// How often an idle agent (far from every limit, quiet: `SamplingCadence`)
    /// is sampled; kernel events and PSI triggers still read it at once.
    /// At most `sampling`: adaptive sampling is off.
    public var idleSampling: Duration = .seconds(10)

    /// The idle agents' sampling interval, nil when it is no longer than
    /// `sampling` (every agent sampled at `sampling`).
    public var adaptiveIdleSampling: Duration? { idleSampling > sampling ? idleSampling : nil }

    public init(sampling: Duration, analytics: Duration, analyticsWindow: Duration) {
        self.sampling = sampling
        self.analytics = analytics
        self.analyticsWindow = analyticsWindow
    }

    public static let seed = Intervals(sampling: .seconds(1), analytics: .seconds(300), analyticsWindow: .seconds(3600))
}

/// Commands the migrate and custom actions run, each with the violation as
/// JSON on stdin; exit status 0 is success. No migrate handler: suspend instead.
public struct HandlerCommands: Equatable, Sendable {
    public var migrate: [String]?
    public var custom: [String]?
    /// A handler still running after this is killed (and counts as failed).
    public var timeout: Duration

    public init(migrate: [String]? = nil, custom: [String]? = nil, timeout: Duration = .seconds(30)) {
        self.migrate = migrate
        self.custom = custom
        self.timeout = timeout
    }
}
