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

    /// The agents to manage, and the report.
    func run() throws -> (agents: [String: ManagedAgent], report: Engine.Reconciliation) {
        var report = Engine.Reconciliation()
        var agents: [String: ManagedAgent] = [:]
        let stored = try store.agents()
        let ladders = Dictionary(try store.ladders().map { ($0.agent, $0) }, uniquingKeysWith: { _, last in last })
        for var record in stored where record.state.isLive {
            let leaf = tree.agentPath(group: record.group, agent: record.id)
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
                _ = try store.commit(records: [], ladder: nil, agent: record)
                try store.deleteLadder(agent: record.id)
                report.ended.append(record.id)
                continue
            }
            var ladder = ladders[record.id] ?? AgentLadder(agent: record.id)
            ladder.resume(at: now)
            let repair = repairFreeze(leaf, &record, &ladder, &report)
            if let repair {
                _ = try store.commit(records: repair.records, ladder: ladder, agent: record)
                report.frozenStateRepaired.append(record.id)
            }
            var managed = ManagedAgent(record: record, ladder: ladder, leaf: leaf)
            managed.pendingFreeze = repair?.pending
            if ladder.terminating {
                managed.terminationDeadline = now + configuration.escalation(for: record.group).terminationGrace
            }
            agents[record.id] = managed
            report.reattached.append(record.id)
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
    /// Nil when the two agree (or cgroup.freeze cannot be read).
    private func repairFreeze(
        _ leaf: CgroupPath, _ record: inout AgentRecord, _ ladder: inout AgentLadder, _ report: inout Engine.Reconciliation
    ) -> FreezeRepair? {
        guard let text = try? tree.fs.read(.freeze, of: leaf) else { return nil }
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
