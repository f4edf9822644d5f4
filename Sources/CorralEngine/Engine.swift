// The engine's rooms and who owns what (ARCHITECTURE.md has the whole picture):
//
// - `Engine` (this actor) owns the agent table (`AgentRegistry`), the
//   configuration, the child reaper and the analytics accumulators. It runs
//   on the default actor executor (the cooperative
//   pool): a dedicated thread was measured to make observations wait seconds
//   in bench-reaction. `EngineLoop` calls it at high priority, above the API's
//   requests, so observations and timers go first among its waiting jobs.
//   It does not wait for the kernel: a ladder's freeze is
//   confirmed by a later step or tick (`PendingFreeze`), an operator's freeze
//   and a forced removal poll with `Task.sleep` (the engine runs other work
//   meanwhile), a due step's re-check is read by the watcher's thread. A
//   launch's cgroup and process are made on the `starter` thread and its
//   first row stored before it enters the table, all without the engine
//   (`launching` holds its id and limits meanwhile); `list`, `status` of an
//   ended agent, `history` and the other store reads run off it too. Every
//   row goes through the committer, in order: ladder steps and agents' ends
//   without waiting, the saves of API changes (`saveOrThrow`: register, attach,
//   priority, overrides) with the request suspended until stored, no thread
//   held. What still holds a pool thread: a thaw's wait for cgroup.events
//   `frozen 0` (up to 2 s; the kernel thaws at once in practice).
// - `Enforcer` carries out ladder commands through `CgroupTree` (the only
//   code that touches cgroupfs) and returns what really happened.
// - `StoreWriter` owns the store's writer threads: the group committer
//   ("corral-commit") and the background worker ("corral-bg").
// - `EventHub` fans events out under its own lock; `EventText` words them.
// - The watcher runs its epoll loop on its own thread; its events reach the
//   engine through `ObservationQueue`, taken by `EngineLoop`, which also runs
//   the timers (`tick` every 200 ms).
// - `Launcher` (CorralRuntime) starts agents' commands; `Reconciler` re-attaches
//   agents at start-up.
public import CorralCgroup
public import CorralCore
import CorralRuntime
import CorralSeccomp
public import CorralWatcher

#if canImport(Glibc)
    import Glibc
#endif

/// Why an engine operation was refused or failed; maps onto HTTP statuses.
public struct EngineError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notFound = "not_found"
        case conflict
        case invalid
        case failed
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// Commands for migrate and custom actions (from the configuration's `handlers`).
public typealias ActionHandlers = HandlerCommands

/// Runs agents' quotas: turns observations into violations, walks each
/// agent's escalation ladder, has the enforcer carry out what it asks,
/// records every outcome, and publishes events.
public actor Engine {
    nonisolated public let tree: CgroupTree
    nonisolated public let hub: EventHub
    let clock: @Sendable () -> Timestamp
    let events: EventPublisher
    let writer: StoreWriter
    let launcher: Launcher

    var configuration: CorralConfiguration
    var enforcer: Enforcer
    var registry = AgentRegistry()
    var reaper = ChildReaper()
    var watcher: (any AgentWatching)?
    /// When a fresh reading was last asked for, by agent (a due step waits
    /// for one; asked again after a second if none came).
    var sampleRequests: [String: Timestamp] = [:]
    /// Adaptive sampling (see `Engine+Cadence.swift`; each agent's cadence is
    /// `ManagedAgent.cadence`): when an agent's last kernel event or PSI trigger came.
    var lastActivity: [String: Timestamp] = [:]
    /// Analytics: minutes waiting to be stored, and when analysis runs next.
    var pendingMinutes: [UsageMinute] = []
    var lastMinuteFlush: Timestamp?
    var nextAnalytics: Timestamp?
    /// What the host has (within the limits of the root's ancestors), for capacity.
    let host: HostCapacity
    /// Starts held by `admission: queue`, next first (in memory only: a restart forgets them).
    var admissionQueue: [QueuedStart] = []
    /// Launches under way off the engine (their cgroup and process being made):
    /// the id is taken and the limits count against capacity.
    var launching: [String: (group: String, limits: LimitSet)] = [:]
    /// Makes launched agents' cgroups and processes, one at a time, on a thread
    /// of its own: a fork and exec block for tens of milliseconds under
    /// emulation, and neither the engine nor the cooperative pool (two threads
    /// on a two-core host) should wait meanwhile.
    let starter = BackgroundWorker(name: "corral-start")
    /// The host ladder (the root as a whole short of memory) and its freezes awaiting confirmation.
    var hostLadder = HostPressureLadder()
    var hostFreezes: [String: HostFreeze] = [:]
    /// The memory.low last written to each group's cgroup (absent: 0, the kernel's default).
    var groupProtection: [String: Int64] = [:]
    /// Seccomp filters compiled once per policy.
    let filters = FilterCache()
    /// Answers and records launched agents' denied syscalls; made with the first filtered launch.
    var denials: DenialSupervisor?
    /// Told of records, reactions and commits as they happen (the daemon's metrics).
    let instruments: (any EngineInstruments)?
    /// The root's limits as last read, for a second (capacity is asked at every scrape and admission).
    var allocatableCache: (at: ContinuousClock.Instant, amounts: [Resource: Double])?
    var rootLimitsUnreadable = false  // said once (`readAllocatable`)
    /// Where each step writes what it is about to do before doing it (see
    /// `ActionIntent`); nil for `corral run` without a daemon (nothing
    /// outlives it to replay them). The engine alone appends and clears.
    let intents: (any IntentJournal)?
    /// The journal's bookkeeping (see `Engine+Intents.swift`).
    var intentLog = IntentBookkeeping()

    public init(
        configuration: CorralConfiguration, tree: CgroupTree, store: any EngineStore, hub: EventHub = EventHub(),
        handlers: ActionHandlers? = nil, logDirectory: String? = nil, socketPath: String? = nil,
        host: HostCapacity = HostProbe.capacity(), instruments: (any EngineInstruments)? = nil, intents: (any IntentJournal)? = nil,
        clock: @escaping @Sendable () -> Timestamp = Engine.wallClock
    ) {
        self.host = host
        self.intents = intents
        self.instruments = instruments
        self.configuration = configuration
        self.tree = tree
        self.hub = hub
        self.clock = clock
        events = EventPublisher(hub: hub, clock: clock, instruments: instruments)
        writer = StoreWriter(store: store, events: events, instruments: instruments)
        enforcer = Enforcer(tree: tree, events: events, handlers: handlers ?? configuration.handlers)
        launcher = Launcher(logDirectory: logDirectory, socketPath: socketPath)
    }

    deinit { starter.stop() }

    public static let wallClock: @Sendable () -> Timestamp = { Timestamp.now() }

    /// The supervisor of launched agents' seccomp listeners: each denial is
    /// stored (one row per agent and syscall, counted) and published. Nil when
    /// it cannot be made (no eventfd: the process is out of descriptors).
    func denialSupervisor() -> DenialSupervisor? {
        if let denials { return denials }
        let writer = writer
        let events = events
        do {
            let supervisor = try DenialSupervisor(clock: clock) { denial in Self.record(denial, writer: writer, events: events) }
            denials = supervisor
            return supervisor
        } catch {
            events.publish(.daemon, agent: nil, EventText.noDenialSupervisor(error))
            return nil
        }
    }

    /// Stores a denial's tally off the engine and publishes it.
    nonisolated static func record(_ denial: SyscallDenial, writer: StoreWriter, events: EventPublisher) {
        events.publish(.seccompDenied, agent: denial.agent, EventText.denied(denial), denial: denial)
        writer.later {
            do {
                try writer.store.save(denial: denial)
            } catch {
                events.publish(
                    .daemon, agent: denial.agent, EventText.notRecorded(denial.agent, "a denied syscall (\(denial.syscall))", error))
            }
        }
    }

    /// Records denials reported by the supervisor of a `corral run` through the API.
    public func recordDenials(_ list: [SyscallDenial], agent: String) throws(EngineError) {
        guard registry[agent] != nil else { throw EngineError(.notFound, "no agent '\(agent)'") }
        for denial in list where denial.agent == agent { Self.record(denial, writer: writer, events: events) }
    }

    /// Denied syscalls from the store (of one agent or all), most recent first.
    /// Off the engine, like every read of the store alone (see `history`).
    public nonisolated func denialHistory(agent: String?, limit: Int) async throws -> [SyscallDenial] {
        try await writer.settledStore().denials(agent: agent, limit: limit)
    }

    /// Stops answering seccomp listeners (the daemon stops; its agents' denied calls then fail with ENOSYS).
    public func stopSupervising() {
        denials?.stop()
        denials = nil
    }

    /// Blocks until every step queued for commit is stored and its records
    /// are published (tests; the daemon's graceful stop uses `settle`).
    public nonisolated func waitForCommits() { writer.drain() }

    /// Steps the store could not take yet (a full disk): kept in memory, written when it can.
    public nonisolated var storeBacklog: StoreBacklog { writer.backlog }

    /// Starts watching every live agent, and those to come, with `watcher`.
    public func connect(_ watcher: any AgentWatching) {
        self.watcher = watcher
        clearCadences()
        for (id, agent) in registry.live { watcher.watch(agent: id, path: agent.leaf) }
    }

    // MARK: Configuration

    public var currentConfiguration: CorralConfiguration { configuration }

    func settings(for group: String) -> LadderSettings {
        LadderSettings(
            policy: configuration.escalation(for: group),
            clearAfter: max(.milliseconds(1500), configuration.intervals.sampling * 2.5))
    }

    /// Replaces the configuration (SIGHUP reload, validated by the caller).
    /// Running agents keep their limits; new agents get the new ones; groups
    /// changed through the API keep their changes.
    public func reload(_ new: CorralConfiguration) {
        allocatableCache = nil
        var merged = new
        do {
            for (name, group) in try writer.store.groupOverrides() { merged.groups[name] = group }  // written on the engine only
        } catch {
            events.publish(.daemon, agent: nil, EventText.groupsUnreadable(error))
        }
        let idleSampling = configuration.intervals.adaptiveIdleSampling
        configuration = merged
        enforcer.handlers = merged.handlers
        if merged.intervals.adaptiveIdleSampling != idleSampling { resetCadences() }
        events.publish(.daemon, agent: nil, EventText.reloaded(groups: merged.groups.count))
    }

    /// Loads state after a (re)start and reconciles it with the cgroup tree
    /// (see `Reconciler`).
    public func restore() throws -> Reconciliation {
        let store = writer.store  // nothing is queued before the restore
        for (name, group) in try store.groupOverrides() { configuration.groups[name] = group }
        var journalProblems: [String] = []
        let unsettled = unsettledIntents(settled: try store.settledIntent(), problems: &journalProblems)
        let reconciled = try Reconciler(
            tree: tree, store: store, configuration: configuration, now: clock(), enforcer: enforcer, intents: unsettled.replay,
            starts: unsettled.starts
        ).run()
        clearReplayedIntents(problems: &journalProblems)
        var report = reconciled.report
        report.problems += journalProblems
        for (id, agent) in reconciled.agents { registry[id] = agent }
        restoreHostLadder()
        // memory.low of the groups as the restored agents claim it (a leftover value is reset too).
        for name in configuration.groupNames { refreshProtection(of: name, force: true) }
        for id in report.reattached { events.publish(.agentReattached, agent: id, EventText.reattached(id)) }
        events.publish(.daemon, agent: nil, EventText.restored(report))
        for problem in report.problems { events.publish(.daemon, agent: nil, EventText.restoreProblem(problem)) }
        return report
    }

    // MARK: Watching

    /// Handles one event of the watcher (only agents' events come here).
    /// (Due steps are the tick's: nothing is computed for them here.)
    public func handle(_ event: WatcherEvent) {
        guard let id = event.subject.agent else { return }
        let started = ContinuousClock.now
        defer { noteHold("\(event.kindText) of \(id)", since: started) }
        switch event {
        case .observation(let observation): observe(observation, of: id)
        case .emptied: ended(id, vanished: false)
        case .vanished: ended(id, vanished: true)
        case .unreadable: break  // the next successful read decides
        }
    }

    func observe(_ observation: Observation, of id: String) {
        let entered = ContinuousClock.now
        if let asked = sampleRequests[id], observation.at >= asked { sampleRequests[id] = nil }
        guard
            let (limits, open) = registry.read(
                id,
                { agent in
                    agent.record.state.isLive ? (agent.record.limits, Set(agent.ladder.episodes.keys)) : nil
                }) ?? nil
        else { return }
        var violations: [Violation] = []
        var usage: [Resource: Double] = [:]
        for reading in observation.readings {
            usage[reading.resource] = reading.usage
            if let limit = limits[reading.resource], let violation = reading.violation(agent: id, limit: limit) {
                violations.append(violation)
            }
        }
        let now = clock()
        let found = violations
        // In place: the agent's rings take the sample without being copied.
        let reported: [Resource: Double] =
            registry.update(id) { agent in
                agent.latest = observation.sample
                agent.usage.merge(usage) { _, new in new }
                remember(observation.readings, of: &agent, at: now)
                agent.violations = found
                return agent.reported
            } ?? [:]
        for (resource, amount) in reported {
            if let limit = limits[resource],
                let violation = Violation.classify(agent: id, resource: resource, usage: amount, limit: limit)
            {
                violations.append(violation)
            }
        }
        switch observation.trigger {
        case .event, .pressure: lastActivity[id] = now
        case .sample, .requested: break
        }
        let acted = step(id, violations: violations, usage: usage.merging(reported) { kernel, _ in kernel })
        adjustCadence(of: id, at: now)
        if acted, let instruments, let trigger = ReactionTrigger.label(of: observation.trigger) {
            // A crossing: the event showed a violation of a resource with no episode open
            // before it. Otherwise the event carried a step the ladder's delays made due.
            let crossing = violations.contains { !open.contains($0.resource) }
            let timing = ReactionTiming(
                woke: observation.seenAt, read: observation.readAt, dequeued: observation.dequeuedAt, entered: entered, done: .now)
            instruments.reacted(timing, to: trigger, crossing: crossing)
        }
    }

    /// Feeds the ladder, has the enforcer carry out what it asks, and queues
    /// the step's records, plans and ladder for one commit. Returns whether
    /// the step took an action (has records to store).
    @discardableResult
    func step(_ id: String, violations: [Violation], usage: [Resource: Double]) -> Bool {
        guard let group = registry.read(id, { $0.record.group }) else { return false }
        let now = clock()
        let ladderSettings = settings(for: group)
        var records: [EnforcementRecord] = []
        var plans: [DegradationPlan] = []
        var intent: UInt64?
        var jobs: [HandlerJob] = []
        var firedBefore: [Resource: [EnforcementAction]] = [:]
        var recordBefore: AgentRecord?
        // In place: taken out of the table and written back, the agent was
        // copied three times a step (a retain and release of each of its
        // fields, and its ladder's tables copied on their first change), which
        // was most of an observation's cost (callgrind, `corral-bench scrape`).
        // Nothing here reaches the table.
        registry.update(id) { agent in
            recordBefore = agent.record
            for (resource, episode) in agent.ladder.episodes { firedBefore[resource] = episode.fired }
            // A freeze still waiting for its confirmation: this step may be it.
            if let settled = enforcer.settleFreeze(&agent, at: now) { records.append(settled) }
            let known = Set(agent.ladder.episodes.keys)
            agent.ladder.observe(violations, usage: usage, at: now)
            for violation in violations where !known.contains(violation.resource) {
                events.publish(.violation, agent: id, EventText.violation(violation), violation: violation)
            }
            let commands = agent.ladder.advance(to: now, limits: agent.record.limits, settings: ladderSettings)
            plans = degrade(&agent, usage: usage, at: now)
            // Written down before any of it touches the kernel; the step's commit settles it.
            // A step of warnings and scale-down requests alone writes none: it changes nothing
            // outside the engine, and a restart that lost it takes it again from the stored ladder.
            if commands.contains(where: \.actsOutsideTheEngine) {
                intent = writeIntent(id, at: now, .commands(commands), ladder: agent.ladder)
            }
            for command in commands {
                let outcome = enforcer.execute(command, on: &agent, at: now)
                records += outcome.records
                if let job = outcome.handler { jobs.append(job) }
            }
        }
        for job in jobs { run(job) }
        deliver(plans, to: id)
        recoverSuspension(id)
        let request: CommitRequest?? = registry.read(id) { current in
            let changed =
                current.ladder.episodes.count != firedBefore.count
                || current.ladder.episodes.contains { firedBefore[$0.key] != $0.value.fired }
                || !records.isEmpty || !plans.isEmpty || current.record.state != recordBefore?.state || intent != nil
            guard changed else { return nil }
            // The agent's row only when this step changed it (JSON encoding is
            // most of a commit's cost); the records are published once stored.
            return CommitRequest(
                records: records, plans: plans, ladder: current.ladder, agent: current.record == recordBefore ? nil : current.record,
                intent: intent)
        }
        if let request = request ?? nil { writer.commit(request, agent: id) }
        return !records.isEmpty
    }
}

extension WatcherEvent {
    /// What kind of event it is, for a log line.
    var kindText: String {
        switch self {
        case .observation(let observation):
            switch observation.trigger {
            case .event(let file): "an observation (\(file.rawValue))"
            case .pressure(let resource): "an observation (\(resource == .memory ? "memory" : "cpu").pressure)"
            case .sample: "a sample"
            case .requested: "a requested reading"
            }
        case .emptied: "the end"
        case .vanished: "the removal"
        case .unreadable: "a failed read"
        }
    }
}
