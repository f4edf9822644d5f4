import CorralAPI
import CorralCgroup
import CorralCore

#if canImport(Glibc)
    import Glibc
#endif

/// Publishes the engine's events: stamps them with the engine's clock.
struct EventPublisher: Sendable {
    let hub: EventHub
    let clock: @Sendable () -> Timestamp
    /// Told of every stored record (the enforcement counters).
    var instruments: (any EngineInstruments)? = nil

    @discardableResult
    func publish(
        _ kind: CorralEvent.Kind, agent: String?, _ message: String, violation: Violation? = nil, record: EnforcementRecord? = nil,
        request: ScaleDownRequest? = nil, resource: Resource? = nil, factor: Double? = nil, graceSeconds: Double? = nil,
        plan: DegradationPlan? = nil, limits: LimitSet? = nil, ack: Acknowledgement? = nil, denial: SyscallDenial? = nil
    ) -> CorralEvent {
        if let record { instruments?.recorded(record) }
        return hub.publish(
            CorralEvent(
                at: clock(), kind: kind, agent: agent, message: message, violation: violation, record: record, request: request,
                resource: resource, factor: factor, graceSeconds: graceSeconds, plan: plan, limits: limits, ack: ack, denial: denial))
    }
}

/// A migrate or custom handler to run off the engine; its record comes when it ends.
struct HandlerJob: Sendable {
    var command: [String]
    var violation: Violation
    var action: EnforcementAction
    /// A failed migrate suspends the agent instead.
    var fallbackToSuspend: Bool
    var timeout: Duration
}

/// Carries out the escalation ladder's commands on an agent's cgroup, through
/// `CgroupTree` only, and says what really happened: the records of each
/// command's outcome, the notices the agent gets on its stream, and the
/// changes to the agent (its state, its ladder's notes, a termination
/// deadline). Holds no state of its own; runs on the engine's executor and
/// never waits there: a freeze the kernel has not confirmed at once is left
/// pending (`settleFreeze`).
struct Enforcer: Sendable {
    let tree: CgroupTree
    let events: EventPublisher
    var handlers: ActionHandlers

    /// What a command left to do beyond its records.
    struct Outcome {
        var records: [EnforcementRecord] = []
        var handler: HandlerJob?
    }

    func execute(_ command: LadderCommand, on agent: inout ManagedAgent, at now: Timestamp) -> Outcome {
        let id = agent.record.id
        func record(_ violation: Violation, _ action: EnforcementAction, ok: Bool, error: String? = nil, _ details: String) -> Outcome {
            Outcome(records: [
                EnforcementRecord(violation: violation, action: action, at: now, succeeded: ok, error: error, details: details)
            ])
        }
        switch command {
        case .warn(let violation):
            return record(violation, .warn, ok: true, EventText.warned(violation))

        case .throttle(let violation, let factor):
            let resource = violation.resource
            let cumulative = agent.ladder.throttled[resource] ?? factor
            do {
                var details = "no limit"
                if let limit = agent.record.limits[resource] {
                    details = try tree.throttle(
                        agent.leaf, resource, limit: limit, cumulative: cumulative, processes: agent.usage[.processes])
                }
                events.publish(
                    .throttleNotice, agent: id, EventText.throttleNotice(resource, factor: factor), violation: violation,
                    resource: resource,
                    factor: factor)
                return record(violation, .throttle, ok: true, EventText.throttled(factor: factor, cumulative: cumulative, details))
            } catch {
                agent.ladder.noteThrottleFailed(resource, factor: factor)
                return record(violation, .throttle, ok: false, error: "\(error)", EventText.throttleFailed(resource))
            }

        case .restore(_, let resource):
            // Not an action of its own: the throttle's record stands; the agent hears of it.
            do {
                let details = try tree.restore(agent.leaf, resource, limit: agent.record.limits[resource])
                events.publish(.throttleRestored, agent: id, EventText.restored(resource, details))
            } catch {
                events.publish(.throttleRestored, agent: id, EventText.restoreFailed(resource, error))
            }
            return Outcome()

        case .suspend(let violation):
            return Outcome(records: suspend(&agent, for: violation, at: now).map { [$0] } ?? [])

        case .terminate(let violation, let grace):
            var thawProblem = ""
            // A suspend still waiting for its confirmation gets its record first.
            let suspendRecord = settleFreeze(&agent, at: now) ?? abandonFreeze(&agent, because: "terminated")
            if agent.record.state == .suspended || suspendRecord != nil {
                // Frozen processes cannot act on SIGTERM; cgroup.kill after the grace works either way.
                do {
                    try tree.thaw(agent.leaf)
                    agent.record.state = .running
                } catch {
                    thawProblem = " (thaw before SIGTERM failed: \(error.description))"
                }
            }
            let signalled = tree.signalAll(agent.leaf, SIGTERM)
            agent.terminationDeadline = now + grace
            agent.record.endReason = EventText.terminateReason(violation)
            events.publish(
                .terminationNotice, agent: id, EventText.terminationNotice(grace: grace), violation: violation,
                graceSeconds: Double(grace.milliseconds) / 1000)
            var outcome = record(
                violation, .terminate, ok: signalled > 0, error: signalled > 0 ? nil : "no process received SIGTERM",
                EventText.terminating(signalled: signalled, grace: grace) + thawProblem)
            if let suspendRecord { outcome.records.insert(suspendRecord, at: 0) }
            return outcome

        case .scaleDown(let violation, let request):
            events.publish(.scaleDownRequest, agent: id, EventText.scaleDownRequest(request), violation: violation, request: request)
            return record(violation, .scaleDown, ok: true, EventText.scaleDownRequested(request))

        case .scaleDownResolved(_, let request, let usage, let met):
            return Outcome(records: [Self.scaleDownResolved(id, request, usage: usage, met: met, at: now)])

        case .migrate(let violation):
            guard let command = handlers.migrate else {
                // Pending (nil) counts as suspended until its confirmation says otherwise.
                let fallback = suspend(&agent, for: violation, at: now)
                if fallback?.succeeded ?? true { agent.ladder.noteSuspended() }
                var outcome = record(
                    violation, .migrate, ok: false, error: "no migrate handler is configured",
                    EventText.migrateFellBack(suspended: fallback?.succeeded ?? true))
                if let fallback { outcome.records.insert(fallback, at: 0) }
                return outcome
            }
            return Outcome(
                handler: HandlerJob(
                    command: command, violation: violation, action: .migrate, fallbackToSuspend: true, timeout: handlers.timeout))

        case .custom(let violation):
            guard let command = handlers.custom else {
                return record(violation, .custom, ok: false, error: "no custom handler is configured", "nothing run")
            }
            return Outcome(
                handler: HandlerJob(
                    command: command, violation: violation, action: .custom, fallbackToSuspend: false, timeout: handlers.timeout))
        }
    }

    /// The record of a scale-down whose deadline passed: met when usage reached the target.
    static func scaleDownResolved(
        _ agent: String, _ request: ScaleDownRequest, usage: Double?, met: Bool, at now: Timestamp
    ) -> EnforcementRecord {
        let violation = Violation(
            agent: agent, resource: request.resource, kind: .hard, current: usage ?? request.current, limit: request.target)
        return EnforcementRecord(
            violation: violation, action: .scaleDown, at: now, succeeded: met, error: met ? nil : "deadline missed",
            details: EventText.scaleDownResolved(request, usage: usage, met: met))
    }

    /// How long a freeze may take to be confirmed before it is rolled back.
    static let freezeConfirmation = Duration.seconds(2)

    /// Freezes the agent: the notice goes out while it still runs, the
    /// confirmation (cgroup.events frozen 1) after, which it reads once thawed.
    /// Nil: written but not confirmed yet (`pendingFreeze`); its record comes
    /// from `settleFreeze`.
    func suspend(_ agent: inout ManagedAgent, for violation: Violation, at now: Timestamp) -> EnforcementRecord? {
        let id = agent.record.id
        events.publish(.suspendNotice, agent: id, EventText.suspendNotice(id, violation), violation: violation)
        let started = ContinuousClock.now
        do {
            if try tree.requestFreeze(agent.leaf) {
                return frozen(&agent, violation, at: now, took: ContinuousClock.now - started)
            }
            agent.pendingFreeze = PendingFreeze(violation: violation, at: now, started: started, deadline: now + Self.freezeConfirmation)
            return nil
        } catch {
            var entry = notFrozen(&agent, violation, at: now, error)
            entry.error = EventText.joined(entry.error, tree.rollBackFreeze(agent.leaf))
            return entry
        }
    }

    /// Settles a pending freeze: confirmed when cgroup.events says `frozen 1`,
    /// failed and rolled back once its deadline passed; nil while it is still
    /// pending (or there is none).
    func settleFreeze(_ agent: inout ManagedAgent, at now: Timestamp) -> EnforcementRecord? {
        guard let pending = agent.pendingFreeze else { return nil }
        do {
            if try tree.isFrozen(agent.leaf) {
                agent.pendingFreeze = nil
                return frozen(&agent, pending.violation, at: pending.at, took: ContinuousClock.now - pending.started)
            }
            guard now >= pending.deadline else { return nil }
            agent.pendingFreeze = nil
            var entry = notFrozen(
                &agent, pending.violation, at: pending.at, tree.freezeTimedOut(agent.leaf, after: Self.freezeConfirmation))
            entry.error = EventText.joined(entry.error, tree.rollBackFreeze(agent.leaf))
            return entry
        } catch {
            agent.pendingFreeze = nil
            return notFrozen(&agent, pending.violation, at: pending.at, error)
        }
    }

    /// Gives up a pending freeze that something else overtook (a terminate,
    /// an operator's thaw, the agent's end): a failed suspend record, so the
    /// action is not lost.
    func abandonFreeze(_ agent: inout ManagedAgent, because reason: String) -> EnforcementRecord? {
        guard let pending = agent.pendingFreeze else { return nil }
        agent.pendingFreeze = nil
        agent.ladder.noteSuspendFailed()
        return EnforcementRecord(
            violation: pending.violation, action: .suspend, at: pending.at, succeeded: false,
            error: "\(reason) before cgroup.events reported frozen 1", details: EventText.freezeFailed)
    }

    private func frozen(_ agent: inout ManagedAgent, _ violation: Violation, at now: Timestamp, took: Duration) -> EnforcementRecord {
        let id = agent.record.id
        agent.record.state = .suspended
        events.publish(.suspended, agent: id, EventText.suspended(id, violation), violation: violation)
        return EnforcementRecord(violation: violation, action: .suspend, at: now, succeeded: true, details: EventText.frozen(took: took))
    }

    private func notFrozen(_ agent: inout ManagedAgent, _ violation: Violation, at now: Timestamp, _ error: CgroupError)
        -> EnforcementRecord
    {
        agent.ladder.noteSuspendFailed()
        return EnforcementRecord(
            violation: violation, action: .suspend, at: now, succeeded: false, error: error.description, details: EventText.freezeFailed)
    }

    /// The violation a termination's kill is recorded against: the gravest open one.
    static func terminationViolation(_ agent: ManagedAgent) -> Violation {
        agent.ladder.episodes.values.map(\.violation).max { $0.kind < $1.kind }
            ?? Violation(agent: agent.record.id, resource: .memory, kind: .hard, current: 0, limit: 0)
    }

    /// The grace after SIGTERM has passed with processes alive: cgroup.kill.
    func finishTermination(_ agent: ManagedAgent, for violation: Violation, at now: Timestamp) -> EnforcementRecord {
        do {
            let method = try tree.kill(agent.leaf)
            return EnforcementRecord(
                violation: violation, action: .terminate, at: now, succeeded: true, details: EventText.killedAfterGrace(method))
        } catch {
            return EnforcementRecord(
                violation: violation, action: .terminate, at: now, succeeded: false, error: error.description, details: "kill failed")
        }
    }
}

extension CgroupTree {
    /// Takes back a freeze that did not take (cgroup.freeze 0); nil when done, else
    /// what went wrong, for the failed record's error.
    func rollBackFreeze(_ leaf: CgroupPath) -> String? {
        do throws(CgroupError) {
            try cancelFreeze(leaf)
            return nil
        } catch {
            return EventText.freezeNotTakenBack(error)
        }
    }
}
