import CorralCgroup
public import CorralCore

/// Priorities: the kernel's proportional controls of each agent and group
/// (`Priority`), kept in step as agents come and go and priorities change.
extension Engine {
    /// Rewrites the group cgroup's memory.low: the sum of its live agents'
    /// protection, at most the group's memory total. Written only when it
    /// changes; a failure is said, not thrown (the agents' own files stand).
    func refreshProtection(of group: String, force: Bool = false) {
        guard let quota = configuration.groups[group] else { return }
        // The registry keeps the sum (this runs at every start and end).
        let protection = Priority.groupProtection(agentLows: [registry.memoryLows[group] ?? 0], total: quota.totals[.memory])
        guard force || protection != (groupProtection[group] ?? 0) else { return }
        do throws(CgroupError) {
            try tree.setMemoryLow(Int64(protection), of: tree.groupPath(group))
            groupProtection[group] = protection
        } catch  where error.code == .notFound || error.code == .removed {
            groupProtection[group] = nil  // the group's cgroup is gone: a new one starts at 0
        } catch {
            events.publish(.daemon, agent: nil, EventText.groupNotProtected(group, protection, error))
        }
    }

    /// Sets an agent's own priority (nil: it follows its group's) and rewrites
    /// its cpu.weight, io.weight and memory.low.
    public func setPriority(_ id: String, _ requested: Int?) async throws -> AgentRecord {
        try ensureNotQueued(id)
        var agent = try registry.live(id)
        let resolved: (priority: Priority, own: Bool)
        if let requested {
            guard let priority = Priority(rawValue: requested) else {
                throw EngineError(.invalid, "priority \(requested) is out of range: \(Priority.acceptedText)")
            }
            resolved = (priority, true)
        } else {
            resolved = (configuration.groups[agent.record.group]?.priority ?? .standard, false)
        }
        try applyPriority(resolved.priority, to: agent)
        agent.record.priority = resolved.priority
        agent.record.priorityIsOwn = resolved.own
        registry[id] = agent
        try await writer.saveOrThrow(agent.record)
        refreshProtection(of: agent.record.group)
        events.publish(.priorityChanged, agent: id, EventText.priorityChanged(agent.record))
        return agent.record
    }

    /// Writes the controls of `priority` to the agent's leaf (defaults included).
    func applyPriority(_ priority: Priority, to agent: ManagedAgent) throws(EngineError) {
        var settings = CgroupSettings()
        settings.applyPriority(priority, memorySoft: agent.record.limits[.memory]?.soft, always: true)
        do {
            try tree.apply(settings, to: agent.leaf)
        } catch {
            throw EngineError(.failed, error.description)
        }
    }

    /// A group's priority changed: its cgroup's weights, then every live agent
    /// of it that has no priority of its own.
    func changeGroupPriority(_ group: QuotaGroup) throws(EngineError) {
        var settings = CgroupSettings()
        settings.applyPriority(group.priority, memorySoft: nil, always: true)
        do {
            if try tree.fs.exists(tree.groupPath(group.name)) { try tree.apply(settings, to: tree.groupPath(group.name)) }
        } catch {
            throw EngineError(.failed, error.description)
        }
        for (id, var agent) in registry.live where agent.record.group == group.name && !agent.record.priorityIsOwn {
            guard agent.record.priority != group.priority else { continue }
            do {
                try applyPriority(group.priority, to: agent)
            } catch {
                events.publish(.daemon, agent: id, EventText.groupPriorityNotApplied(group.name, group.priority, to: id, error))
                continue
            }
            agent.record.priority = group.priority
            registry[id] = agent
            writer.save(agent.record, what: "the new priority")
            events.publish(.priorityChanged, agent: id, EventText.priorityChanged(agent.record))
        }
        refreshProtection(of: group.name)
    }
}
