import CorralAPI
import CorralCgroup
import CorralCore

/// Every human message the engine publishes, in one place: the engine and
/// the enforcer decide what happened, this says it.
enum EventText {
    // MARK: Agents

    static func started(_ record: AgentRecord) -> String {
        "agent \(record.id) started in \(record.group) (pid \(record.pid.map(String.init) ?? "?"))"
    }

    static func ended(_ record: AgentRecord, _ termination: Termination?) -> String {
        "agent \(record.id) \(record.state.rawValue)" + (termination.map { ", status \($0.exitStatus)" } ?? "")
            + (record.endReason.map { " (\($0))" } ?? "")
    }

    static func removed(_ id: String) -> String { "agent \(id) removed" }

    static func reattached(_ id: String) -> String { "agent \(id) re-attached: still running after the daemon's restart, watched again" }

    static func restored(_ report: Engine.Reconciliation) -> String {
        "restored: \(report.reattached.count) re-attached, \(report.discovered.count) discovered, \(report.ended.count) ended while down, \(report.removedOrphans.count) orphan cgroups removed"
            + (report.replayed.isEmpty
                ? ""
                : ", actions replayed from the intent journal for \(report.replayed.count) (\(report.replayed.joined(separator: ", ")))")
            + (report.startsRecovered.isEmpty
                ? ""
                : ", rows of agents started just before the stop taken from the intent journal for \(report.startsRecovered.count) (\(report.startsRecovered.joined(separator: ", ")))")
            + (report.frozenStateRepaired.isEmpty
                ? ""
                : ", freeze state reconciled with the kernel for \(report.frozenStateRepaired.count) (\(report.frozenStateRepaired.joined(separator: ", ")))")
            + (report.limitsRestored.isEmpty
                ? ""
                : ", limits that differed from the stored state put back for \(report.limitsRestored.count) (\(report.limitsRestored.joined(separator: "; ")))")
    }

    static func reloaded(groups: Int) -> String { "configuration reloaded (\(groups) groups)" }

    static func logProblem(_ id: String, _ problem: String) -> String { "agent \(id): \(problem)" }

    // MARK: Operator requests

    static func freezingByRequest(_ id: String) -> String { "suspend notice: agent \(id) is being frozen by request" }

    static func frozenByRequest(_ id: String, took: Duration) -> String {
        "agent \(id) frozen by request (confirmed in \(Quantity.formatSeconds(took.seconds)))"
    }

    static func thawedByRequest(_ id: String) -> String { "agent \(id) thawed by request" }

    static func stopping(_ id: String, signalled: Int, grace: Duration) -> String {
        "agent \(id) stopping: SIGTERM to \(signalled) processes, cgroup.kill in \(Quantity.formatDuration(grace))"
    }

    static func limitsChanged(_ id: String) -> String { "limits of \(id) changed" }

    static func limitsChanged(_ id: String, group: String) -> String { "limits of \(id) changed with group \(group)" }

    static func limitsNotApplied(_ id: String, group: String, _ error: any Error) -> String {
        "could not apply the new limits of \(group) to \(id): \(error)"
    }

    static func groupUpdated(_ name: String) -> String { "group \(name) updated" }

    static func priorityChanged(_ agent: AgentRecord) -> String {
        "priority of \(agent.id) is \(agent.priority)\(agent.priorityIsOwn ? "" : " (its group's)"): cpu.weight \(agent.priority.weight)"
    }

    static func usageReported(_ usage: [Resource: Double]) -> String {
        "usage reported: " + usage.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
    }

    static func acknowledged(_ id: String, _ ack: Acknowledgement) -> String {
        "\(id) acknowledged \(ack.kind) #\(ack.sequence)\(ack.note.map { ": \($0)" } ?? "")"
    }

    // MARK: The ladder

    static func violation(_ violation: Violation) -> String {
        "\(violation.kind.rawValue) violation of \(violation.resource.rawValue)"
    }

    static func enforcement(_ record: EnforcementRecord) -> String {
        "\(record.action.rawValue) on \(record.resource.rawValue) (\(record.kind.rawValue)): \(record.succeeded ? "ok" : "failed: \(record.error ?? "")") — \(record.details)"
    }

    static func warned(_ violation: Violation) -> String {
        let unit = violation.resource.unit
        return
            "\(violation.resource.rawValue) at \(unit.format(violation.current)), over its \(violation.kind.rawValue) limit \(unit.format(violation.limit)); warning published"
    }

    static func throttleNotice(_ resource: Resource, factor: Double) -> String {
        "throttle notice: \(resource.rawValue) limit × \(factor)"
    }

    static func throttled(factor: Double, cumulative: Double, _ details: String) -> String {
        "factor \(factor) (cumulative \(Quantity.formatDecimal(cumulative, places: 3))): \(details)"
    }

    static func throttleFailed(_ resource: Resource) -> String { "could not lower the \(resource.rawValue) limit" }

    static func restored(_ resource: Resource, _ details: String) -> String { "\(resource.rawValue) limit restored: \(details)" }

    static func restoreFailed(_ resource: Resource, _ error: any Error) -> String {
        "could not restore the \(resource.rawValue) limit: \(error)"
    }

    static func suspendNotice(_ id: String, _ violation: Violation) -> String {
        "suspend notice: agent \(id) is being frozen for \(violation.resource.rawValue)"
    }

    static func suspended(_ id: String, _ violation: Violation) -> String {
        "agent \(id) suspended for \(violation.resource.rawValue)"
    }

    static func frozen(took: Duration) -> String {
        "cgroup.freeze 1, cgroup.events frozen 1 after \(Quantity.formatSeconds(took.seconds))"
    }

    static let frozenAtRestart =
        "cgroup.freeze 1, cgroup.events frozen 1 found at corrald's restart (the freeze took effect while it was down)"

    static let freezeFailed = "freeze failed; the agent runs on"
    /// A freeze that did not take could not be taken back either: the agent may freeze yet.
    static func freezeNotTakenBack(_ error: CgroupError) -> String {
        "and cgroup.freeze could not be set back to 0 (the agent may still freeze): \(error.description)"
    }

    /// `first; second`, either of them absent.
    static func joined(_ first: String?, _ second: String?) -> String? {
        let parts = [first, second].compactMap { $0 }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    // MARK: Intents replayed at a restart

    /// Appended to the details of a record made by a restart from an intent whose step was not stored.
    static let replayed = " [replayed at corrald's restart: the daemon stopped before this step's record was stored]"

    static let endedBeforeReplay = "the agent ended while corrald was down"

    /// A terminate or kill whose agent had ended by the restart.
    static func endedAfter(_ action: String) -> String {
        "\(action) as corrald stopped; the agent had ended by its restart" + replayed
    }

    /// A handler whose end nobody saw.
    static func handlerOutcomeUnknown(_ command: [String]) -> String {
        "handler \(command.first ?? "?") was started as corrald stopped; its outcome is unknown" + replayed
    }

    static func terminationNotice(grace: Duration) -> String {
        "termination notice: SIGTERM now, cgroup.kill in \(Quantity.formatDuration(grace))"
    }

    static func terminating(signalled: Int, grace: Duration) -> String {
        "SIGTERM sent to \(signalled) processes; cgroup.kill after \(Quantity.formatDuration(grace)) unless they exit"
    }

    static func terminateReason(_ violation: Violation) -> String {
        "terminated for \(violation.resource.rawValue) (\(violation.kind.rawValue) limit)"
    }

    static func killedAfterGrace(_ method: CgroupTree.KillMethod) -> String {
        "grace ended with processes alive: \(method == .cgroupKill ? "cgroup.kill" : "SIGKILL to every process")"
    }

    static func scaleDownRequest(_ request: ScaleDownRequest) -> String {
        let unit = request.resource.unit
        return
            "scale down \(request.resource.rawValue) from \(unit.format(request.current)) to \(unit.format(request.target)) by \(request.deadline)"
    }

    static func scaleDownRequested(_ request: ScaleDownRequest) -> String {
        "requested \(request.resource.rawValue) ≤ \(request.resource.unit.format(request.target)) by \(request.deadline)"
    }

    static func scaleDownResolved(_ request: ScaleDownRequest, usage: Double?, met: Bool) -> String {
        let unit = request.resource.unit
        return met
            ? "met: \(request.resource.rawValue) at \(usage.map { unit.format($0) } ?? "below its limits") ≤ \(unit.format(request.target))"
            : "missed: \(request.resource.rawValue) still \(usage.map { unit.format($0) } ?? "unknown") > \(unit.format(request.target)); escalating to suspend"
    }

    static func migrateFellBack(suspended: Bool) -> String { "fell back to suspend: \(suspended ? "frozen" : "freeze failed")" }

    static func handlerRan(_ command: [String], _ summary: String) -> String { "\(command.joined(separator: " ")): \(summary)" }

    static func handlerRecord(_ record: EnforcementRecord) -> String { "\(record.action.rawValue): \(record.details)" }

    static func recoveryThawed(_ id: String) -> String { "agent \(id) thawed: its violations cleared (recovery)" }

    static func recoveryThawFailed(_ id: String, _ error: any Error) -> String { "could not thaw \(id) on recovery: \(error)" }

    // MARK: Degradation

    static func degradation(_ plan: DegradationPlan) -> String {
        let strategies = plan.strategies.map(\.strategy.rawValue).joined(separator: ", ")
        let unit = plan.resource.unit
        switch plan.reason {
        case .pressure:
            return
                "\(plan.resource.rawValue) at \(unit.format(plan.usage)) of \(unit.format(plan.limit)): \(plan.level.rawValue) degradation (\(strategies)); target \(unit.format(plan.targetUsage)) within \(Int(plan.timelineSeconds)) s"
        case .recovery, .relapse:
            return
                "\(plan.resource.rawValue) \(plan.reason == .recovery ? "recovery stage \(plan.recoveryStage)" : "relapse"): \(plan.previousLevel.rawValue) → \(plan.level.rawValue)\(strategies.isEmpty ? ", no strategy left" : " (\(strategies))")"
        }
    }

    // MARK: The daemon's own trouble

    static func notStored(records: Int, _ error: any Error) -> String { "could not store \(records) enforcement records: \(error)" }

    static func intentNotWritten(_ error: any Error) -> String {
        "the intent journal cannot be written (\(error)): enforcement goes on, but a daemon killed before an action's record is stored loses that record"
    }

    static let intentsWrittenAgain = "the intent journal is written again"

    /// The database could not be written, or can again (nil: nothing worth saying changed).
    static func storeBacklog(before: StoreBacklog, after: StoreBacklog, bound: Int) -> String? {
        if after.pendingSteps > 0 && before.pendingSteps == 0 {
            return "the state database cannot be written (\(after.error ?? "unknown error")): enforcement goes on; "
                + "\(after.pendingRecords) records kept in memory (up to \(bound)) and stored once it can be written"
        }
        if after.pendingSteps == 0 && before.pendingSteps > 0 {
            return "the state database is writable again: the \(before.pendingRecords) records kept in memory are stored"
                + (after.droppedRecords > 0
                    ? " (\(after.droppedRecords) dropped since the daemon started: more than \(bound) were waiting)" : "")
        }
        return nil
    }

    static func notAdmitted(_ id: String, _ shortfalls: String) -> String {
        "agent '\(id)' not admitted (admission: refuse): \(shortfalls)"
    }

    static func admittedOverCapacity(_ id: String, _ shortfalls: String) -> String {
        "agent '\(id)' admitted over capacity (admission: allow): \(shortfalls)"
    }

    static func adoptedOverCapacity(pid: Int32, as id: String, _ shortfalls: [Shortfall]) -> String {
        "process \(pid) adopted as '\(id)' over capacity (a running process cannot be queued): \(shortfalls.map(\.description).joined(separator: "; "))"
    }

    static func queued(_ id: String, position: Int, _ shortfalls: [Shortfall]) -> String {
        "\(id) queued (admission: queue, position \(position)): \(shortfalls.map(\.description).joined(separator: "; "))"
    }

    /// An admitted start that failed: its end reason (the event puts the agent's id first).
    static func notStartedOnceAdmitted(_ error: any Error) -> String { "could not start once admitted: \(error)" }

    static func killedButNotExited(_ id: String) -> String { "\(id) was killed but its processes had not exited after 5 s" }

    // MARK: Priority

    static func groupNotProtected(_ group: String, _ protection: Int64, _ error: CgroupError) -> String {
        "cannot protect group \(group)'s memory (memory.low \(protection)): \(error.description)"
    }

    static func groupPriorityNotApplied(_ group: String, _ priority: Priority, to id: String, _ error: any Error) -> String {
        "cannot apply group \(group)'s priority \(priority) to \(id): \(error)"
    }

    // MARK: Host pressure

    static func hostPressureStarted(_ reason: String, protectAbove: Priority) -> String {
        "host pressure: \(reason); acting on agents of priority ≤ \(protectAbove), lowest first"
    }

    static func hostPressureExhausted(protectAbove: Priority, terminate: Bool) -> String {
        "host pressure: every agent of priority ≤ \(protectAbove) is " + (terminate ? "ended" : "frozen (terminate is off)")
            + "; nothing more to do"
    }

    static let hostPressurePassed = "host pressure passed: every step is undone"

    static func hostFrozen(_ id: String) -> String { "\(id) frozen: the host is short of memory" }

    static func staysFrozenAfterHostPressure(_ id: String) -> String {
        "\(id) stays frozen after the host pressure: its own ladder suspended it"
    }

    static func hostThawed(_ id: String) -> String { "\(id) thawed: the host pressure has passed" }

    static func hostThawFailed(_ id: String, _ error: CgroupError) -> String {
        "could not thaw \(id) after the host pressure: \(error.description)"
    }

    static func hostClampReleased(_ id: String) -> String {
        "\(id)'s memory.high and cpu.max restored: the host pressure has passed"
    }

    static func hostClampNotReleased(_ id: String, _ error: CgroupError) -> String {
        "could not restore \(id)'s limits after the host pressure: \(error.description)"
    }

    // MARK: The daemon

    static func noDenialSupervisor(_ error: any Error) -> String {
        "cannot supervise seccomp listeners (eventfd: \(error)): denied calls fail with ENOSYS, unrecorded"
    }

    static func groupsUnreadable(_ error: any Error) -> String {
        "could not read the groups changed through the API; the file's definitions apply: \(error)"
    }

    static func restoreProblem(_ problem: String) -> String { "restore: \(problem)" }

    static func rootLimitsUnreadable(_ error: CgroupError) -> String {
        "cannot read the limits of Corral's root cgroup; admission counts the host's totals until it can: \(error.description)"
    }

    static func notRemoved(_ path: String, _ error: any Error) -> String { "could not remove \(path): \(error)" }

    static func notRecorded(_ id: String, _ what: String, _ error: any Error) -> String {
        "could not record \(what) of \(id): \(error)"
    }

    static func minutesNotStored(_ count: Int, _ error: any Error) -> String {
        "could not store \(count) minutes of usage history: \(error)"
    }

    static func recommendationsNotStored(_ id: String, _ error: any Error) -> String {
        "could not store the recommendations of \(id): \(error)"
    }

    static func recommendations(_ id: String, _ recommendations: [Recommendation]) -> String {
        "recommendations for \(id): " + recommendations.map { "\($0.kind.rawValue) \($0.resource.rawValue)" }.joined(separator: ", ")
    }

    static func denied(_ denial: SyscallDenial) -> String {
        let what = denial.action == .kill ? "killed by SIGSYS for calling" : "refused"
        let times = denial.count == 1 ? "" : " (\(denial.count) times since \(denial.firstAt))"
        return "seccomp \(what) \(denial.syscall)\(times)" + (denial.pid.map { ", last by pid \($0)" } ?? "")
    }
}
