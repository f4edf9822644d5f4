import CorralCgroup
public import CorralCore

/// Capacity and admission: the seed's `calculate_available_resources`, and
/// what happens to an agent that would overcommit (`admission:`).
extension Engine {
    /// What the root may hand out: its own memory.max, cpu.max and pids.max
    /// where it has them (the system reservation, a container's or a unit's
    /// limits), else the host's (the hierarchy root has no limit files).
    func allocatable() -> [Resource: Double] {
        var amounts: [Resource: Double] = [
            .memory: Double(host.memoryBytes), .cpu: Double(host.cpus) * 100, .processes: Double(host.pidMax),
        ]
        guard let limits = try? tree.rootLimits() else { return amounts }
        if let memory = limits.memoryMax?.value { amounts[.memory] = Double(memory) }
        if let percent = limits.cpuMax?.percent { amounts[.cpu] = percent }
        if let pids = limits.pidsMax?.value { amounts[.processes] = Double(pids) }
        return amounts
    }

    /// Per resource: host, reserved, allocatable, committed (hard and soft limits
    /// of live agents, per group and overall), in use (latest samples) and available.
    public func capacity() -> CapacityReport {
        let agents = registry.live.map { _, agent in
            CapacityReport.Agent(group: agent.record.group, limits: agent.record.limits, usage: agent.usage)
        }
        var report = CapacityReport.compute(
            host: host, allocatable: allocatable(), groups: Array(configuration.groups.values), agents: agents,
            admission: configuration.admission)
        report.hostPressure = HostPressureStatus(
            enabled: configuration.hostPressure.enabled, phase: hostLadder.phase, since: hostLadder.episodeStartedAt,
            reading: hostLadder.last, steps: hostLadder.steps)
        return report
    }

    /// Checks a new agent's hard limits against its group's totals and the
    /// allocatable: `refuse` throws (409) naming each shortfall; `allow` says it
    /// on the event stream and goes on.
    func admit(_ limits: LimitSet, into group: String, id: String) throws(EngineError) {
        let shortfalls = capacity().shortfalls(admitting: limits, into: group)
        guard !shortfalls.isEmpty else { return }
        let text = shortfalls.map(\.description).joined(separator: "; ")
        switch configuration.admission {
        case .refuse:
            throw EngineError(.conflict, "agent '\(id)' not admitted (admission: refuse): \(text)")
        case .allow:
            events.publish(.daemon, agent: id, "agent '\(id)' admitted over capacity (admission: allow): \(text)")
        }
    }
}
