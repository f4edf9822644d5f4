public import CorralAPI
import CorralCgroup
public import CorralCore

#if canImport(Glibc)
    import Glibc
#endif

/// What the API asks of the engine: queries, and operators' actions on agents and groups.
extension Engine {
    // MARK: Queries

    /// Every agent (or every live one) in id order: the stored ones, with the
    /// live state of those in the table, and the queued ones.
    public func list(includeEnded: Bool = true) async throws -> [AgentRecord] {
        try await list(includeEnded: includeEnded, after: nil, limit: nil).agents
    }

    /// One page of `list`: the agents after `after` (from the first when nil),
    /// at most `limit` (all when nil); `next` is the last id returned when more follow.
    /// Reads about `limit + 1` rows of the store, not the whole table, and off
    /// the engine (which meanwhile handles observations): the ids in the table
    /// are taken first, the store read without the engine, then the page's
    /// records copied from the table (which has the newer state).
    public func list(includeEnded: Bool, after: String?, limit: Int?) async throws -> AgentList {
        let take = limit.map { $0 + 1 }  // one more than asked says whether another page follows
        var started = ContinuousClock.now
        let queued = Dictionary(
            queuedRecords().filter { record in after.map { record.id > $0 } ?? true }.map { ($0.id, $0) },
            uniquingKeysWith: { first, _ in first })
        // Ids only: the records of those on the page are copied at the end.
        let table = (registry.ids(after: after, includeEnded: includeEnded) + queued.keys).sorted()
        let known = Set(registry.ids).union(queued.keys)
        noteHold("a list's ids", since: started)
        let stored = try await Self.storedOnly(
            writer: writer, known: known, table: table, after: after, take: take, includeEnded: includeEnded)
        started = .now
        defer { noteHold("a list's page", since: started) }
        let ids = (Array(stored.keys) + table).sorted()
        let shown = limit.map { ids.prefix($0) } ?? ids[...]
        // An agent removed meanwhile (`corral rm`) is left out.
        let page = shown.compactMap { id in registry.record(of: id) ?? queued[id] ?? stored[id] }
        return AgentList(agents: page, next: shown.count < ids.count ? page.last?.id : nil)
    }

    /// The store's rows of agents not in the table (`known`), read in id order
    /// until the agents known up to the last row read fill the page (all of them
    /// are then known), or the store has no more.
    @concurrent
    nonisolated static func storedOnly(
        writer: StoreWriter, known: Set<String>, table: [String], after: String?, take: Int?, includeEnded: Bool
    ) async throws -> [String: AgentRecord] {
        let store = await writer.settledStore()
        var storedOnly: [AgentRecord] = []
        var cursor = after
        while true {
            // The store leaves out the known ones (their rows are not even decoded).
            let rows = try store.agents(after: cursor, limit: take, liveOnly: !includeEnded, excluding: known)
            storedOnly += rows
            guard let take, rows.count == take, let last = rows.last else { break }
            if storedOnly.count + table.prefix(while: { $0 <= last.id }).count >= take { break }
            cursor = last.id
        }
        return Dictionary(storedOnly.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// How many agents are live or queued, without reading the store (the health report).
    public func liveCount() -> Int { registry.liveIDs.count + admissionQueue.count }

    /// The agents in the table (live ones), without reading the store.
    public func liveAgents() -> [AgentRecord] {
        registry.list(stored: [], includeEnded: false)
    }

    /// An agent's state: from the table, or (an agent no longer in it) its
    /// stored row, read off the engine.
    public func status(of id: String) async throws -> AgentStatus {
        if let agent = registry[id] { return agent.status }
        if let record = queuedRecord(id) { return AgentStatus(agent: record, usage: [:], sample: nil, violations: [], ladder: nil) }
        guard let record = try await Self.storedAgent(id, writer: writer) else {
            throw EngineError(.notFound, "no agent '\(id)'")
        }
        return AgentStatus(agent: record, usage: [:], sample: nil, violations: [], ladder: nil)
    }

    @concurrent
    nonisolated static func storedAgent(_ id: String, writer: StoreWriter) async throws -> AgentRecord? {
        try await writer.settledStore().agent(id: id)
    }

    /// Enforcement records from the store. Off the engine: the task waits
    /// (suspended, no thread held) for the steps queued so far to be committed,
    /// then reads, while the engine goes on with observations.
    public nonisolated func history(agent: String?, since: Timestamp?, afterID: Int64?, limit: Int) async throws
        -> [EnforcementRecord]
    {
        try await writer.settledStore().history(agent: agent, since: since, afterID: afterID, limit: limit)
    }

    public func groups() -> [QuotaGroup] {
        configuration.groupNames.compactMap { configuration.groups[$0] }
    }

    public func group(_ name: String) throws -> QuotaGroup {
        guard let group = configuration.groups[name] else {
            throw EngineError(.notFound, "no group '\(name)'; groups: \(configuration.groupNames.joined(separator: ", "))")
        }
        return group
    }

    /// The agent's current violations, from its latest observation and reported usage.
    public func compliance(of id: String) throws -> [Violation] {
        guard let agent = registry[id] else { throw EngineError(.notFound, "no running agent '\(id)'") }
        return agent.currentViolations
    }

    /// Degradation plans and recovery stages, oldest first.
    public nonisolated func degradationHistory(agent: String?, limit: Int) async throws -> [DegradationPlan] {
        try await writer.settledStore().degradation(agent: agent, limit: limit)
    }

    // MARK: Operators' actions

    /// Freezes the agent and waits for the kernel's confirmation (≤ 2 s)
    /// without holding the engine: other work runs between the checks.
    public func freeze(_ id: String) async throws -> AgentRecord {
        try ensureNotQueued(id)
        let leaf = try registry.live(id).leaf
        events.publish(.suspendNotice, agent: id, EventText.freezingByRequest(id))
        let started = ContinuousClock.now
        var frozen = false
        do throws(CgroupError) {
            frozen = try tree.requestFreeze(leaf)
            while !frozen && ContinuousClock.now - started < Enforcer.freezeConfirmation {
                try? await Task.sleep(for: .milliseconds(5))
                frozen = try tree.isFrozen(leaf)
            }
        } catch {
            // Requested, perhaps: taken back, so the agent does not freeze behind the operator's back.
            throw EngineError(.failed, EventText.joined(error.description, tree.rollBackFreeze(leaf)) ?? error.description)
        }
        if !frozen {
            let timedOut = tree.freezeTimedOut(leaf, after: Enforcer.freezeConfirmation).description
            throw EngineError(.failed, EventText.joined(timedOut, tree.rollBackFreeze(leaf)) ?? timedOut)
        }
        let took = ContinuousClock.now - started
        // Read again: the agent may have changed (or ended) while this waited.
        var agent = try registry.live(id)
        agent.record.state = .suspended
        registry[id] = agent
        try await writer.saveOrThrow(agent.record)
        events.publish(.suspended, agent: id, EventText.frozenByRequest(id, took: took))
        return agent.record
    }

    public func thaw(_ id: String) async throws -> AgentRecord {
        try ensureNotQueued(id)
        var agent = try registry.live(id)
        do {
            try tree.thaw(agent.leaf)
        } catch {
            throw EngineError(.failed, error.description)
        }
        agent.record.state = .running
        agent.ladder.noteThawed()
        // A ladder's freeze still waiting for its confirmation is given up, and recorded so.
        if let abandoned = enforcer.abandonFreeze(&agent, because: "thawed by request") {
            writer.commit(CommitRequest(records: [abandoned], plans: [], ladder: agent.ladder, agent: nil), agent: id)
        }
        registry[id] = agent
        try await writer.saveOrThrow(agent.record, ladder: agent.ladder)
        events.publish(.thawed, agent: id, EventText.thawedByRequest(id))
        return agent.record
    }

    /// SIGKILL to every process of the agent now (`cgroup.kill`).
    public func kill(agent id: String) throws -> AgentRecord {
        try ensureNotQueued(id)
        let agent = try registry.live(id)
        do {
            try tree.kill(agent.leaf)
        } catch {
            throw EngineError(.failed, error.description)
        }
        registry[id]?.record.endReason = EndReason.killedByRequest
        registry[id]?.endRequested = .kill
        return agent.record
    }

    /// SIGTERM to every process, cgroup.kill after the group's grace period.
    public func stop(_ id: String) throws -> AgentRecord {
        try ensureNotQueued(id)
        var agent = try registry.live(id)
        let grace = configuration.escalation(for: agent.record.group).terminationGrace
        let signalled = tree.signalAll(agent.leaf, SIGTERM)
        agent.terminationDeadline = clock() + grace
        agent.record.endReason = EndReason.stoppedByRequest
        agent.endRequested = .stop
        registry[id] = agent
        events.publish(
            .terminationNotice, agent: id, EventText.stopping(id, signalled: signalled, grace: grace),
            graceSeconds: Double(grace.milliseconds) / 1000)
        return agent.record
    }

    /// Forgets an agent that has ended (its history stays); a live one only
    /// with `force`: killed first, and its cgroup removed once empty.
    public func remove(_ id: String, force: Bool) async throws {
        if let index = admissionQueue.firstIndex(where: { $0.record.id == id }) {
            admissionQueue.remove(at: index)
            events.publish(.agentRemoved, agent: id, EventText.removed(id))
            return
        }
        if let agent = registry[id], agent.record.state.isLive {
            guard force else {
                throw EngineError(.conflict, "agent '\(id)' is \(agent.record.state.rawValue): stop it first or remove with force")
            }
            do {
                try tree.kill(agent.leaf)
                // Waited for without holding the engine: other work runs between the checks.
                let deadline = ContinuousClock.now + .seconds(5)
                var populated = try tree.isPopulated(agent.leaf)
                while populated && ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(10))
                    populated = try tree.isPopulated(agent.leaf)
                }
                if populated {
                    events.publish(.daemon, agent: id, EventText.killedButNotExited(id))
                }
            } catch  where error.code == .notFound || error.code == .removed {
                // Gone already: nothing left to kill.
            } catch {
                throw EngineError(.failed, "cannot kill agent '\(id)': \(error.description)")
            }
            watcher?.unwatch(agent: id)
            forgetCadence(of: id)
            removeInBackground(agent.leaf, id: id)
        } else if registry[id] == nil, try await writer.settledStore().agent(id: id) == nil {
            throw EngineError(.notFound, "no agent '\(id)'")
        }
        let group = registry[id]?.record.group
        registry[id] = nil
        if let group { refreshProtection(of: group) }
        // The agent is out of the table: no step of it is queued after this.
        let store = await writer.settledStore()
        try store.delete(agent: id)
        try store.deleteLadder(agent: id)
        events.publish(.agentRemoved, agent: id, EventText.removed(id))
    }

    /// Sets per-agent overrides and rewrites the agent's cgroup files.
    public func setOverrides(_ id: String, _ overrides: [Resource: LimitOverride]) async throws -> AgentRecord {
        try ensureNotQueued(id)
        var agent = try registry.live(id)
        guard let limits = configuration.limits(agent: id, group: agent.record.group, flags: overrides) else {
            throw EngineError(.invalid, "unknown group '\(agent.record.group)'")
        }
        try Self.check(limits)
        do {
            try tree.apply(CgroupSettings(agentLimits: limits, priority: agent.record.priority), to: agent.leaf)
        } catch {
            throw EngineError(.failed, error.description)
        }
        agent.record.limits = limits
        agent.record.overrides = overrides
        registry[id] = agent
        try await writer.saveOrThrow(agent.record)
        refreshProtection(of: agent.record.group)
        events.publish(.quotaChanged, agent: id, EventText.limitsChanged(id), limits: limits)
        return agent.record
    }

    /// Live update of a group: totals and default limits; rewrites the group's
    /// cgroup and the files of its agents that have no override for a resource.
    public func updateGroup(
        _ name: String, limits: [Resource: LimitOverride], totals: [Resource: Double], priority: Int? = nil
    ) throws -> QuotaGroup {
        guard var group = configuration.groups[name] else { throw EngineError(.notFound, "no group '\(name)'") }
        let oldPriority = group.priority
        if let priority {
            guard let value = Priority(rawValue: priority) else {
                throw EngineError(.invalid, "priority \(priority) is out of range: \(Priority.acceptedText)")
            }
            group.priority = value
        }
        group.limits = group.limits.applying(limits)
        for resource in limits.keys.sorted() where group.limits[resource] == nil {
            throw EngineError(.invalid, "group \(name) has no \(resource.rawValue) limit: give soft, hard and action")
        }
        try Self.check(group.limits)
        for (resource, amount) in totals {
            guard resource.hasController, amount > 0 else {
                throw EngineError(
                    .invalid, "totals exist for memory, cpu and processes and must be above zero (\(resource.rawValue): \(amount))")
            }
            group.totals[resource] = amount
        }
        do {
            if try tree.fs.exists(tree.groupPath(name)) { try tree.apply(group.totalsSettings, to: tree.groupPath(name)) }
        } catch {
            throw EngineError(.failed, error.description)
        }
        configuration.groups[name] = group
        try writer.store.save(group: group)  // groups are written here only, not by the committer
        for (id, var agent) in registry.live where agent.record.group == name {
            guard let updated = configuration.limits(agent: id, group: name, flags: agent.record.overrides) else { continue }
            let before = agent.record.limits
            do {
                try tree.apply(CgroupSettings(agentLimits: updated, priority: agent.record.priority), to: agent.leaf)
            } catch {
                events.publish(.groupChanged, agent: id, EventText.limitsNotApplied(id, group: name, error))
                continue
            }
            agent.record.limits = updated
            registry[id] = agent
            writer.save(agent.record, what: "the new limits")
            // The agent hears of its new limits as it does of an override.
            if updated != before { events.publish(.quotaChanged, agent: id, EventText.limitsChanged(id, group: name), limits: updated) }
        }
        if group.priority != oldPriority { try changeGroupPriority(group) }
        refreshProtection(of: name)
        events.publish(.groupChanged, agent: nil, EventText.groupUpdated(name))
        return group
    }

    /// Usage of resources without a cgroup controller, reported by the agent itself.
    public func report(usage: [Resource: Double], for id: String) throws -> [Violation] {
        var agent = try registry.live(id)
        for (resource, amount) in usage {
            guard !resource.hasController else {
                throw EngineError(
                    .invalid,
                    "\(resource.rawValue) is measured by the kernel and cannot be reported; report files, connections, network or disk")
            }
            guard amount >= 0, amount.isFinite else {
                throw EngineError(.invalid, "\(resource.rawValue) usage must be a non-negative number")
            }
            agent.reported[resource] = amount
            remember([UsageReading(resource: resource, usage: amount)], of: &agent, at: clock())
        }
        registry[id] = agent
        events.publish(.usageReported, agent: id, EventText.usageReported(usage))
        let violations = agent.currentViolations
        step(id, violations: violations, usage: usage)
        return violations
    }

    /// An agent acknowledges an event of its stream.
    public func acknowledge(_ ack: Acknowledgement, from id: String) throws {
        _ = try registry.live(id)
        guard ack.sequence > 0 else { throw EngineError(.invalid, "sequence must be the positive number of an event") }
        guard !ack.kind.isEmpty, ack.kind.count <= 64, (ack.note?.count ?? 0) <= 1024 else {
            throw EngineError(.invalid, "kind must be 1–64 characters and note at most 1024")
        }
        events.publish(.acknowledged, agent: id, EventText.acknowledged(id, ack), ack: ack)
    }
}
