public import CorralAPI
public import CorralCgroup
public import CorralCore
import CorralRuntime
import CorralSeccomp

#if canImport(Glibc)
    import Glibc
#endif

/// How agents come and go: launched, registered (`corral run` with a
/// daemon), adopted, attached; ended, finished.
extension Engine {
    /// Validates a request and resolves the agent's id, group and limits.
    func resolve(id: String?, group: String?, command: [String], overrides: [Resource: LimitOverride]) throws(EngineError) -> (
        String, QuotaGroup, LimitSet
    ) {
        let agentID: String
        if let id {
            if let problem = CgroupName.problem(with: id, what: "agent id") { throw EngineError(.invalid, problem) }
            agentID = id
        } else {
            var generator = SystemRandomNumberGenerator()
            agentID = AgentIDGenerator.make(command: command.first ?? "agent", using: &generator)
        }
        if let existing = registry[agentID], existing.record.state.isLive {
            throw EngineError(.conflict, "agent id '\(agentID)' is in use (state \(existing.record.state.rawValue))")
        }
        if queuedRecord(agentID) != nil { throw EngineError(.conflict, "agent id '\(agentID)' is in use (queued)") }
        if launching[agentID] != nil { throw EngineError(.conflict, "agent id '\(agentID)' is in use (starting)") }
        let groupName = group ?? configuration.agents[agentID]?.group ?? QuotaGroup.defaultGroupName
        guard let quotaGroup = configuration.groups[groupName],
            let limits = configuration.limits(agent: agentID, group: groupName, flags: overrides)
        else {
            throw EngineError(.invalid, "unknown group '\(groupName)'; groups: \(configuration.groupNames.joined(separator: ", "))")
        }
        for resource in overrides.keys.sorted() where limits[resource] == nil {
            throw EngineError(.invalid, "group \(groupName) has no \(resource.rawValue) limit to adjust: give soft, hard and action")
        }
        try Self.check(limits)
        return (agentID, quotaGroup, limits)
    }

    /// The agent's isolation: its group's policy, the configuration's agent
    /// settings, then the request's user and seccomp profile.
    func securityPolicy(agent: String, group: String, user: String?, seccomp: String?) throws(EngineError) -> SecurityPolicy {
        let flags: SecurityOverride
        switch SecurityFlags.override(user: user, seccomp: seccomp) {
        case .success(let override): flags = override
        case .failure(let error): throw EngineError(.invalid, error.description)
        }
        guard let policy = configuration.security(agent: agent, group: group, flags: flags) else {
            throw EngineError(.invalid, "unknown group '\(group)'")
        }
        return policy
    }

    /// Refuses limits that make no sense (soft above hard, …), naming them.
    static func check(_ limits: LimitSet) throws(EngineError) {
        for resource in limits.resources {
            let problems = limits[resource]!.problems(for: resource)
            if !problems.isEmpty {
                throw EngineError(.invalid, "invalid \(resource.rawValue) limits: \(problems.joined(separator: "; "))")
            }
        }
    }

    /// The agent's priority: the request's, the configuration's for the agent, else its group's.
    func resolvePriority(agent: String, group: String, flag: Int?) throws(EngineError) -> (priority: Priority, own: Bool) {
        var requested: Priority?
        if let flag {
            guard let priority = Priority(rawValue: flag) else {
                throw EngineError(.invalid, "priority \(flag) is out of range: \(Priority.acceptedText)")
            }
            requested = priority
        }
        guard let resolved = configuration.priority(agent: agent, group: group, flag: requested) else {
            throw EngineError(.invalid, "unknown group '\(group)'")
        }
        return resolved
    }

    /// Creates the agent's cgroup with its limits and the controls of its priority.
    func createCgroup(id: String, group: QuotaGroup, limits: LimitSet, priority: Priority) throws(EngineError) -> CgroupPath {
        try Self.createCgroup(id: id, group: group, limits: limits, priority: priority, in: tree)
    }

    nonisolated static func createCgroup(
        id: String, group: QuotaGroup, limits: LimitSet, priority: Priority, in tree: CgroupTree
    ) throws(EngineError) -> CgroupPath {
        do {
            let lock = try tree.fs.lockTree()
            defer { withExtendedLifetime(lock) {} }
            try tree.prepareGroup(group)
            return try tree.createAgent(id, in: group.name, settings: CgroupSettings(agentLimits: limits, priority: priority))
        } catch {
            if error.code == .alreadyExists {
                throw EngineError(.conflict, "agent id '\(id)' is in use: \(error.path) exists")
            }
            throw EngineError(.failed, error.description)
        }
    }

    /// Removes a cgroup made for an agent that then did not start; a failure is said.
    func discard(_ leaf: CgroupPath, of id: String) { Self.discard(leaf, of: id, in: tree, events: events) }

    /// `discard` without the engine.
    nonisolated static func discard(_ leaf: CgroupPath, of id: String, in tree: CgroupTree, events: EventPublisher) {
        do {
            try tree.remove(leaf)
        } catch {
            events.publish(.daemon, agent: id, EventText.notRemoved(tree.fs.absolutePath(leaf), error))
        }
    }

    /// What a launch needs once it is admitted: checked on the engine, carried
    /// out off it (`start`), taken into the table on it (`take`).
    struct LaunchPlan: Sendable {
        var id: String
        var group: QuotaGroup
        var limits: LimitSet
        var security: SecurityPolicy
        var priority: (priority: Priority, own: Bool)
        var request: LaunchRequest
        var launch: Launcher.Launch
    }

    /// A launch checked: to start now, or held by the admission queue (its record).
    enum LaunchDecision {
        case start(LaunchPlan)
        case queued(AgentRecord)
    }

    /// Starts `request.command` as a new agent (or queues it: `admission: queue`).
    ///
    /// The cgroup's creation and the process' start (fork, exec, the log's
    /// open: tens of milliseconds under emulation; on `starter`'s thread) and
    /// the first row's commit run off the engine, which meanwhile handles observations: a burst of
    /// launches once held the engine long enough to delay crossings by a
    /// second. The id is reserved and its limits counted (`launching`) while it starts.
    public func launch(_ request: LaunchRequest) async throws -> AgentRecord {
        let plan: LaunchPlan
        var begun = ContinuousClock.now
        switch try planLaunch(request, admitted: false) {
        case .queued(let record): return record
        case .start(let checked): plan = checked
        }
        noteHold("a launch's plan", since: begun)
        launching[plan.id] = (plan.group.name, plan.limits)
        defer { launching[plan.id] = nil }
        let (tree, launcher, events) = (tree, launcher, events)
        writeStartIntent(makeRecord(plan, pid: nil))
        let started = try await starter.run { try Self.start(plan, tree: tree, launcher: launcher, events: events) }
        let record = makeRecord(plan, pid: started.process.pid)
        var unsaved: (any Error)?
        do {
            try await writer.saveNew(record)
        } catch {
            // The agent runs: it is watched all the same, and its row kept until it can be stored.
            unsaved = error
        }
        begun = .now
        take(record, leaf: started.leaf, started: started.process)
        noteHold("a launch's take-over", since: begun)
        if let unsaved { writer.keep(record, what: "the start", error: unsaved) }
        return record
    }

    /// `admitted`: taken from the admission queue, capacity already checked.
    /// All on the engine (the queue is drained from its tick).
    func launch(_ request: LaunchRequest, admitted: Bool) throws -> AgentRecord {
        switch try planLaunch(request, admitted: admitted) {
        case .queued(let record): return record
        case .start(let plan):
            writeStartIntent(makeRecord(plan, pid: nil))
            let started = try Self.start(plan, tree: tree, launcher: launcher, events: events)
            let record = makeRecord(plan, pid: started.process.pid)
            take(record, leaf: started.leaf, started: started.process)
            // As an API launch: the agent runs and is watched; its row is stored in order
            // with the steps, or kept until it can be (thrown, the queue would have
            // recorded a running agent as lost).
            writer.saveStarted(record, what: "the start")
            return record
        }
    }

    /// Checks a launch request: its id, group, limits, isolation and
    /// executable, and its admission.
    func planLaunch(_ request: LaunchRequest, admitted: Bool) throws -> LaunchDecision {
        guard let program = request.command.first, !program.isEmpty else {
            throw EngineError(.invalid, "command is empty: give the program and its arguments, e.g. [\"python3\", \"agent.py\"]")
        }
        let (id, group, limits) = try resolve(
            id: request.id, group: request.group, command: request.command, overrides: request.limits ?? [:])
        let security = try securityPolicy(agent: id, group: group.name, user: request.user, seccomp: request.seccomp)
        let priority = try resolvePriority(agent: id, group: group.name, flag: request.priority)
        if !admitted, case .queue(let shortfalls) = try admission(limits, into: group.name, id: id) {
            var held = request
            held.id = id
            let record = AgentRecord(
                id: id, group: group.name, state: .queued, origin: .launched, pid: nil, command: request.command, limits: limits,
                overrides: request.limits ?? [:], cgroup: "", createdAt: clock(), security: security, priority: priority.priority,
                priorityIsOwn: priority.own)
            return .queued(enqueue(record, .launch(held), shortfalls: shortfalls))
        }
        let isolation: Isolation
        do {
            isolation = try Isolation.prepare(security, cache: filters, supervised: true)
        } catch {
            throw EngineError(.invalid, error.description)
        }
        let environment = request.environment ?? [:]
        let executable: String
        do {
            executable = try launcher.executable(for: program, path: environment["PATH"])
        } catch {
            throw EngineError(.invalid, error.description)
        }
        let launch = Launcher.Launch(
            agent: id, group: group.name, executable: executable, command: request.command, environment: environment,
            workingDirectory: request.workingDirectory, isolation: isolation)
        return .start(
            LaunchPlan(id: id, group: group, limits: limits, security: security, priority: priority, request: request, launch: launch))
    }

    /// A planned agent's cgroup and process, made without the engine.
    struct StartedAgent: Sendable {
        var leaf: CgroupPath
        var process: Launcher.Started
    }

    /// Creates the agent's cgroup and starts its command there; on failure
    /// the cgroup goes again. An async launch runs it on `starter`.
    nonisolated static func start(
        _ plan: LaunchPlan, tree: CgroupTree, launcher: Launcher, events: EventPublisher
    ) throws -> StartedAgent {
        let leaf = try createCgroup(id: plan.id, group: plan.group, limits: plan.limits, priority: plan.priority.priority, in: tree)
        do {
            return StartedAgent(leaf: leaf, process: try launcher.start(plan.launch, in: leaf, of: tree))
        } catch {
            discard(leaf, of: plan.id, in: tree, events: events)
            if let error = error as? SpawnError { throw EngineError(.invalid, error.description) }
            throw EngineError(.failed, "\(error)")
        }
    }

    /// A started agent's row (its start intent's: no pid yet).
    func makeRecord(_ plan: LaunchPlan, pid: Int32?) -> AgentRecord {
        AgentRecord(
            id: plan.id, group: plan.group.name, state: .running, origin: .launched, pid: pid,
            command: plan.request.command, limits: plan.limits, overrides: plan.request.limits ?? [:],
            cgroup: tree.fs.absolutePath(tree.agentPath(group: plan.group.name, agent: plan.id)), createdAt: clock(),
            security: plan.security, priority: plan.priority.priority,
            priorityIsOwn: plan.priority.own)
    }

    /// Takes a started agent into the table and the watcher (its row is stored by the caller).
    func take(_ record: AgentRecord, leaf: CgroupPath, started: Launcher.Started) {
        if let problem = started.logProblem { events.publish(.daemon, agent: record.id, EventText.logProblem(record.id, problem)) }
        if let listener = started.seccompListener {
            // Without a supervisor the closed listener leaves the agent's denied calls failing (ENOSYS).
            if let supervisor = denialSupervisor() { supervisor.supervise(listener, agent: record.id) } else { try? listener.close() }
        }
        admit(record, leaf: leaf)
    }

    /// Creates an agent's cgroup for a process the caller will start in it
    /// (`corral run` with a daemon); `attach` names the process afterwards.
    /// The record carries the agent's security policy: the caller applies it when it starts the process.
    public func register(
        id: String?, group: String?, command: [String], overrides: [Resource: LimitOverride], user: String? = nil, seccomp: String? = nil,
        priority requested: Int? = nil
    ) async throws -> AgentRecord {
        let record = try registerInTable(
            id: id, group: group, command: command, overrides: overrides, user: user, seccomp: seccomp, priority: requested,
            admitted: false)
        if record.state == .starting { try await writer.saveOrThrow(record) }
        return record
    }

    /// `register` up to its row: the cgroup made and the agent in the table (or
    /// queued). The caller stores the row: an API request waits for it; the
    /// admission queue (`admitted`) does not.
    func registerInTable(
        id: String?, group: String?, command: [String], overrides: [Resource: LimitOverride], user: String?, seccomp: String?,
        priority requested: Int?, admitted: Bool
    ) throws -> AgentRecord {
        let (id, group, limits) = try resolve(id: id, group: group, command: command, overrides: overrides)
        let security = try securityPolicy(agent: id, group: group.name, user: user, seccomp: seccomp)
        let priority = try resolvePriority(agent: id, group: group.name, flag: requested)
        if !admitted, case .queue(let shortfalls) = try admission(limits, into: group.name, id: id) {
            let record = AgentRecord(
                id: id, group: group.name, state: .queued, origin: .registered, pid: nil, command: command, limits: limits,
                overrides: overrides, cgroup: "", createdAt: clock(), security: security, priority: priority.priority,
                priorityIsOwn: priority.own)
            return enqueue(
                record, .register(overrides: overrides, user: user, seccomp: seccomp, priority: requested), shortfalls: shortfalls)
        }
        let leaf = try createCgroup(id: id, group: group, limits: limits, priority: priority.priority)
        let record = AgentRecord(
            id: id, group: group.name, state: .starting, origin: .registered, pid: nil, command: command, limits: limits,
            overrides: overrides, cgroup: tree.fs.absolutePath(leaf), createdAt: clock(), security: security,
            priority: priority.priority, priorityIsOwn: priority.own)
        registry[id] = ManagedAgent(record: record, leaf: leaf)
        refreshProtection(of: group.name)
        return record
    }

    /// Takes in an agent whose cgroup was created by the caller (the engine
    /// embedded in `corral run`); `attach` names its process.
    public func adoptCreated(
        id: String, group: String, command: [String], limits: LimitSet, leaf: CgroupPath, priority: Priority = .standard,
        priorityIsOwn: Bool = false
    ) async throws -> AgentRecord {
        let record = AgentRecord(
            id: id, group: group, state: .starting, origin: .registered, pid: nil, command: command, limits: limits,
            cgroup: tree.fs.absolutePath(leaf), createdAt: clock(), priority: priority, priorityIsOwn: priorityIsOwn)
        registry[id] = ManagedAgent(record: record, leaf: leaf)
        try await writer.saveOrThrow(record)
        return record
    }

    /// The registered agent's process is running in its cgroup.
    public func attach(id: String, pid: Int32) async throws -> AgentRecord {
        guard var agent = registry[id] else { throw EngineError(.notFound, "no agent '\(id)'") }
        guard agent.record.state == .starting else {
            throw EngineError(.conflict, "agent '\(id)' is \(agent.record.state.rawValue), not starting")
        }
        agent.record.pid = pid
        agent.record.state = .running
        registry[id] = agent
        try await begin(agent.record, leaf: agent.leaf)
        return agent.record
    }

    /// Moves an existing process (and its threads) into a new agent cgroup.
    public func adopt(pid: Int32, id: String?, group: String?) async throws -> AgentRecord {
        guard pid > 1, Launcher.processExists(pid) else { throw EngineError(.invalid, "no process \(pid)") }
        // The daemon in one of its own agent cgroups would throttle, freeze or kill itself.
        guard pid != getpid() else {
            throw EngineError(.invalid, "process \(pid) is corrald itself: adopt an agent's process, not the daemon's")
        }
        let command = Launcher.commandLine(of: pid)
        let (id, group, limits) = try resolve(id: id, group: group, command: command, overrides: [:])
        let priority = try resolvePriority(agent: id, group: group.name, flag: nil)
        if case .queue(let shortfalls) = try admission(limits, into: group.name, id: id) {
            // A running process cannot wait: it is adopted, and the overcommit said.
            events.publish(
                .daemon, agent: id,
                EventText.adoptedOverCapacity(pid: pid, as: id, shortfalls)
            )
        }
        let leaf = try createCgroup(id: id, group: group, limits: limits, priority: priority.priority)
        let record = AgentRecord(
            id: id, group: group.name, state: .running, origin: .adopted, pid: pid, command: command, limits: limits,
            cgroup: tree.fs.absolutePath(leaf), createdAt: clock(), priority: priority.priority, priorityIsOwn: priority.own)
        writeStartIntent(record)
        do {
            try tree.move(pid: pid, into: leaf)
        } catch {
            discard(leaf, of: id)
            throw EngineError(.failed, "cannot move process \(pid) into \(tree.fs.absolutePath(leaf)): \(error.description)")
        }
        try await begin(record, leaf: leaf)
        return record
    }

    private func begin(_ record: AgentRecord, leaf: CgroupPath) async throws {
        admit(record, leaf: leaf)
        try await writer.saveOrThrow(record)
    }

    /// Puts a started agent in the table and under watch, and says so.
    private func admit(_ record: AgentRecord, leaf: CgroupPath) {
        registry[record.id] = ManagedAgent(record: record, ladder: registry[record.id]?.ladder, leaf: leaf)
        watcher?.watch(agent: record.id, path: leaf)
        refreshProtection(of: record.group)
        events.publish(.agentStarted, agent: record.id, EventText.started(record))
    }

    /// The agent's processes are gone (or its cgroup is).
    func ended(_ id: String, vanished: Bool) {
        sampleRequests[id] = nil
        forgetCadence(of: id)
        guard var agent = registry[id], agent.record.state.isLive else { return }
        if agent.record.state == .starting, !vanished { return }
        reapChildren()
        let termination = agent.record.pid.flatMap { reaper.take($0) }
        var oomKills: Int64 = 0
        if !vanished {
            do {
                // The last reading: its counters (an OOM kill among them) stay in the metrics for a while.
                var final = try tree.sample(agent.leaf)
                oomKills = final.memoryEvents.oomKill
                // Kept while the agent stays in the table: memory.stat's whole table is not needed (inactive_file is taken).
                final.memoryStat = nil
                agent.latest = final
            } catch {
                // Gone meanwhile: it ended all the same, and how is unknown.
            }
        }
        let oomKilled = oomKills > 0 && termination == .signaled(signal: SIGKILL)
        agent.record.state = agent.endedByCorral ? .terminated : (vanished ? .lost : .exited)
        agent.record.endedAt = clock()
        agent.record.exitStatus = termination?.exitStatus
        if agent.record.endReason == nil {
            agent.record.endReason =
                vanished
                ? EndReason.cgroupRemoved
                : oomKilled ? EndReason.oomKilled : agent.ladder.terminating ? EndReason.terminatedByLadder : nil
        }
        if agent.ladder.terminating, agent.record.endReason == nil { agent.record.endReason = EndReason.terminatedByLadder }
        if termination == .signaled(signal: SIGSYS), let policy = agent.record.security, policy.seccomp.filters,
            policy.seccomp.action == .kill, let pid = agent.record.pid
        {
            if agent.record.endReason == nil {
                agent.record.endReason = "killed by SIGSYS: its seccomp filter (seccomp_action: kill) refused a syscall"
            }
            // The kernel's audit record names the call; read off the engine (kauditd prints it shortly after).
            let (writer, events, clock) = (writer, events, clock)
            writer.later {
                let name = KernelLog.seccompKill(pid: pid).flatMap(Seccomp.syscallName) ?? KernelLog.unknownSyscall
                let now = clock()
                Self.record(
                    SyscallDenial(agent: id, syscall: name, count: 1, firstAt: now, lastAt: now, action: .kill, pid: pid), writer: writer,
                    events: events)
            }
        }
        watcher?.unwatch(agent: id)
        if agent.record.origin != .registered, !vanished { removeInBackground(agent.leaf, id: id) }
        agent.terminationDeadline = nil
        // A freeze still waiting for its confirmation: the agent ended first, and that is recorded.
        if let abandoned = enforcer.abandonFreeze(&agent, because: "the agent ended") {
            writer.commit(CommitRequest(records: [abandoned], plans: [], ladder: nil, agent: nil), agent: id)
        }
        registry[id] = agent
        // Its ladder's row goes with it (a stale one would be harmless: restore
        // ignores ladders of agents that are not live).
        writer.save(agent.record, what: "the end", forgetLadder: true)
        refreshProtection(of: agent.record.group)
        events.publish(.agentExited, agent: id, EventText.ended(agent.record, termination))
        if !admissionQueue.isEmpty { admitQueued() }
    }

    /// A registered agent (`corral run`) ended: the caller knows its exit
    /// status. The daemon removes the cgroup once the caller has read it.
    public func finished(_ id: String, exitStatus: Int32?, reason: String?, pid: Int32? = nil) async throws -> AgentRecord {
        guard registry[id] != nil else { throw EngineError(.notFound, "no agent '\(id)'") }
        // Never attached (its command did not start, or ended before `corral run` attached
        // it): it ends all the same, with the process named here. The pid is noted after the
        // end: it names the caller's child, never one of this daemon's to reap.
        let neverAttached = registry[id]?.record.state == .starting
        if neverAttached { registry[id]?.record.state = .running }
        if registry[id]?.record.state.isLive == true { ended(id, vanished: false) }
        guard var agent = registry[id] else { throw EngineError(.notFound, "no agent '\(id)'") }
        if neverAttached, let pid, agent.record.pid == nil { agent.record.pid = pid }
        if let exitStatus { agent.record.exitStatus = exitStatus }
        if let reason { agent.record.endReason = reason }
        if agent.record.origin == .registered { removeInBackground(agent.leaf, id: id) }
        registry[id] = agent
        try await writer.saveOrThrow(agent.record)
        return agent.record
    }

    /// Removes an ended agent's cgroup without holding up the engine: a
    /// cgroup whose last tasks are still dying answers EBUSY for a while, and
    /// the retries (1 ms doubling, 10 tries, as runc) sleep off the actor.
    nonisolated func removeInBackground(_ leaf: CgroupPath, id: String) {
        let tree = tree
        let events = events
        func failed(_ error: CgroupError) {
            events.publish(.daemon, agent: id, EventText.notRemoved(tree.fs.absolutePath(leaf), error))
        }
        // Mostly it goes at once; only a busy cgroup is retried in the background.
        do {
            try tree.remove(leaf, attempts: 1)
            return
        } catch  where error.code == .busy {
        } catch {
            failed(error)
            return
        }
        Task.detached {
            do throws(CgroupError) {
                try await tree.removeWithoutBlocking(leaf)
            } catch  where error.code == .busy && Task.isCancelled {
                // The daemon is stopping: the next start finds the cgroup and ends it.
            } catch {
                failed(error)
            }
        }
    }
}
