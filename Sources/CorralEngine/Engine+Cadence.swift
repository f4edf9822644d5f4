public import CorralCore

/// Adaptive sampling: the engine tells the watcher to sample an agent at the
/// idle interval while it is far from every limit and quiet, and at the
/// sampling interval again as soon as it is not (`SamplingCadence.of`).
/// Owner of `cadences` and `lastActivity`: the engine's executor.
extension Engine {
    /// Recomputes `id`'s cadence after an observation and tells the watcher when it changed.
    func adjustCadence(of id: String, at now: Timestamp) {
        guard let watcher, let idle = configuration.intervals.adaptiveIdleSampling else { return }
        let last = lastActivity[id]
        guard
            let (cadence, current) = registry.read(
                id,
                { agent -> (SamplingCadence, SamplingCadence?)? in
                    guard agent.record.state.isLive else { return nil }
                    let degraded = (agent.ladder.degradation ?? [:]).values.contains { $0.level != .none }
                    let busy =
                        agent.record.state != .running || !agent.violations.isEmpty || !agent.ladder.episodes.isEmpty || degraded
                        || agent.pendingFreeze != nil || agent.terminationDeadline != nil || agent.endRequested != nil
                    let cadence = SamplingCadence.of(
                        usage: agent.usage, limits: agent.record.limits, busy: busy, lastActivity: last, now: now)
                    return (cadence, agent.cadence)
                }) ?? nil,
            current != cadence
        else { return }
        registry.update(id) { $0.cadence = cadence }
        // Watched at the sampling interval until told otherwise: nothing to say for a first active.
        if current == nil, cadence == .active { return }
        watcher.sample(agent: id, every: cadence == .idle ? idle : nil)
    }

    /// Live agents by cadence (an agent the engine has not decided on yet is active).
    public func samplingCounts() -> [SamplingCadence: Int] {
        var counts: [SamplingCadence: Int] = [:]
        // In no order: a count needs no sort (sorting the live ids showed in a scrape's `perf`).
        registry.forEachLiveUnordered { _, agent in counts[agent.cadence ?? .active, default: 0] += 1 }
        return counts
    }

    /// Each agent's cadence as last told to the watcher (the agents not decided yet left out).
    var cadences: [String: SamplingCadence] {
        var cadences: [String: SamplingCadence] = [:]
        for id in registry.ids(after: nil, includeEnded: true) {
            if let cadence = registry.read(id, { $0.cadence }) ?? nil { cadences[id] = cadence }
        }
        return cadences
    }

    /// The agent ended: nothing more to say about it.
    func forgetCadence(of id: String) {
        if (registry.read(id, { $0.cadence }) ?? nil) != nil { registry.update(id) { $0.cadence = nil } }
        lastActivity[id] = nil
    }

    /// Every agent undecided again.
    func clearCadences() {
        for (id, _) in cadences { registry.update(id) { $0.cadence = nil } }
    }

    /// Back to the sampling interval for every agent (the idle interval
    /// changed or was turned off); the next observations decide again.
    func resetCadences() {
        for (id, cadence) in cadences where cadence == .idle { watcher?.sample(agent: id, every: nil) }
        clearCadences()
    }
}
