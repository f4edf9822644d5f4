import CorralCore
import CorralRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// The engine's timers (`tick`, every 200 ms from `EngineLoop`: due ladder
/// steps, terminations whose grace ended, reaping, retries, analytics) and
/// the outcomes of handler processes (migrate, custom actions).
extension Engine {
    // MARK: Timers

    /// Periodic duties: children to reap, rows to store again, analytics,
    /// terminations whose grace ended, ladders that are due (a fresh sample
    /// is requested for the re-check). Returns how long its own work took
    /// (on the engine: the caller's wait for the actor is not in it).
    @discardableResult
    public func tick() -> Duration {
        let started = ContinuousClock.now
        reapChildren()
        writer.retryUnsaved()
        clearSettledIntents()
        if !admissionQueue.isEmpty { admitQueued() }
        let now = clock()
        analyticsDuties(at: now)
        // Only the agents with a ladder, a grace or a freeze under way: the
        // others have nothing due (the registry keeps the set as they change).
        for id in registry.timedIDs {
            // Read in place (a copy of each agent five times a second showed at 1,000 agents).
            enum Duty { case none, finish, settleFreeze }
            let duty =
                registry.update(id) { agent -> Duty in
                    guard agent.record.state.isLive else { return .none }
                    if let deadline = agent.terminationDeadline, now >= deadline {
                        agent.terminationDeadline = nil
                        return .finish
                    }
                    return agent.pendingFreeze != nil ? .settleFreeze : .none
                } ?? Duty.none
            switch duty {
            case .finish:
                finishTermination(id)
                continue
            case .settleFreeze: settlePendingFreeze(id, at: now)
            case .none: break
            }
            let isDue =
                registry.update(id) { agent -> Bool in
                    guard agent.record.state.isLive, !agent.ladder.isQuiet,
                        let due = agent.ladder.nextDue(limits: agent.record.limits, settings: settings(for: agent.record.group))
                    else { return false }
                    return due <= now
                } ?? false
            guard isDue else {
                sampleRequests[id] = nil
                continue
            }
            // The watcher's thread takes the reading; while it is on its way
            // (behind other observations in the queue) it is not asked again.
            if let asked = sampleRequests[id], now - asked < .seconds(1) { continue }
            sampleRequests[id] = now
            watcher?.requestSample(agent: id)
        }
        noteHold("the tick", since: started)
        return ContinuousClock.now - started
    }

    /// Confirms or fails a freeze that no observation settled (an agent
    /// whose cgroup.events change was missed, or not seen yet).
    func settlePendingFreeze(_ id: String, at now: Timestamp) {
        guard var agent = registry[id], let record = enforcer.settleFreeze(&agent, at: now) else { return }
        registry[id] = agent
        writer.commit(CommitRequest(records: [record], plans: [], ladder: agent.ladder, agent: agent.record), agent: id)
    }

    /// Collects the exit status of agents this process started.
    func reapChildren() {
        reaper.reap(registry.launchedPIDs)
    }

    /// The grace after SIGTERM has passed: processes still there are killed.
    func finishTermination(_ id: String) {
        guard let agent = registry[id], agent.record.state.isLive else { return }
        do {
            guard try tree.isPopulated(agent.leaf) else { return }
        } catch {
            return  // gone: the watcher reports it, and `ended` records it
        }
        let now = clock()
        let violation = Enforcer.terminationViolation(agent)
        // An operator's stop is not a ladder action: nothing to record.
        guard agent.endRequested != .stop else {
            _ = enforcer.finishTermination(agent, for: violation, at: now)
            return
        }
        let intent = writeIntent(id, at: now, .kill(violation), ladder: agent.ladder)
        let outcome = enforcer.finishTermination(agent, for: violation, at: now)
        writer.commitNow(records: [outcome], ladder: agent.ladder, agent: agent.record, intent: intent) { "terminate: \($0.details)" }
    }

    // MARK: Handlers

    /// Runs a migrate/custom handler off the engine; its record follows.
    func run(_ job: HandlerJob) {
        let input = HandlerInput(action: job.action, violation: job.violation).json
        Task.detached { [weak self] in
            let outcome = await HandlerRunner.run(job.command, input: input, timeout: job.timeout)
            await self?.handlerFinished(outcome, job)
        }
    }

    func handlerFinished(_ outcome: HandlerRunner.Outcome, _ job: HandlerJob) {
        let id = job.violation.agent
        guard var agent = registry[id] else { return }
        var records = [
            EnforcementRecord(
                violation: job.violation, action: job.action, at: clock(), succeeded: outcome.succeeded,
                error: outcome.succeeded ? nil : outcome.summary, details: EventText.handlerRan(job.command, outcome.summary))
        ]
        if !outcome.succeeded, job.fallbackToSuspend, agent.record.state.isLive {
            // Nil: the freeze awaits its confirmation; its record follows then.
            let suspend = enforcer.suspend(&agent, for: job.violation, at: clock())
            if let suspend { records.append(suspend) }
            if suspend?.succeeded ?? true { agent.ladder.noteSuspended() }
            registry[id] = agent
        }
        writer.commitNow(records: records, ladder: agent.ladder, agent: agent.record, message: EventText.handlerRecord)
    }
}
