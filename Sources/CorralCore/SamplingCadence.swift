/// How often the watcher samples an agent's cgroup. An agent near one of its
/// limits, or with something going on (a violation, a ladder episode, a
/// degradation, a kernel event or pressure trigger lately, a state other
/// than running), is sampled at the sampling interval; one far from every
/// limit and quiet for a while, at the idle interval. Kernel events
/// (`memory.events`, `pids.events`, `cgroup.events`) and PSI triggers wake
/// the watcher at once whatever the cadence, so what a slower sample can
/// miss is only a crossing that no kernel file announces: the CPU soft limit
/// (cpu.max still caps the agent in the kernel) and a soft limit below the
/// kernel's (memory.high is announced). cAdvisor's housekeeping interval
/// works the same way for the same reason: most containers are idle.
public enum SamplingCadence: String, Codable, Sendable, CaseIterable, CaseHashable {
    case active, idle

    /// Usage at or over this share of a resource's soft limit (its hard
    /// limit when it has no soft one) is near the limit.
    public static let nearShare = 0.5
    /// An agent is quiet when nothing happened to it for this long.
    public static let quietPeriod: Duration = .seconds(30)

    /// The cadence for an agent with `usage` against `limits`: active when
    /// `busy` (anything in progress), when the last kernel event or trigger
    /// (`lastActivity`) is within the quiet period of `now`, or when any
    /// limited resource is near its limit; idle otherwise.
    public static func of(
        usage: [Resource: Double], limits: LimitSet, busy: Bool, lastActivity: Timestamp?, now: Timestamp
    ) -> SamplingCadence {
        if busy { return .active }
        if let lastActivity, now - lastActivity < quietPeriod { return .active }
        // The resources a sample measures (the others an agent reports itself).
        for resource in [Resource.memory, .cpu, .processes] {
            guard let limit = limits[resource] else { continue }
            let threshold = limit.soft > 0 ? limit.soft : limit.hard
            guard threshold > 0, threshold.isFinite else { continue }
            // No reading yet: not known to be far.
            guard let used = usage[resource] else { return .active }
            if used >= nearShare * threshold { return .active }
        }
        return .idle
    }
}
