import CorralCgroup
import CorralCore

extension Engine {
    /// What `restore` found.
    public struct Reconciliation: Equatable, Sendable {
        public var reattached: [String] = []
        public var ended: [String] = []
        public var discovered: [String] = []
        public var removedOrphans: [String] = []
        /// Re-attached agents whose `cgroup.freeze` disagreed with their state:
        /// a freeze written before the daemon stopped and never confirmed (the
        /// kernel's `frozen` decides: suspended, awaiting confirmation again, or
        /// rolled back), or a thaw done but never saved (the agent is running).
        public var frozenStateRepaired: [String] = []
        /// Agents with a step carried out but never stored (the daemon was
        /// killed in between): their intents replayed, records stored.
        public var replayed: [String] = []
        /// Agents started just before the daemon stopped whose rows were
        /// never stored: taken in with the row of their start intent.
        public var startsRecovered: [String] = []
        /// Re-attached agents whose kernel limits differed from what their stored
        /// state holds (a throttle written, its record lost: a host-pressure
        /// clamp has no intent; or a limit change applied, its save lost), put
        /// back to their configured values: "id: file before → after, …".
        public var limitsRestored: [String] = []
        /// Cgroups that could not be read or removed, with why (said, not fatal).
        public var problems: [String] = []
    }
}

/// Start-up: reconciles the stored agents with the cgroup tree. Live agents
/// are re-attached with their ladders; agents that ended while nobody watched
/// are marked; populated leaves nobody knows are taken in; empty ones removed.
struct Reconciler {
    let tree: CgroupTree
    let store: any EngineStore
    let configuration: CorralConfiguration
    let now: Timestamp
    /// Carries out again what unsettled intents asked.
    let enforcer: Enforcer
    /// Steps carried out but not stored before the daemon stopped, in order.
    var intents: [ActionIntent] = []
    /// New agents' rows from the journal's start intents, by id: a populated
    /// cgroup with no stored row is such an agent whose row was never stored.
    var starts: [String: AgentRecord] = [:]

    /// The agents to manage, and the report.
    func run() throws -> (agents: [String: ManagedAgent], report: Engine.Reconciliation) {
        var report = Engine.Reconciliation()
        var agents: [String: ManagedAgent] = [:]
        let stored = try store.agents()
        let ladders = Dictionary(try store.ladders().map { ($0.agent, $0) }, uniquingKeysWith: { _, last in last })
        let unsettled = Dictionary(grouping: intents, by: \.agent)
        // The replays' records and rows, stored in one transaction with the mark that settles
        // them: a restart killed before it replays them again, one after it never does.
        var replays: [CommitRequest] = []
        for var record in stored where record.state.isLive {
            let leaf = tree.agentPath(group: record.group, agent: record.id)
            let replaying = unsettled[record.id] ?? []
            let populated: Bool?
            do {
                populated = try tree.isPopulated(leaf)
            } catch {
                if error.code != .notFound && error.code != .removed {
                    report.problems.append("\(tree.fs.absolutePath(leaf)): \(error.description)")
                }
                populated = nil
            }
            guard populated == true else {
                record.state = .lost
                record.endedAt = now
                record.endReason = populated == nil ? EndReason.goneWhileDown : EndReason.endedWhileDown
                remove(leaf, &report)
                report.ended.append(record.id)
                guard replaying.isEmpty else {
                    var request = CommitRequest(records: replayEnded(replaying, &record), plans: [], ladder: nil, agent: record)
                    request.forgetsLadder = true
                    replays.append(request)
                    report.replayed.append(record.id)
                    continue
                }
                _ = try store.commit(records: [], ladder: nil, agent: record)
                try store.deleteLadder(agent: record.id)
                continue
            }
            var ladder = replaying.last?.ladder ?? ladders[record.id] ?? AgentLadder(agent: record.id)
            ladder.resume(at: now)
            var managed = ManagedAgent(record: record, ladder: ladder, leaf: leaf)
            var records = replay(replaying, on: &managed)
            // A freeze the replay asked for is settled by the engine; otherwise the kernel's
            // freeze state is checked against the agent's.
            let repair = managed.pendingFreeze == nil ? repairFreeze(leaf, &managed.record, &managed.ladder, &report) : nil
            if let repair {
                records += repair.records
                managed.pendingFreeze = repair.pending
                report.frozenStateRepaired.append(record.id)
            }
            if let restored = repairLimits(leaf, managed, &report) { report.limitsRestored.append(restored) }
            if !replaying.isEmpty {
                replays.append(CommitRequest(records: records, plans: [], ladder: managed.ladder, agent: managed.record))
                report.replayed.append(record.id)
            } else if repair != nil {
                _ = try store.commit(records: records, ladder: managed.ladder, agent: managed.record)
            }
            if managed.terminationDeadline == nil, managed.ladder.terminating {
                managed.terminationDeadline = now + configuration.escalation(for: record.group).terminationGrace
            }
            agents[record.id] = managed
            report.reattached.append(record.id)
        }
        if let last = intents.map(\.sequence).max() {
            // Intents of agents stored as ended were settled by the end's own commit, which followed theirs.
            if replays.isEmpty { replays.append(CommitRequest(records: [], plans: [], ladder: nil, agent: nil)) }
            replays[replays.count - 1].intent = last
            _ = try store.commit(batch: replays)
        }
        let known = Dictionary(stored.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        for group in children(of: tree.root, &report) where group != CgroupTree.supervisorName && CgroupName.isValid(group) {
            for name in children(of: tree.groupPath(group), &report) where agents[name] == nil && CgroupName.isValid(name) {
                let leaf = tree.agentPath(group: group, agent: name)
                let populated: Bool
                do {
                    populated = try tree.isPopulated(leaf)
                } catch {
                    report.problems.append("\(tree.fs.absolutePath(leaf)): \(error.description)")
                    continue
                }
                guard populated else {
                    remove(leaf, &report)
                    report.removedOrphans.append("\(group)/\(name)")
                    continue
                }
                // Started just before the daemon stopped, its row never stored (a stored row of
                // this id is an earlier, ended agent's): the start's own row (command, limits,
                // security), not the group's defaults.
                if var started = starts[name], started.group == group, known[name].map({ $0.createdAt <= started.createdAt }) ?? true {
                    started.state = .running
                    started.pid = firstProcess(leaf)
                    started.cgroup = tree.fs.absolutePath(leaf)
                    agents[name] = ManagedAgent(record: started, leaf: leaf)
                    _ = try store.commit(records: [], ladder: nil, agent: started)
                    report.reattached.append(name)
                    report.startsRecovered.append(name)
                    continue
                }
                let record = AgentRecord(
                    id: name, group: group, state: .running, origin: .discovered, pid: firstProcess(leaf),
                    command: known[name]?.command ?? [],
                    limits: configuration.limits(agent: name, group: group) ?? known[name]?.limits ?? LimitSet(),
                    cgroup: tree.fs.absolutePath(leaf), createdAt: now)
                agents[name] = ManagedAgent(record: record, leaf: leaf)
                _ = try store.commit(records: [], ladder: nil, agent: record)
                report.discovered.append(name)
            }
        }
        return (agents, report)
    }

    /// What a restart finds when the daemon died between writing `cgroup.freeze`
    /// and saving what came of it. Frozen while not suspended, with the ladder's
    /// suspend saved: the kernel is the judge. `frozen 1` in cgroup.events: the
    /// freeze took effect, so the agent is suspended and its suspend recorded
    /// as done (an effect in the kernel always has its record). Not yet: the
    /// freeze waits for its confirmation again, as a fresh one would (confirmed
    /// or rolled back within `Enforcer.freezeConfirmation`). A freeze whose
    /// step the ladder never saved is rolled back: the ladder takes the step
    /// again and records it then.
    /// Suspended while not frozen: a thaw whose save was lost; the agent runs.
    /// Nil when the two agree, or when cgroup.freeze cannot be read (a problem of the report).
    private func repairFreeze(
        _ leaf: CgroupPath, _ record: inout AgentRecord, _ ladder: inout AgentLadder, _ report: inout Engine.Reconciliation
    ) -> FreezeRepair? {
        let text: String
        do throws(CgroupError) {
            text = try tree.fs.read(.freeze, of: leaf)
        } catch {
            report.problems.append("\(record.id): whether it is frozen is unknown (its state is left as stored): \(error.description)")
            return nil
        }
        let requested = text.hasPrefix("1")
        switch (requested, record.state == .suspended) {
        case (true, false):
            let violation =
                ladder.episodes.values.map(\.violation).max { $0.kind < $1.kind }
                ?? Violation(agent: record.id, resource: .memory, kind: .hard, current: 0, limit: 0)
            if ladder.suspended {
                do {
                    if try tree.isFrozen(leaf) {
                        record.state = .suspended
                        let confirmed = EnforcementRecord(
                            violation: violation, action: .suspend, at: now, succeeded: true, details: EventText.frozenAtRestart)
                        return FreezeRepair(records: [confirmed])
                    }
                    return FreezeRepair(
                        pending: PendingFreeze(
                            violation: violation, at: now, started: .now, deadline: now + Enforcer.freezeConfirmation))
                } catch {
                    report.problems.append("\(tree.fs.absolutePath(leaf)): a freeze with no outcome saved: \(error.description)")
                }
            }
            do {
                try tree.cancelFreeze(leaf)
            } catch {
                report.problems.append("\(tree.fs.absolutePath(leaf)): frozen with no suspend saved, and not thawed: \(error.description)")
                return nil
            }
            guard ladder.suspended else { return FreezeRepair() }
            ladder.noteSuspendFailed()
            let failed = EnforcementRecord(
                violation: violation, action: .suspend, at: now, succeeded: false,
                error: "cgroup.events could not be read at corrald's restart; the freeze was rolled back",
                details: EventText.freezeFailed)
            return FreezeRepair(records: [failed])
        case (false, true):
            record.state = .running
            ladder.noteThawed()
            return FreezeRepair()
        default:
            return nil
        }
    }

    /// The limit files a throttle lowers (memory.high, cpu.max, pids.max) put
    /// back to the agent's configured values where its stored ladder holds no
    /// throttle of that resource. Only the host ladder writes a limit with no
    /// intent before it (its step is saved with the agent's ladder after the
    /// write), so a daemon killed in between left a clamp in the kernel that
    /// no record names and no recovery would release; the configured limit is
    /// what the stored state says is in force. A value the kernel rounded down
    /// to its page size counts as equal. Nil: nothing to put back.
    private func repairLimits(_ leaf: CgroupPath, _ agent: ManagedAgent, _ report: inout Engine.Reconciliation) -> String? {
        let limits = agent.record.limits
        let hostClamped = (agent.ladder.hostSteps ?? []).contains { $0.stage == .throttled }
        let held = Set(agent.ladder.throttled.keys).union(hostClamped ? [.memory, .cpu] : [])
        var changes: [String] = []
        // A file that is not there (its controller not enabled) has no limit to put back.
        func read(_ file: CgroupFile) throws(CgroupError) -> String? {
            do {
                return try tree.fs.read(file, of: leaf).trimmingSpaces()
            } catch  where error.code == .notFound {
                return nil
            }
        }
        do throws(CgroupError) {
            if !held.contains(.memory), let text = try read(.memoryHigh) {
                let configured = limits[.memory].map { Int64($0.soft) }
                let current = CgroupValue(parsing: text)?.value
                let equal =
                    switch (current, configured) {
                    case (nil, nil): true
                    case (let current?, let configured?): current <= configured && configured - current < 65_536
                    default: false
                    }
                if !equal {
                    let value = configured.map(String.init) ?? "max"
                    try tree.fs.write(value, to: .memoryHigh, of: leaf)
                    changes.append("memory.high \(text) → \(value)")
                }
            }
            if !held.contains(.cpu), let text = try read(.cpuMax) {
                let configured = limits[.cpu].map { CPUMax(percent: $0.hard) } ?? CPUMax(quota: nil)
                if CPUMax(parsing: text) != configured {
                    if let cpu = limits[.cpu] {
                        _ = try tree.restore(leaf, .cpu, limit: cpu)
                    } else {
                        try tree.fs.write(configured.description, to: .cpuMax, of: leaf)
                    }
                    changes.append("cpu.max \(text) → \(configured)")
                }
            }
            if !held.contains(.processes), let text = try read(.pidsMax) {
                let configured = limits[.processes].map { String(Int64($0.hard)) } ?? "max"
                if text != configured {
                    try tree.fs.write(configured, to: .pidsMax, of: leaf)
                    changes.append("pids.max \(text) → \(configured)")
                }
            }
        } catch {
            report.problems.append("\(agent.record.id): its limits could not be checked against its stored state: \(error.description)")
        }
        return changes.isEmpty ? nil : "\(agent.record.id): \(changes.joined(separator: ", "))"
    }

    /// Carries out again, through the enforcer, what the unsettled intents of
    /// a live agent asked, with each step's time: a limit written, a freeze
    /// asked, SIGTERM sent, a cgroup.kill written (each as the step did it;
    /// done twice, the same). A migrate or custom handler is not run again:
    /// its outcome is unknown. The records say they were replayed.
    private func replay(_ intents: [ActionIntent], on agent: inout ManagedAgent) -> [EnforcementRecord] {
        var records: [EnforcementRecord] = []
        for intent in intents {
            switch intent.work {
            case .commands(let commands):
                for command in commands {
                    let outcome = enforcer.execute(command, on: &agent, at: intent.at)
                    records += outcome.records
                    if let job = outcome.handler {
                        records.append(
                            EnforcementRecord(
                                violation: job.violation, action: job.action, at: intent.at, succeeded: false,
                                error: "corrald stopped while the handler ran", details: EventText.handlerOutcomeUnknown(job.command)))
                    }
                }
            case .kill(let violation):
                records.append(enforcer.finishTermination(agent, for: violation, at: intent.at))
            case .start:
                break  // not replayed (see `starts`)
            }
        }
        // A freeze asked again now has its whole confirmation time from now.
        if var pending = agent.pendingFreeze {
            pending.started = .now
            pending.deadline = now + Enforcer.freezeConfirmation
            agent.pendingFreeze = pending
        }
        return records.map { record in
            var record = record
            if !record.details.hasSuffix(EventText.replayed) { record.details += EventText.replayed }
            return record
        }
    }

    /// The records of unsettled intents whose agent ended while the daemon was
    /// down: what needed no kernel (a warning, a scale-down request) as it
    /// would have been; a terminate or kill as done (the agent ended; the
    /// intent was written just before the signal); a throttle or suspend as
    /// unconfirmed. A terminate or kill makes the agent `terminated`.
    private func replayEnded(_ intents: [ActionIntent], _ record: inout AgentRecord) -> [EnforcementRecord] {
        var records: [EnforcementRecord] = []
        func add(_ violation: Violation, _ action: EnforcementAction, at: Timestamp, ok: Bool, error: String? = nil, _ details: String) {
            records.append(EnforcementRecord(violation: violation, action: action, at: at, succeeded: ok, error: error, details: details))
        }
        func terminated(_ violation: Violation) {
            record.state = .terminated
            record.endReason = EventText.terminateReason(violation)
        }
        for intent in intents {
            switch intent.work {
            case .commands(let commands):
                for command in commands {
                    switch command {
                    case .warn(let violation):
                        add(violation, .warn, at: intent.at, ok: true, EventText.warned(violation) + EventText.replayed)
                    case .scaleDown(let violation, let request):
                        add(violation, .scaleDown, at: intent.at, ok: true, EventText.scaleDownRequested(request) + EventText.replayed)
                    case .scaleDownResolved(let agent, let request, let usage, let met):
                        var resolved = Enforcer.scaleDownResolved(agent, request, usage: usage, met: met, at: intent.at)
                        resolved.details += EventText.replayed
                        records.append(resolved)
                    case .throttle(let violation, _), .suspend(let violation), .migrate(let violation), .custom(let violation):
                        add(
                            violation, command.action ?? .throttle, at: intent.at, ok: false, error: EventText.endedBeforeReplay,
                            "not confirmed" + EventText.replayed)
                    case .terminate(let violation, _):
                        add(violation, .terminate, at: intent.at, ok: true, EventText.endedAfter("SIGTERM sent"))
                        terminated(violation)
                    case .restore:
                        break
                    }
                }
            case .kill(let violation):
                add(violation, .terminate, at: intent.at, ok: true, EventText.endedAfter("cgroup.kill written"))
                terminated(violation)
            case .start:
                break
            }
        }
        return records
    }

    /// How `repairFreeze` set a freeze right: records to save, or a freeze to confirm.
    struct FreezeRepair {
        var records: [EnforcementRecord] = []
        var pending: PendingFreeze?
    }

    private func children(of path: CgroupPath, _ report: inout Engine.Reconciliation) -> [String] {
        do {
            return try tree.fs.children(of: path)
        } catch  where error.code == .notFound {
            return []
        } catch {
            report.problems.append("\(tree.fs.absolutePath(path)): \(error.description)")
            return []
        }
    }

    private func remove(_ leaf: CgroupPath, _ report: inout Engine.Reconciliation) {
        do {
            try tree.remove(leaf)
        } catch {
            report.problems.append("\(tree.fs.absolutePath(leaf)): \(error.description)")
        }
    }

    /// The agent's first process, as its pid (a discovered agent has no other).
    private func firstProcess(_ leaf: CgroupPath) -> Int32? {
        do {
            return try tree.allProcesses(leaf).first
        } catch {
            return nil
        }
    }
}
