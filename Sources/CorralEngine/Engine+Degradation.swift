import CorralAPI
import CorralCgroup
import CorralCore

/// Degradation levels, their plans on the agent's stream, and recovery.
extension Engine {
    /// Feeds each resource's usage against its soft limit to its degradation
    /// tracker; returns the level changes.
    func degrade(_ agent: inout ManagedAgent, usage: [Resource: Double], at now: Timestamp) -> [DegradationPlan] {
        var trackers = agent.ladder.degradation ?? [:]
        var plans: [DegradationPlan] = []
        for (resource, amount) in usage.sorted(by: { $0.key < $1.key }) {
            guard let limit = agent.record.limits[resource] else { continue }
            var tracker = trackers[resource] ?? DegradationTracker(resource: resource)
            let violating = agent.ladder.episodes[resource] != nil
            if let plan = tracker.observe(
                agent: agent.record.id, usage: amount, limit: limit.soft, violating: violating, at: now, policy: configuration.recovery)
            {
                plans.append(plan)
            }
            trackers[resource] = tracker
        }
        if !trackers.isEmpty || agent.ladder.degradation != nil { agent.ladder.degradation = trackers }
        return plans
    }

    /// Publishes level changes to the agent's stream; a rise (by pressure or a
    /// relapse) also sends the group's degradation signal, if any, to an
    /// agent that does not follow its stream (a plain program: the signal is
    /// its only notice).
    func deliver(_ plans: [DegradationPlan], to id: String) {
        guard !plans.isEmpty, let (group, leaf) = registry.read(id, { ($0.record.group, $0.leaf) }) else { return }
        for plan in plans {
            let kind: CorralEvent.Kind = plan.reason == .pressure ? .degradationStrategy : .recoveryStage
            events.publish(kind, agent: id, EventText.degradation(plan), resource: plan.resource, plan: plan)
            if plan.reason != .recovery, let signal = configuration.escalation(for: group).degradationSignal,
                hub.listenerCount(agent: id) == 0
            {
                _ = tree.signalAll(leaf, signal)
            }
        }
    }

    /// Thaws an agent the ladder suspended once its violations have all
    /// cleared and no resource is degraded any more, when the policy says so.
    func recoverSuspension(_ id: String) {
        // Read in place: this runs at every step, and an agent copied out to be looked at was most of its cost.
        guard configuration.recovery.thawSuspended,
            let leaf = registry.read(
                id,
                { agent in
                    agent.record.state == .suspended && agent.ladder.suspended && agent.ladder.episodes.isEmpty && !agent.ladder.terminating
                        && (agent.ladder.degradation ?? [:]).values.allSatisfy({ $0.level == .none }) ? agent.leaf : nil
                }) ?? nil
        else { return }
        do {
            try tree.thaw(leaf)
            registry.update(id) { agent in
                agent.record.state = .running
                agent.ladder.noteThawed()
            }
            events.publish(.thawed, agent: id, EventText.recoveryThawed(id))
        } catch {
            events.publish(.daemon, agent: id, EventText.recoveryThawFailed(id, error))
        }
    }
}
