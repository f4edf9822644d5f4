import CorralAPI
import CorralCgroup
public import CorralCore

/// The host ladder's steps carried out: when the root as a whole is short of
/// memory, the lowest-priority agents are degraded, throttled, frozen (and,
/// when configured, killed), each step recorded with its real outcome (kind
/// `host_pressure`); recovery thaws and restores them in reverse order.
extension Engine {
    /// A freeze of the host ladder waiting for cgroup.events' `frozen 1`.
    struct HostFreeze {
        var record: EnforcementRecord
        var requested: ContinuousClock.Instant
    }

    /// How long a host freeze may take before it counts as failed.
    static let hostFreezeConfirmation: Duration = .seconds(2)

    /// A reading of the root from the host monitor.
    public func observeHost(_ reading: HostReading) {
        confirmHostFreezes()
        var candidates: [HostCandidate] = []
        candidates.reserveCapacity(registry.count)
        registry.forEachLive { id, agent in
            guard agent.record.state == .running || agent.record.state == .suspended else { return }
            let hostFrozen = hostLadder.stage(of: id) == .frozen
            candidates.append(
                HostCandidate(
                    agent: id, priority: agent.record.priority, memory: agent.usage[.memory] ?? 0,
                    listens: hub.listenerCount(agent: id) > 0,
                    frozenElsewhere: agent.record.state == .suspended && !hostFrozen, memoryLimit: agent.record.limits[.memory]?.hard))
        }
        let policy = configuration.hostPressure
        for command in hostLadder.observe(reading, candidates: candidates, policy: policy) {
            switch command {
            case .started(let reason):
                events.publish(.hostPressure, agent: nil, EventText.hostPressureStarted(reason, protectAbove: policy.protectAbove))
            case .step(let id, let stage):
                hostStep(id, stage, reading: reading)
            case .undo(let id, let stages):
                hostUndo(id, stages)
            case .exhausted:
                events.publish(
                    .hostPressure, agent: nil,
                    EventText.hostPressureExhausted(protectAbove: policy.protectAbove, terminate: policy.terminate))
            case .ended:
                events.publish(.hostPressure, agent: nil, EventText.hostPressurePassed)
            }
        }
    }

    /// The violation a host step is recorded under: the root's memory against the high watermark.
    func hostViolation(_ id: String, _ reading: HostReading) -> Violation {
        Violation(
            agent: id, resource: .memory, kind: .hostPressure, current: reading.memoryUsed,
            limit: (reading.memoryAllocatable * configuration.hostPressure.memoryHigh).rounded())
    }

    func hostStep(_ id: String, _ stage: HostStage, reading: HostReading) {
        guard var agent = registry[id], agent.record.state.isLive else { return }
        let now = clock()
        let violation = hostViolation(id, reading)
        let context =
            "host memory \(Quantity.formatBytes(reading.memoryUsed)) of \(Quantity.formatBytes(reading.memoryAllocatable)) allocatable, priority \(agent.record.priority)"
        // The step's record, stored with the agent's ladder (which keeps the host steps in
        // force, for a restart); a step that failed is taken back, so it is tried again.
        func record(_ ok: Bool, _ details: String, error: String? = nil) {
            if !ok { hostLadder.failed(agent: id, stage: stage) }
            let steps = hostLadder.steps.filter { $0.agent == id }
            agent.ladder.hostSteps = steps.isEmpty ? nil : steps
            registry[id] = agent
            let entry = EnforcementRecord(
                violation: violation, action: stage.action, at: now, succeeded: ok, error: error, details: "\(details) (\(context))")
            writer.commit(CommitRequest(records: [entry], plans: [], ladder: agent.ladder, agent: agent.record), agent: id)
        }
        switch stage {
        case .degraded:
            let soft = agent.record.limits[.memory]?.soft ?? reading.memoryUsed
            let usage = agent.usage[.memory] ?? 0
            let plan = DegradationPlan(
                agent: id, resource: .memory, level: .emergency, previousLevel: agent.ladder.degradation?[.memory]?.level ?? .none,
                reason: .pressure, strategies: DegradationStrategy.plan(for: .memory, at: .emergency), usage: usage, limit: soft,
                targetUsage: soft * configuration.recovery.usageBelow, recoveryStage: 0, at: now)
            events.publish(.degradationStrategy, agent: id, EventText.degradation(plan), resource: .memory, plan: plan)
            let listeners = hub.listenerCount(agent: id)
            writer.commit(CommitRequest(records: [], plans: [plan], ladder: nil, agent: nil), agent: id)
            record(
                listeners > 0,
                "degradation emergency sent to \(listeners) listener(s): \(plan.strategies.map(\.strategy.rawValue).joined(separator: ", "))",
                error: listeners > 0 ? nil : "nobody follows its event stream")
        case .throttled:
            var changes: [String] = []
            do throws(CgroupError) {
                let usage = Int64(agent.usage[.memory] ?? agent.latest?.memoryCurrent.map(Double.init) ?? 0)
                try tree.clampForHost(
                    agent.leaf, memoryUsage: usage, cpuLimit: agent.record.limits[.cpu]?.hard, share: Self.hostThrottleCPUShare,
                    changed: &changes)
                record(true, changes.joined(separator: ", "))
            } catch {
                record(false, changes.joined(separator: ", "), error: error.description)
            }
        case .frozen:
            do throws(CgroupError) {
                let started = ContinuousClock.now
                if try tree.requestFreeze(agent.leaf) {
                    agent.record.state = .suspended
                    registry[id] = agent
                    writer.save(agent.record, what: "the freeze")
                    record(true, "frozen in \((ContinuousClock.now - started).milliseconds) ms")
                    events.publish(.suspended, agent: id, EventText.hostFrozen(id))
                } else {
                    hostFreezes[id] = HostFreeze(
                        record: EnforcementRecord(
                            violation: violation, action: .suspend, at: now, succeeded: false, details: context),
                        requested: started)
                }
            } catch {
                record(false, "cgroup.freeze not written", error: EventText.joined(error.description, tree.rollBackFreeze(agent.leaf)))
            }
        case .terminated:
            do throws(CgroupError) {
                let method = try tree.kill(agent.leaf)
                agent.record.endReason = "terminated: the host was short of memory (priority \(agent.record.priority), lowest first)"
                agent.endRequested = .kill
                registry[id] = agent
                record(true, "killed (\(method))")
            } catch {
                record(false, "not killed", error: error.description)
            }
        }
    }

    /// The share of its cpu.max an agent keeps while the host ladder throttles it.
    static let hostThrottleCPUShare = 0.25

    /// Host freezes confirmed (or timed out) since the last reading.
    func confirmHostFreezes() {
        for (id, pending) in hostFreezes {
            guard var agent = registry[id], agent.record.state.isLive else {
                hostFreezes[id] = nil
                continue
            }
            let frozen: Bool
            var unreadable: String?
            do throws(CgroupError) {
                frozen = try tree.isFrozen(agent.leaf)
            } catch {
                frozen = false
                unreadable = "cgroup.events unreadable: \(error.description)"
            }
            let waited = ContinuousClock.now - pending.requested
            guard frozen || unreadable != nil || waited >= Self.hostFreezeConfirmation else { continue }
            hostFreezes[id] = nil
            var entry = pending.record
            entry.succeeded = frozen
            entry.details =
                (frozen ? "frozen within \(waited.milliseconds) ms" : "not frozen after \(waited.milliseconds) ms") + " (\(entry.details))"
            if frozen {
                agent.record.state = .suspended
                events.publish(.suspended, agent: id, EventText.hostFrozen(id))
            } else {
                entry.error = EventText.joined(unreadable ?? "cgroup.events did not say frozen", tree.rollBackFreeze(agent.leaf))
                hostLadder.failed(agent: id, stage: .frozen)
            }
            let steps = hostLadder.steps.filter { $0.agent == id }
            agent.ladder.hostSteps = steps.isEmpty ? nil : steps
            registry[id] = agent
            writer.commit(CommitRequest(records: [entry], plans: [], ladder: agent.ladder, agent: agent.record), agent: id)
        }
    }

    /// Undoes the host ladder's stages of one agent, latest first.
    func hostUndo(_ id: String, _ stages: [HostStage]) {
        guard var agent = registry[id], agent.record.state.isLive else { return }
        for stage in stages {
            switch stage {
            case .frozen:
                hostFreezes[id] = nil
                // Frozen by its own ladder (or a freeze of it pending) meanwhile: it stays frozen.
                guard !agent.ladder.suspended, agent.pendingFreeze == nil else {
                    events.publish(.daemon, agent: id, EventText.staysFrozenAfterHostPressure(id))
                    continue
                }
                do throws(CgroupError) {
                    try tree.thaw(agent.leaf)
                    agent.record.state = .running
                    events.publish(.thawed, agent: id, EventText.hostThawed(id))
                } catch {
                    events.publish(.daemon, agent: id, EventText.hostThawFailed(id, error))
                }
            case .throttled:
                do throws(CgroupError) {
                    // The configured memory.high and cpu.max ("max" where there is no limit), then
                    // whatever the agent's own ladder still has throttled.
                    try tree.releaseHostClamp(agent.leaf, memory: agent.record.limits[.memory], cpu: agent.record.limits[.cpu])
                    for (resource, cumulative) in agent.ladder.throttled.sorted(by: { $0.key < $1.key }) {
                        guard let limit = agent.record.limits[resource] else { continue }
                        _ = try tree.throttle(
                            agent.leaf, resource, limit: limit, cumulative: cumulative, processes: agent.usage[.processes])
                    }
                    events.publish(.throttleRestored, agent: id, EventText.hostClampReleased(id), resource: .memory)
                } catch {
                    events.publish(.daemon, agent: id, EventText.hostClampNotReleased(id, error))
                }
            case .degraded:
                let soft = agent.record.limits[.memory]?.soft ?? 0
                let plan = DegradationPlan(
                    agent: id, resource: .memory, level: .none, previousLevel: .emergency, reason: .recovery, strategies: [],
                    usage: agent.usage[.memory] ?? 0, limit: soft, targetUsage: soft * configuration.recovery.usageBelow, recoveryStage: 0,
                    at: clock())
                events.publish(.recoveryStage, agent: id, EventText.degradation(plan), resource: .memory, plan: plan)
                writer.commit(CommitRequest(records: [], plans: [plan], ladder: nil, agent: nil), agent: id)
            case .terminated:
                break
            }
        }
        agent.ladder.hostSteps = nil
        registry[id] = agent
        writer.commit(CommitRequest(records: [], plans: [], ladder: agent.ladder, agent: agent.record), agent: id)
    }

    /// After a restart: the host steps in force, from the agents' ladders.
    func restoreHostLadder() {
        let steps = registry.live.flatMap { _, agent in agent.ladder.hostSteps ?? [] }
        hostLadder = HostPressureLadder(restoring: steps)
    }
}
