public import CorralCgroup
public import CorralCore
import CorralRuntime
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What the watcher reports to the engine.
public enum WatchSignal: Sendable {
    /// A fresh reading of an agent (after a kernel event, a PSI trigger, a periodic or requested sample).
    case observed(AgentObservation)
    /// The agent's cgroup has no live process any more (cgroup.events populated 0).
    case emptied(agent: String)
    /// The agent's cgroup was removed behind Corral's back.
    case vanished(agent: String)
}

public struct AgentObservation: Sendable {
    public var agent: String
    public var at: Timestamp
    public var readings: [UsageReading]
    public var sample: CgroupSample?
    /// When the watcher saw the kernel's signal (for latency figures).
    public var seen: ContinuousClock.Instant
    /// A periodic sample (not a kernel event, a PSI trigger or a requested
    /// read): the engine's queue takes these after the others.
    public var routine: Bool

    public init(
        agent: String, at: Timestamp, readings: [UsageReading], sample: CgroupSample?, seen: ContinuousClock.Instant, routine: Bool = false
    ) {
        self.agent = agent
        self.at = at
        self.readings = readings
        self.sample = sample
        self.seen = seen
        self.routine = routine
    }
}

/// The watcher as the engine uses it.
public protocol AgentWatching: Sendable {
    func watch(agent: String, path: CgroupPath)
    func unwatch(agent: String)
    /// Asks for a fresh observation of `agent` soon (before a delayed action).
    func sampleNow(agent: String)
}

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

/// A request to start an agent.
public struct LaunchRequest: Codable, Equatable, Sendable {
    public var id: String?
    public var group: String?
    public var command: [String]
    public var environment: [String: String]?
    public var workingDirectory: String?
    public var limits: [Resource: LimitOverride]?

    public init(
        id: String? = nil, group: String? = nil, command: [String], environment: [String: String]? = nil,
        workingDirectory: String? = nil, limits: [Resource: LimitOverride]? = nil
    ) {
        self.id = id
        self.group = group
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.limits = limits
    }
}

/// An agent with its live usage, as the API shows it.
public struct AgentStatus: Codable, Equatable, Sendable {
    public var agent: AgentRecord
    public var usage: [Resource: Double]
    public var sample: CgroupSample?
    public var violations: [Violation]
    public var ladder: AgentLadder?
    /// Degraded resources: level, active strategies, recovery stage.
    public var degradation: [DegradationSummary] = []
    /// Scale-down requests awaiting their deadline.
    public var pendingRequests: [ScaleDownRequest] = []
}

/// Where one resource of an agent stands in degradation and recovery.
public struct DegradationSummary: Codable, Equatable, Sendable {
    public var resource: Resource
    public var level: DegradationLevel
    public var strategies: [DegradationStrategy]
    public var recoveryStage: Int
    public var since: Timestamp?

    public init(_ tracker: DegradationTracker) {
        resource = tracker.resource
        level = tracker.level
        strategies = tracker.active
        recoveryStage = tracker.recoveryStage
        since = tracker.lastChange
    }
}

/// Runs agents' quotas: turns observations into violations, walks each
/// agent's escalation ladder, carries out the actions through the cgroup
/// tree, records every outcome, and publishes events.
public actor Engine {
    struct Managed {
        var record: AgentRecord
        var ladder: AgentLadder
        var leaf: CgroupPath
        var latest: CgroupSample?
        var usage: [Resource: Double] = [:]
        /// Usage of resources without a controller, reported through the API.
        var reported: [Resource: Double] = [:]
        var violations: [Violation] = []
        /// A terminate in progress: when its grace ends.
        var terminationDeadline: Timestamp?
        /// Analytics: recent samples (with the kernel's hard-limit events per minute) and minutes being folded, by resource.
        var rings: [Resource: UsageRing] = [:]
        var minutes: [Resource: MinuteAccumulator] = [:]
    }

    nonisolated public let tree: CgroupTree
    nonisolated public let hub: EventHub
    /// The store, once every step queued for commit is committed (so what
    /// the engine reads or writes here follows its steps, in order).
    var store: any EngineStore {
        committer.drain()
        return backingStore
    }
    /// The store without draining: only for writes that do not touch what
    /// the steps commit (usage minutes, recommendations).
    let backingStore: any EngineStore

    /// Blocks until every step queued for commit is stored and its records
    /// are published (tests; the daemon's graceful stop uses `settle`).
    public nonisolated func waitForCommits() { committer.drain() }
    /// Commits the steps' records off the actor (see `Committer`).
    let committer: Committer
    let clock: @Sendable () -> Timestamp
    var configuration: CorralConfiguration
    private var handlers: ActionHandlers
    private var watcher: (any AgentWatching)?
    var agents: [String: Managed] = [:]
    private var exited: [Int32: Termination] = [:]
    /// Where launched agents' stdout and stderr go (one file per agent).
    private let logDirectory: String?
    /// Put into agents' environment as CORRAL_SOCKET.
    private let socketPath: String?
    /// Store work that need not hold up the engine (usage minutes, analysis
    /// and recommendations): in order, one at a time, on a thread of its own.
    let background = BackgroundWorker(name: "corral-bg")

    deinit {
        background.stop()
        committer.stop()
    }

    /// Analytics: minutes waiting to be stored, and when analysis runs next.
    var pendingMinutes: [UsageMinute] = []
    var lastMinuteFlush: Timestamp?
    var nextAnalytics: Timestamp?
    /// What a command fell back to (a migrate without a handler suspends), recorded by `step` before it.
    private var fallbackRecords: [EnforcementRecord] = []

    public init(
        configuration: CorralConfiguration, tree: CgroupTree, store: any EngineStore, hub: EventHub = EventHub(),
        handlers: ActionHandlers? = nil, logDirectory: String? = nil, socketPath: String? = nil,
        clock: @escaping @Sendable () -> Timestamp = Engine.wallClock
    ) {
        self.configuration = configuration
        self.tree = tree
        self.backingStore = store
        self.committer = Committer(store: store)
        self.hub = hub
        self.handlers = handlers ?? configuration.handlers
        self.logDirectory = logDirectory
        self.socketPath = socketPath
        self.clock = clock
    }

    public static let wallClock: @Sendable () -> Timestamp = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Timestamp(milliseconds: Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
    }

    public func attach(watcher: any AgentWatching) {
        self.watcher = watcher
        for (id, agent) in agents where agent.record.state.isLive {
            watcher.watch(agent: id, path: agent.leaf)
        }
    }

    // MARK: Configuration

    public var currentConfiguration: CorralConfiguration { configuration }

    var ladderSettings: LadderSettings {
        LadderSettings(
            policy: configuration.escalation,
            clearAfter: max(.milliseconds(1500), configuration.intervals.sampling * 2.5))
    }

    func settings(for group: String) -> LadderSettings {
        var settings = ladderSettings
        settings.policy = configuration.escalation(for: group)
        return settings
    }

    /// Replaces the configuration (SIGHUP reload, validated by the caller).
    /// Running agents keep their limits; new agents get the new ones.
    public func reload(_ new: CorralConfiguration) {
        var merged = new
        for (name, group) in (try? store.groupOverrides()) ?? [:] { merged.groups[name] = group }
        configuration = merged
        self.handlers = merged.handlers
        publish(.daemon, agent: nil, "configuration reloaded (\(merged.groups.count) groups)")
    }

    // MARK: Start-up

    /// What `restore` found.
    public struct Reconciliation: Equatable, Sendable {
        public var reattached: [String] = []
        public var ended: [String] = []
        public var discovered: [String] = []
        public var removedOrphans: [String] = []
    }

    /// Loads state after a (re)start and reconciles it with the cgroup tree:
    /// live agents are re-attached with their ladders, agents that ended
    /// while nobody watched are marked, unknown populated leaves are taken
    /// in, empty unknown leaves removed.
    public func restore() throws -> Reconciliation {
        var report = Reconciliation()
        for (name, group) in try store.groupOverrides() { configuration.groups[name] = group }
        let ladders = Dictionary(try store.ladders().map { ($0.agent, $0) }, uniquingKeysWith: { _, last in last })
        let now = clock()
        for var record in try store.agents() where record.state.isLive {
            let leaf = tree.agentPath(group: record.group, agent: record.id)
            let populated = (try? tree.fs.read(.events, of: leaf)).map { CgroupEvents(parsing: $0).populated }
            guard populated == true else {
                record.state = .lost
                record.endedAt = now
                record.endReason =
                    populated == nil
                    ? "its cgroup disappeared while Corral was not watching"
                    : "it ended while Corral was not watching (exit status unknown)"
                try? tree.remove(leaf)
                _ = try store.commit(records: [], ladder: nil, agent: record)
                try? store.deleteLadder(agent: record.id)
                report.ended.append(record.id)
                continue
            }
            var ladder = ladders[record.id] ?? AgentLadder(agent: record.id)
            ladder.resume(at: now)
            var managed = Managed(record: record, ladder: ladder, leaf: leaf)
            if ladder.terminating {
                managed.terminationDeadline = now + configuration.escalation(for: record.group).terminationGrace
            }
            agents[record.id] = managed
            report.reattached.append(record.id)
        }
        // Leaves nobody knows about.
        for group in (try? tree.fs.children(of: tree.root)) ?? [] where group != CgroupTree.supervisorName {
            guard CgroupName.isValid(group) else { continue }
            for leafName in (try? tree.fs.children(of: tree.groupPath(group))) ?? [] where agents[leafName] == nil {
                guard CgroupName.isValid(leafName) else { continue }
                let leaf = tree.agentPath(group: group, agent: leafName)
                let populated = (try? tree.fs.read(.events, of: leaf)).map { CgroupEvents(parsing: $0).populated } ?? false
                if !populated {
                    try? tree.remove(leaf)
                    report.removedOrphans.append("\(group)/\(leafName)")
                    continue
                }
                let known = try store.agents().first { $0.id == leafName }
                let limits = configuration.limits(agent: leafName, group: group) ?? known?.limits ?? LimitSet()
                let record = AgentRecord(
                    id: leafName, group: group, state: .running, origin: .discovered,
                    pid: (try? tree.allProcesses(leaf))?.first, command: known?.command ?? [], limits: limits,
                    cgroup: tree.fs.absolutePath(leaf), createdAt: now)
                agents[leafName] = Managed(record: record, ladder: AgentLadder(agent: leafName), leaf: leaf)
                _ = try store.commit(records: [], ladder: nil, agent: record)
                report.discovered.append(leafName)
            }
        }
        publish(
            .daemon, agent: nil,
            "restored: \(report.reattached.count) re-attached, \(report.discovered.count) discovered, \(report.ended.count) ended while down, \(report.removedOrphans.count) orphan cgroups removed"
        )
        return report
    }

    // MARK: Queries

    public func list(includeEnded: Bool = true) throws -> [AgentRecord] {
        var records = Dictionary(try store.agents().map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        for (id, agent) in agents { records[id] = agent.record }
        return records.values.filter { includeEnded || $0.state.isLive }.sorted { $0.id < $1.id }
    }

    public func status(of id: String) throws -> AgentStatus {
        if let agent = agents[id] {
            return AgentStatus(
                agent: agent.record, usage: agent.usage.merging(agent.reported) { _, reported in reported },
                sample: agent.latest, violations: currentViolations(agent), ladder: agent.ladder,
                degradation: (agent.ladder.degradation ?? [:]).values.filter { $0.level != .none }.sorted { $0.resource < $1.resource }
                    .map(DegradationSummary.init),
                pendingRequests: agent.ladder.scaleDowns.values.sorted { $0.resource < $1.resource })
        }
        guard let record = try store.agents().first(where: { $0.id == id }) else {
            throw EngineError(.notFound, "no agent '\(id)'")
        }
        return AgentStatus(agent: record, usage: [:], sample: nil, violations: [], ladder: nil)
    }

    public func history(agent: String?, since: Timestamp?, afterID: Int64?, limit: Int) throws -> [EnforcementRecord] {
        try store.history(agent: agent, since: since, afterID: afterID, limit: limit)
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
        guard let agent = agents[id] else { throw EngineError(.notFound, "no running agent '\(id)'") }
        return currentViolations(agent)
    }

    func currentViolations(_ agent: Managed) -> [Violation] {
        var found = agent.violations.filter { !agent.reported.keys.contains($0.resource) }
        for (resource, usage) in agent.reported.sorted(by: { $0.key < $1.key }) {
            guard let limit = agent.record.limits[resource],
                let violation = Violation.classify(agent: agent.record.id, resource: resource, usage: usage, limit: limit)
            else { continue }
            found.append(violation)
        }
        return found
    }

    // MARK: Launching and registering

    /// Validates a request and resolves the agent's id, group and limits.
    func resolve(id: String?, group: String?, command: [String], overrides: [Resource: LimitOverride]) throws -> (
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
        if let existing = agents[agentID], existing.record.state.isLive {
            throw EngineError(.conflict, "agent id '\(agentID)' is in use (state \(existing.record.state.rawValue))")
        }
        let groupName = group ?? configuration.agents[agentID]?.group ?? QuotaGroup.defaultGroupName
        guard let quotaGroup = configuration.groups[groupName] else {
            throw EngineError(.invalid, "unknown group '\(groupName)'; groups: \(configuration.groupNames.joined(separator: ", "))")
        }
        guard let limits = configuration.limits(agent: agentID, group: groupName, flags: overrides) else {
            throw EngineError(.invalid, "unknown group '\(groupName)'")
        }
        for resource in overrides.keys.sorted() where limits[resource] == nil {
            throw EngineError(.invalid, "group \(groupName) has no \(resource.rawValue) limit to adjust: give soft, hard and action")
        }
        for resource in limits.resources {
            let problems = limits[resource]!.problems(for: resource)
            if !problems.isEmpty {
                throw EngineError(.invalid, "invalid \(resource.rawValue) limits: \(problems.joined(separator: "; "))")
            }
        }
        return (agentID, quotaGroup, limits)
    }

    /// Creates the agent's cgroup with its limits.
    func createCgroup(id: String, group: QuotaGroup, limits: LimitSet) throws -> CgroupPath {
        do {
            let lock = try tree.fs.lockTree()
            defer { withExtendedLifetime(lock) {} }
            try tree.prepareGroup(group)
            return try tree.createAgent(id, in: group.name, settings: CgroupSettings(agentLimits: limits))
        } catch {
            if error.code == .alreadyExists {
                throw EngineError(.conflict, "agent id '\(id)' is in use: \(error.path) exists")
            }
            throw EngineError(.failed, error.description)
        }
    }

    /// Starts `request.command` as a new agent.
    public func launch(_ request: LaunchRequest) throws -> AgentRecord {
        guard let program = request.command.first, !program.isEmpty else {
            throw EngineError(.invalid, "command is empty: give the program and its arguments, e.g. [\"python3\", \"agent.py\"]")
        }
        let (id, group, limits) = try resolve(
            id: request.id, group: request.group, command: request.command, overrides: request.limits ?? [:])
        var environmentMap = request.environment ?? [:]
        let executable: String
        do {
            executable = try ExecutableLookup.resolve(program, path: environmentMap["PATH"] ?? Self.defaultPath)
        } catch {
            throw EngineError(.invalid, error.description)
        }
        let leaf = try createCgroup(id: id, group: group, limits: limits)
        environmentMap["CORRAL_AGENT_ID"] = id
        environmentMap["CORRAL_GROUP"] = group.name
        if let socketPath { environmentMap["CORRAL_SOCKET"] = socketPath }
        if environmentMap["PATH"] == nil { environmentMap["PATH"] = Self.defaultPath }
        let environment = environmentMap.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }

        let output: FileDescriptor?
        if let logDirectory {
            output = try? FileDescriptor.open(
                logDirectory + "/" + id + ".log", .writeOnly, options: [.create, .append, .closeOnExec],
                permissions: [.ownerReadWrite, .groupRead])
        } else {
            output = nil
        }
        let nullInput = try? FileDescriptor.open("/dev/null", .readOnly, options: [.closeOnExec])
        defer {
            try? output?.close()
            try? nullInput?.close()
        }
        let child: SpawnedProcess
        do {
            let directory = try tree.fs.openDirectory(leaf)
            defer { try? directory.close() }
            let procs = try tree.fs.openForWriting(.procs, of: leaf)
            defer { try? procs.close() }
            child = try Spawner.spawn(
                Spawner.Request(
                    executable: executable, arguments: request.command, environment: environment, cgroupDirectory: directory,
                    cgroupProcs: procs, workingDirectory: request.workingDirectory, standardInput: nullInput,
                    standardOutput: output, standardError: output, newSession: true))
        } catch {
            try? tree.remove(leaf)
            if let error = error as? SpawnError { throw EngineError(.invalid, error.description) }
            throw EngineError(.failed, "\(error)")
        }
        if let pidfd = child.pidfd { try? pidfd.close() }
        let record = AgentRecord(
            id: id, group: group.name, state: .running, origin: .launched, pid: child.pid, command: request.command,
            limits: limits, overrides: request.limits ?? [:], cgroup: tree.fs.absolutePath(leaf), createdAt: clock())
        try begin(record, leaf: leaf)
        return record
    }

    /// Creates an agent's cgroup for a process the caller will start in it
    /// (`corral run` with a daemon); `attach` names the process afterwards.
    public func register(id: String?, group: String?, command: [String], overrides: [Resource: LimitOverride]) throws -> AgentRecord {
        let (id, group, limits) = try resolve(id: id, group: group, command: command, overrides: overrides)
        let leaf = try createCgroup(id: id, group: group, limits: limits)
        let record = AgentRecord(
            id: id, group: group.name, state: .starting, origin: .registered, pid: nil, command: command, limits: limits,
            overrides: overrides, cgroup: tree.fs.absolutePath(leaf), createdAt: clock())
        agents[id] = Managed(record: record, ladder: AgentLadder(agent: id), leaf: leaf)
        _ = try store.commit(records: [], ladder: nil, agent: record)
        return record
    }

    /// Takes in an agent whose cgroup was created by the caller (the engine
    /// embedded in `corral run`); `attach` names its process.
    public func adoptCreated(id: String, group: String, command: [String], limits: LimitSet, leaf: CgroupPath) throws -> AgentRecord {
        let record = AgentRecord(
            id: id, group: group, state: .starting, origin: .registered, pid: nil, command: command, limits: limits,
            cgroup: tree.fs.absolutePath(leaf), createdAt: clock())
        agents[id] = Managed(record: record, ladder: AgentLadder(agent: id), leaf: leaf)
        _ = try store.commit(records: [], ladder: nil, agent: record)
        return record
    }

    /// The registered agent's process is running in its cgroup.
    public func attach(id: String, pid: Int32) throws -> AgentRecord {
        guard var agent = agents[id] else { throw EngineError(.notFound, "no agent '\(id)'") }
        guard agent.record.state == .starting else {
            throw EngineError(.conflict, "agent '\(id)' is \(agent.record.state.rawValue), not starting")
        }
        agent.record.pid = pid
        agent.record.state = .running
        agents[id] = agent
        try begin(agent.record, leaf: agent.leaf)
        return agent.record
    }

    /// Moves an existing process (and its threads) into a new agent cgroup.
    public func adopt(pid: Int32, id: String?, group: String?) throws -> AgentRecord {
        guard pid > 1, Glibc.kill(pid, 0) == 0 || errno == EPERM else { throw EngineError(.invalid, "no process \(pid)") }
        let command = Self.commandLine(of: pid)
        let (id, group, limits) = try resolve(id: id, group: group, command: command, overrides: [:])
        let leaf = try createCgroup(id: id, group: group, limits: limits)
        do {
            try tree.fs.write(String(pid), to: .procs, of: leaf)
        } catch {
            try? tree.remove(leaf)
            throw EngineError(.failed, "cannot move process \(pid) into \(tree.fs.absolutePath(leaf)): \(error.description)")
        }
        let record = AgentRecord(
            id: id, group: group.name, state: .running, origin: .adopted, pid: pid, command: command, limits: limits,
            cgroup: tree.fs.absolutePath(leaf), createdAt: clock())
        try begin(record, leaf: leaf)
        return record
    }

    private func begin(_ record: AgentRecord, leaf: CgroupPath) throws {
        agents[record.id] = Managed(record: record, ladder: agents[record.id]?.ladder ?? AgentLadder(agent: record.id), leaf: leaf)
        _ = try store.commit(records: [], ladder: nil, agent: record)
        watcher?.watch(agent: record.id, path: leaf)
        publish(
            .agentStarted, agent: record.id, "agent \(record.id) started in \(record.group) (pid \(record.pid.map(String.init) ?? "?"))")
    }

    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    static func commandLine(of pid: Int32) -> [String] {
        let fd = open("/proc/\(pid)/cmdline", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return [] }
        return buffer[0..<count].split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: Operator actions

    func live(_ id: String) throws -> Managed {
        guard let agent = agents[id], agent.record.state.isLive else {
            if agents[id] != nil { throw EngineError(.conflict, "agent '\(id)' is not running") }
            throw EngineError(.notFound, "no running agent '\(id)'")
        }
        return agent
    }

    public func freeze(_ id: String) throws -> AgentRecord {
        var agent = try live(id)
        publish(.suspendNotice, agent: id, "suspend notice: agent \(id) is being frozen by request")
        let took: Duration
        do {
            took = try tree.freeze(agent.leaf)
        } catch {
            throw EngineError(.failed, error.description)
        }
        agent.record.state = .suspended
        agents[id] = agent
        _ = try store.commit(records: [], ladder: nil, agent: agent.record)
        publish(.suspended, agent: id, "agent \(id) frozen by request (confirmed in \(Quantity.formatSeconds(took.seconds)))")
        return agent.record
    }

    public func thaw(_ id: String) throws -> AgentRecord {
        var agent = try live(id)
        do {
            try tree.thaw(agent.leaf)
        } catch {
            throw EngineError(.failed, error.description)
        }
        agent.record.state = .running
        agent.ladder.noteThawed()
        agents[id] = agent
        _ = try store.commit(records: [], ladder: agent.ladder, agent: agent.record)
        publish(.thawed, agent: id, "agent \(id) thawed by request")
        return agent.record
    }

    public func kill(_ id: String) throws -> AgentRecord {
        let agent = try live(id)
        do {
            _ = try tree.kill(agent.leaf)
        } catch {
            throw EngineError(.failed, error.description)
        }
        agents[id]?.record.endReason = "killed by request"
        return agent.record
    }

    /// SIGTERM to every process, cgroup.kill after the group's grace period.
    public func stop(_ id: String) throws -> AgentRecord {
        var agent = try live(id)
        let grace = configuration.escalation(for: agent.record.group).terminationGrace
        let signalled = signalAll(agent, SIGTERM)
        agent.terminationDeadline = clock() + grace
        agent.record.endReason = "stopped by request"
        agents[id] = agent
        publish(
            .terminationNotice, agent: id,
            "agent \(id) stopping: SIGTERM to \(signalled) processes, cgroup.kill in \(Quantity.formatDuration(grace))",
            graceSeconds: Double(grace.milliseconds) / 1000)
        return agent.record
    }

    /// Forgets an agent that has ended (its history stays); a live one only with `force` (killed first).
    public func remove(_ id: String, force: Bool) throws {
        if let agent = agents[id], agent.record.state.isLive {
            guard force else {
                throw EngineError(.conflict, "agent '\(id)' is \(agent.record.state.rawValue): stop it first or remove with force")
            }
            _ = try? tree.kill(agent.leaf)
            _ = try? tree.waitUntilEmpty(agent.leaf, timeout: .seconds(5))
            try? tree.remove(agent.leaf)
            watcher?.unwatch(agent: id)
        } else if agents[id] == nil, try store.agents().contains(where: { $0.id == id }) == false {
            throw EngineError(.notFound, "no agent '\(id)'")
        }
        agents[id] = nil
        try store.delete(agent: id)
        try store.deleteLadder(agent: id)
        publish(.agentRemoved, agent: id, "agent \(id) removed")
    }

    /// Sets per-agent overrides and rewrites the agent's cgroup files.
    public func setOverrides(_ id: String, _ overrides: [Resource: LimitOverride]) throws -> AgentRecord {
        var agent = try live(id)
        guard let limits = configuration.limits(agent: id, group: agent.record.group, flags: overrides) else {
            throw EngineError(.invalid, "unknown group '\(agent.record.group)'")
        }
        for resource in limits.resources {
            let problems = limits[resource]!.problems(for: resource)
            if !problems.isEmpty { throw EngineError(.invalid, "invalid \(resource.rawValue) limits: \(problems.joined(separator: "; "))") }
        }
        do {
            try tree.apply(CgroupSettings(agentLimits: limits), to: agent.leaf)
        } catch {
            throw EngineError(.failed, error.description)
        }
        agent.record.limits = limits
        agent.record.overrides = overrides
        agents[id] = agent
        _ = try store.commit(records: [], ladder: nil, agent: agent.record)
        publish(.quotaChanged, agent: id, "limits of \(id) changed", limits: agents[id]?.record.limits)
        return agent.record
    }

    /// Live update of a group: totals and default limits; rewrites the group's
    /// cgroup and the files of its agents that have no override for a resource.
    public func updateGroup(_ name: String, limits: [Resource: LimitOverride], totals: [Resource: Double]) throws -> QuotaGroup {
        guard var group = configuration.groups[name] else { throw EngineError(.notFound, "no group '\(name)'") }
        group.limits = group.limits.applying(limits)
        for resource in limits.keys.sorted() where group.limits[resource] == nil {
            throw EngineError(.invalid, "group \(name) has no \(resource.rawValue) limit: give soft, hard and action")
        }
        for resource in group.limits.resources {
            let problems = group.limits[resource]!.problems(for: resource)
            if !problems.isEmpty { throw EngineError(.invalid, "invalid \(resource.rawValue) limits: \(problems.joined(separator: "; "))") }
        }
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
        try store.save(group: group)
        for (id, var agent) in agents where agent.record.group == name && agent.record.state.isLive {
            guard let updated = configuration.limits(agent: id, group: name, flags: agent.record.overrides) else { continue }
            let before = agent.record.limits
            do {
                try tree.apply(CgroupSettings(agentLimits: updated), to: agent.leaf)
                agent.record.limits = updated
                agents[id] = agent
                _ = try store.commit(records: [], ladder: nil, agent: agent.record)
                // The agent hears of its new limits as it does of an override.
                if updated != before { publish(.quotaChanged, agent: id, "limits of \(id) changed with group \(name)", limits: updated) }
            } catch {
                publish(.groupChanged, agent: id, "could not apply the new limits of \(name) to \(id): \(error)")
            }
        }
        publish(.groupChanged, agent: nil, "group \(name) updated")
        return group
    }

    /// Usage of resources without a cgroup controller, reported by the agent (the seed's update_resource_usage).
    public func report(usage: [Resource: Double], for id: String) throws -> [Violation] {
        var agent = try live(id)
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
        agents[id] = agent
        publish(
            .usageReported, agent: id,
            "usage reported: " + usage.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", "))
        let violations = currentViolations(agent)
        step(id, violations: violations, usage: usage, seen: nil)
        return violations
    }

    // MARK: Watching

    /// Handles one report of the watcher.
    public func handle(_ signal: WatchSignal) {
        switch signal {
        case .observed(let observation):
            guard var agent = agents[observation.agent], agent.record.state.isLive else { return }
            if let sample = observation.sample { agent.latest = sample }
            var violations: [Violation] = []
            var usage: [Resource: Double] = [:]
            for reading in observation.readings {
                usage[reading.resource] = reading.usage
                if let limit = agent.record.limits[reading.resource],
                    let violation = reading.violation(agent: agent.record.id, limit: limit)
                {
                    violations.append(violation)
                }
            }
            agent.usage.merge(usage) { _, new in new }
            remember(observation.readings, of: &agent, at: clock())
            agent.violations = violations
            agents[observation.agent] = agent
            for (resource, amount) in agent.reported {
                if let limit = agent.record.limits[resource],
                    let violation = Violation.classify(agent: agent.record.id, resource: resource, usage: amount, limit: limit)
                {
                    violations.append(violation)
                }
            }
            step(
                observation.agent, violations: violations, usage: usage.merging(agent.reported) { kernel, _ in kernel },
                seen: observation.seen)
        case .emptied(let id):
            ended(id, vanished: false)
        case .vanished(let id):
            ended(id, vanished: true)
        }
    }

    /// Feeds the ladder and carries out what it asks.
    func step(_ id: String, violations: [Violation], usage: [Resource: Double], seen: ContinuousClock.Instant?) {
        guard var agent = agents[id] else { return }
        let now = clock()
        let before = agent.ladder
        let recordBefore = agent.record
        let stateBefore = agent.record.state
        let known = Set(agent.ladder.episodes.keys)
        agent.ladder.observe(violations, usage: usage, at: now)
        for violation in violations where !known.contains(violation.resource) {
            publish(.violation, agent: id, "\(violation.kind.rawValue) violation of \(violation.resource.rawValue)", violation: violation)
        }
        let commands = agent.ladder.advance(to: now, limits: agent.record.limits, settings: settings(for: agent.record.group))
        let plans = degrade(&agent, usage: usage, at: now)
        agents[id] = agent
        var records: [EnforcementRecord] = []
        for command in commands {
            let outcome = execute(command, on: id)
            records += fallbackRecords
            fallbackRecords.removeAll()
            if let outcome { records.append(outcome) }
        }
        deliver(plans, to: id)
        recoverSuspension(id)
        guard let current = agents[id] else { return }
        let ladderChanged =
            current.ladder.episodes.keys != before.episodes.keys
            || current.ladder.episodes.values.map(\.fired) != before.episodes.values.map(\.fired)
            || !records.isEmpty || !plans.isEmpty || current.record.state != stateBefore
        if ladderChanged {
            // Committed off the actor; the records are published once stored.
            // The agent's row only when this step changed it (JSON encoding
            // is most of a commit's cost).
            let request = CommitRequest(
                records: records, plans: plans, ladder: current.ladder, agent: current.record == recordBefore ? nil : current.record)
            let hub = hub
            let clock = clock
            let count = records.count
            committer.enqueue(request) { result in
                switch result {
                case .success(let stored):
                    for record in stored {
                        hub.publish(
                            CorralEvent(
                                at: clock(), kind: .enforcement, agent: id,
                                message:
                                    "\(record.action.rawValue) on \(record.resource.rawValue) (\(record.kind.rawValue)): \(record.succeeded ? "ok" : "failed: \(record.error ?? "")") — \(record.details)",
                                record: record))
                    }
                case .failure(let error):
                    hub.publish(
                        CorralEvent(
                            at: clock(), kind: .daemon, agent: id, message: "could not store \(count) enforcement records: \(error)"))
                }
            }
        }
    }

    // MARK: Degradation and recovery

    /// Feeds each resource's usage against its soft limit to its degradation
    /// tracker; returns the level changes.
    func degrade(_ agent: inout Managed, usage: [Resource: Double], at now: Timestamp) -> [DegradationPlan] {
        var trackers = agent.ladder.degradation ?? [:]
        var plans: [DegradationPlan] = []
        for (resource, amount) in usage.sorted(by: { $0.key < $1.key }) {
            guard let limit = agent.record.limits[resource] else { continue }
            var tracker = trackers[resource] ?? DegradationTracker(resource: resource)
            let violating = agent.ladder.episodes[resource] != nil
            if let plan = tracker.observe(
                agent: agent.record.id, usage: amount, limit: limit.soft, violating: violating, at: now, policy: configuration.recovery)
            {
                plans.append(plan)
            }
            trackers[resource] = tracker
        }
        if !trackers.isEmpty || agent.ladder.degradation != nil { agent.ladder.degradation = trackers }
        return plans
    }

    /// Publishes level changes to the agent's stream; a rise (by pressure or a
    /// relapse) also sends the group's degradation signal, if any, to an
    /// agent that does not follow its stream (a plain program: the signal is
    /// its only notice).
    func deliver(_ plans: [DegradationPlan], to id: String) {
        guard let agent = agents[id] else { return }
        for plan in plans {
            let strategies = plan.strategies.map(\.strategy.rawValue).joined(separator: ", ")
            let unit = plan.resource.unit
            switch plan.reason {
            case .pressure:
                publish(
                    .degradationStrategy, agent: id,
                    "\(plan.resource.rawValue) at \(unit.format(plan.usage)) of \(unit.format(plan.limit)): \(plan.level.rawValue) degradation (\(strategies)); target \(unit.format(plan.targetUsage)) within \(Int(plan.timelineSeconds)) s",
                    resource: plan.resource, plan: plan)
            case .recovery, .relapse:
                publish(
                    .recoveryStage, agent: id,
                    "\(plan.resource.rawValue) \(plan.reason == .recovery ? "recovery stage \(plan.recoveryStage)" : "relapse"): \(plan.previousLevel.rawValue) → \(plan.level.rawValue)\(strategies.isEmpty ? ", no strategy left" : " (\(strategies))")",
                    resource: plan.resource, plan: plan)
            }
            if plan.reason != .recovery, let signal = configuration.escalation(for: agent.record.group).degradationSignal,
                hub.listenerCount(agent: id) == 0
            {
                _ = signalAll(agent, signal)
            }
        }
    }

    /// Thaws an agent the ladder suspended once its violations have all
    /// cleared and no resource is degraded any more, when the policy says so.
    func recoverSuspension(_ id: String) {
        guard configuration.recovery.thawSuspended, var agent = agents[id], agent.record.state == .suspended, agent.ladder.suspended,
            agent.ladder.episodes.isEmpty, !agent.ladder.terminating,
            (agent.ladder.degradation ?? [:]).values.allSatisfy({ $0.level == .none })
        else { return }
        do {
            try tree.thaw(agent.leaf)
            agent.record.state = .running
            agent.ladder.noteThawed()
            agents[id] = agent
            publish(.thawed, agent: id, "agent \(id) thawed: its violations cleared (recovery)")
        } catch {
            publish(.daemon, agent: id, "could not thaw \(id) on recovery: \(error)")
        }
    }

    /// An agent acknowledges an event of its stream.
    public func acknowledge(_ ack: Acknowledgement, from id: String) throws {
        _ = try live(id)
        guard ack.sequence > 0 else { throw EngineError(.invalid, "sequence must be the positive number of an event") }
        guard !ack.kind.isEmpty, ack.kind.count <= 64, (ack.note?.count ?? 0) <= 1024 else {
            throw EngineError(.invalid, "kind must be 1–64 characters and note at most 1024")
        }
        publish(.acknowledged, agent: id, "\(id) acknowledged \(ack.kind) #\(ack.sequence)\(ack.note.map { ": \($0)" } ?? "")", ack: ack)
    }

    /// Degradation plans and recovery stages, oldest first.
    public func degradationHistory(agent: String?, limit: Int) throws -> [DegradationPlan] {
        try store.degradation(agent: agent, limit: limit)
    }

    /// Periodic duties: terminations whose grace ended, children to reap,
    /// agents whose ladders are due (a fresh sample is requested for the re-check).
    public func tick() {
        reapChildren()
        let now = clock()
        analyticsDuties(at: now)
        for (id, agent) in agents where agent.record.state.isLive {
            if let deadline = agent.terminationDeadline, now >= deadline {
                agents[id]?.terminationDeadline = nil
                finishTermination(id)
                continue
            }
            guard !agent.ladder.isQuiet else { continue }
            if let due = agent.ladder.nextDue(limits: agent.record.limits, settings: settings(for: agent.record.group)), due <= now {
                watcher?.sampleNow(agent: id)
            }
        }
    }

    /// The earliest moment `tick` has something to do.
    public func nextDue() -> Timestamp? {
        agents.values.filter(\.record.state.isLive).compactMap { agent in
            [agent.terminationDeadline, agent.ladder.nextDue(limits: agent.record.limits, settings: settings(for: agent.record.group))]
                .compactMap { $0 }.min()
        }.min()
    }

    /// Collects the exit status of agents this process started (only
    /// those: handler processes are reaped by their runner).
    func reapChildren() {
        // One syscall to learn whether any child has exited (WNOWAIT: nothing
        // is reaped here), instead of one waitpid per agent on every tick.
        var info = siginfo_t()
        guard waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid != 0 else { return }
        for agent in agents.values where agent.record.origin == .launched {
            guard let pid = agent.record.pid, exited[pid] == nil else { continue }
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { continue }
            let signal = status & 0x7f
            exited[pid] = signal == 0 ? .exited(code: (status >> 8) & 0xff) : .signaled(signal: signal)
        }
    }

    /// The agent's processes are gone (or its cgroup is).
    func ended(_ id: String, vanished: Bool) {
        guard var agent = agents[id], agent.record.state.isLive else { return }
        if agent.record.state == .starting, !vanished { return }
        reapChildren()
        let now = clock()
        let termination = agent.record.pid.flatMap { exited.removeValue(forKey: $0) }
        let sample = vanished ? nil : (try? tree.sample(agent.leaf))
        let oomKilled = (sample?.memoryEvents.oomKill ?? 0) > 0 && termination == .signaled(signal: SIGKILL)
        agent.record.state =
            agent.ladder.terminating || agent.record.endReason == "killed by request" || agent.record.endReason == "stopped by request"
            ? .terminated : (vanished ? .lost : .exited)
        agent.record.endedAt = now
        agent.record.exitStatus = termination?.exitStatus
        if agent.record.endReason == nil {
            agent.record.endReason =
                vanished
                ? "its cgroup was removed"
                : oomKilled ? "OOM-killed at its memory limit" : agent.ladder.terminating ? "terminated by the escalation ladder" : nil
        }
        if agent.ladder.terminating, agent.record.endReason == nil { agent.record.endReason = "terminated by the escalation ladder" }
        watcher?.unwatch(agent: id)
        if agent.record.origin != .registered, !vanished {
            removeInBackground(agent.leaf, id: id)
        }
        agent.terminationDeadline = nil
        agents[id] = agent
        _ = try? store.commit(records: [], ladder: nil, agent: agent.record)
        try? store.deleteLadder(agent: id)
        publish(
            .agentExited, agent: id,
            "agent \(id) \(agent.record.state.rawValue)" + (termination.map { ", status \($0.exitStatus)" } ?? "")
                + (agent.record.endReason.map { " (\($0))" } ?? ""))
    }

    /// A registered agent (`corral run`) ended: the caller knows its exit
    /// status. The daemon removes the cgroup once the caller has read it.
    public func finished(_ id: String, exitStatus: Int32?, reason: String?) throws -> AgentRecord {
        guard agents[id] != nil else { throw EngineError(.notFound, "no agent '\(id)'") }
        // Never attached (its command did not start): it ends all the same.
        if agents[id]?.record.state == .starting { agents[id]?.record.state = .running }
        if agents[id]?.record.state.isLive == true { ended(id, vanished: false) }
        guard var agent = agents[id] else { throw EngineError(.notFound, "no agent '\(id)'") }
        if let exitStatus { agent.record.exitStatus = exitStatus }
        if let reason { agent.record.endReason = reason }
        if agent.record.origin == .registered { removeInBackground(agent.leaf, id: id) }
        agents[id] = agent
        _ = try store.commit(records: [], ladder: nil, agent: agent.record)
        return agent.record
    }

    /// Removes an ended agent's cgroup without holding up the engine: a
    /// cgroup whose last tasks are still dying answers EBUSY for a while, and
    /// the retries (1 ms doubling, 10 tries, as runc) sleep off the actor.
    nonisolated func removeInBackground(_ leaf: CgroupPath, id: String) {
        // Mostly it goes at once; only a busy cgroup is retried in the background.
        do {
            try tree.fs.removeDirectory(leaf)
            return
        } catch  where error.code != .busy {
            if error.code != .notFound {
                hub.publish(
                    CorralEvent(at: clock(), kind: .daemon, agent: id, message: "could not remove \(tree.fs.absolutePath(leaf)): \(error)"))
            }
            return
        } catch {}
        let tree = tree
        let hub = hub
        let clock = clock
        Task.detached {
            var delay = Duration.milliseconds(1)
            for attempt in 1...10 {
                do throws(CgroupError) {
                    try tree.fs.removeDirectory(leaf)
                    return
                } catch  where error.code == .notFound {
                    return
                } catch  where error.code == .busy && attempt < 10 {
                    try? await Task.sleep(for: delay)
                    delay *= 2
                } catch {
                    hub.publish(
                        CorralEvent(
                            at: clock(), kind: .daemon, agent: id, message: "could not remove \(tree.fs.absolutePath(leaf)): \(error)"))
                    return
                }
            }
        }
    }

    // MARK: Actions

    func signalAll(_ agent: Managed, _ signal: Int32) -> Int {
        let pids = (try? tree.allProcesses(agent.leaf)) ?? []
        return pids.filter { Glibc.kill($0, signal) == 0 }.count
    }

    /// Carries out one ladder command; returns the record of its real outcome.
    func execute(_ command: LadderCommand, on id: String) -> EnforcementRecord? {
        guard var agent = agents[id] else { return nil }
        let now = clock()
        func record(_ violation: Violation, _ action: EnforcementAction, ok: Bool, error: String? = nil, _ details: String)
            -> EnforcementRecord
        {
            EnforcementRecord(violation: violation, action: action, at: now, succeeded: ok, error: error, details: details)
        }
        switch command {
        case .warn(let violation):
            return record(
                violation, .warn, ok: true,
                "\(violation.resource.rawValue) at \(violation.resource.unit.format(violation.current)), over its \(violation.kind.rawValue) limit \(violation.resource.unit.format(violation.limit)); warning published"
            )

        case .throttle(let violation, let factor):
            let cumulative = agent.ladder.throttled[violation.resource] ?? factor
            do {
                let details = try throttle(agent, violation.resource, cumulative: cumulative)
                publish(
                    .throttleNotice, agent: id, "throttle notice: \(violation.resource.rawValue) limit × \(factor)", violation: violation,
                    resource: violation.resource, factor: factor)
                return record(
                    violation, .throttle, ok: true,
                    "factor \(factor) (cumulative \(Quantity.formatDecimal(cumulative, places: 3))): \(details)")
            } catch {
                agents[id]?.ladder.noteThrottleFailed(violation.resource, factor: factor)
                return record(
                    violation, .throttle, ok: false, error: "\(error)", "could not lower the \(violation.resource.rawValue) limit")
            }

        case .restore(_, let resource):
            do {
                let details = try restore(agent, resource)
                publish(.throttleRestored, agent: id, "\(resource.rawValue) limit restored: \(details)")
            } catch {
                publish(.throttleRestored, agent: id, "could not restore the \(resource.rawValue) limit: \(error)")
            }
            return nil

        case .suspend(let violation):
            // The notice goes out while the agent still runs; the confirmation
            // after the freeze reaches it only once it is thawed.
            publish(
                .suspendNotice, agent: id, "suspend notice: agent \(id) is being frozen for \(violation.resource.rawValue)",
                violation: violation)
            do {
                let took = try tree.freeze(agent.leaf)
                agent.record.state = .suspended
                agents[id] = agent
                publish(.suspended, agent: id, "agent \(id) suspended for \(violation.resource.rawValue)", violation: violation)
                return record(
                    violation, .suspend, ok: true, "cgroup.freeze 1, cgroup.events frozen 1 after \(Quantity.formatSeconds(took.seconds))")
            } catch {
                agents[id]?.ladder.noteSuspendFailed()
                return record(violation, .suspend, ok: false, error: error.description, "freeze failed; the agent runs on")
            }

        case .terminate(let violation, let grace):
            if agent.record.state == .suspended {
                _ = try? tree.thaw(agent.leaf)
                agent.record.state = .running
            }
            let signalled = signalAll(agent, SIGTERM)
            agent.terminationDeadline = now + grace
            agent.record.endReason = "terminated for \(violation.resource.rawValue) (\(violation.kind.rawValue) limit)"
            agents[id] = agent
            publish(
                .terminationNotice, agent: id, "termination notice: SIGTERM now, cgroup.kill in \(Quantity.formatDuration(grace))",
                violation: violation, graceSeconds: Double(grace.milliseconds) / 1000)
            return record(
                violation, .terminate, ok: signalled > 0, error: signalled > 0 ? nil : "no process received SIGTERM",
                "SIGTERM sent to \(signalled) processes; cgroup.kill after \(Quantity.formatDuration(grace)) unless they exit")

        case .scaleDown(let violation, let request):
            publish(
                .scaleDownRequest, agent: id,
                "scale down \(request.resource.rawValue) from \(request.resource.unit.format(request.current)) to \(request.resource.unit.format(request.target)) by \(request.deadline)",
                violation: violation, request: request)
            return record(
                violation, .scaleDown, ok: true,
                "requested \(request.resource.rawValue) ≤ \(request.resource.unit.format(request.target)) by \(request.deadline)")

        case .scaleDownResolved(_, let request, let usage, let met):
            let violation = Violation(
                agent: id, resource: request.resource, kind: .hard, current: usage ?? request.current, limit: request.target)
            return record(
                violation, .scaleDown, ok: met, error: met ? nil : "deadline missed",
                met
                    ? "met: \(request.resource.rawValue) at \(usage.map { request.resource.unit.format($0) } ?? "below its limits") ≤ \(request.resource.unit.format(request.target))"
                    : "missed: \(request.resource.rawValue) still \(usage.map { request.resource.unit.format($0) } ?? "unknown") > \(request.resource.unit.format(request.target)); escalating to suspend"
            )

        case .migrate(let violation):
            guard let command = handlers.migrate else {
                let fallback = execute(.suspend(violation), on: id)
                if fallback?.succeeded == true { agents[id]?.ladder.noteSuspended() }
                if let fallback { fallbackRecords.append(fallback) }
                return record(
                    violation, .migrate, ok: false, error: "no migrate handler is configured",
                    "fell back to suspend: \(fallback.map { $0.succeeded ? "frozen" : "freeze failed" } ?? "")")
            }
            runHandler(command, violation: violation, action: .migrate, fallbackToSuspend: true)
            return nil

        case .custom(let violation):
            guard let command = handlers.custom else {
                return record(violation, .custom, ok: false, error: "no custom handler is configured", "nothing run")
            }
            runHandler(command, violation: violation, action: .custom, fallbackToSuspend: false)
            return nil
        }
    }

    /// Lowers the resource's kernel limit to `cumulative` × the configured one.
    func throttle(_ agent: Managed, _ resource: Resource, cumulative: Double) throws -> String {
        guard let limit = agent.record.limits[resource] else { return "no limit" }
        switch resource {
        case .cpu:
            let before = (try? tree.fs.read(.cpuMax, of: agent.leaf))?.trimmingSpaces() ?? "?"
            let target = CPUMax(percent: max(CPUMax.minimumPercent, limit.hard * cumulative))
            try tree.fs.write(target.description, to: .cpuMax, of: agent.leaf)
            return "cpu.max \(before) → \(target.description)"
        case .memory:
            let before = (try? tree.fs.read(.memoryHigh, of: agent.leaf))?.trimmingSpaces() ?? "?"
            let target = Int64(max(1_048_576, limit.soft * cumulative))
            try tree.fs.write(String(target), to: .memoryHigh, of: agent.leaf)
            return "memory.high \(before) → \(target)"
        case .processes:
            let before = (try? tree.fs.read(.pidsMax, of: agent.leaf))?.trimmingSpaces() ?? "?"
            let current = Int64(agent.usage[.processes] ?? 1)
            // Never above the limit in force: processes counted over it must not raise it.
            let target = min(Int64(limit.hard), max(current, Int64(limit.hard * cumulative), 1))
            try tree.fs.write(String(target), to: .pidsMax, of: agent.leaf)
            return "pids.max \(before) → \(target)"
        case .files, .connections, .network, .disk:
            return "no kernel control for \(resource.rawValue): throttle notice sent to the agent"
        }
    }

    /// Writes the configured limit of `resource` back.
    func restore(_ agent: Managed, _ resource: Resource) throws -> String {
        var only = LimitSet()
        only[resource] = agent.record.limits[resource]
        let settings = CgroupSettings(agentLimits: only)
        for write in settings.writes where write.file != .memoryOOMGroup {
            try tree.fs.write(write.value, to: write.file, of: agent.leaf)
        }
        return settings.writes.filter { $0.file != .memoryOOMGroup && $0.file != .cpuMaxBurst }.map { "\($0.file.rawValue) \($0.value)" }
            .joined(separator: ", ")
    }

    /// The grace after SIGTERM has passed.
    func finishTermination(_ id: String) {
        guard let agent = agents[id], agent.record.state.isLive else { return }
        let populated = (try? tree.fs.read(.events, of: agent.leaf)).map { CgroupEvents(parsing: $0).populated } ?? false
        guard populated else { return }
        let violation =
            agent.ladder.episodes.values.map(\.violation).max { $0.kind < $1.kind }
            ?? Violation(agent: id, resource: .memory, kind: .hard, current: 0, limit: 0)
        var outcome: EnforcementRecord
        do {
            let method = try tree.kill(agent.leaf)
            outcome = EnforcementRecord(
                violation: violation, action: .terminate, at: clock(), succeeded: true,
                details: "grace ended with processes alive: \(method == .cgroupKill ? "cgroup.kill" : "SIGKILL to every process")")
        } catch {
            outcome = EnforcementRecord(
                violation: violation, action: .terminate, at: clock(), succeeded: false, error: error.description, details: "kill failed")
        }
        if agent.record.endReason == "stopped by request" { return }
        if let stored = try? store.commit(records: [outcome], ladder: agent.ladder, agent: agent.record).first {
            publish(.enforcement, agent: id, "terminate: \(stored.details)", record: stored)
        }
    }

    /// Runs a migrate/custom handler with the violation as JSON on stdin, without blocking the engine.
    func runHandler(_ command: [String], violation: Violation, action: EnforcementAction, fallbackToSuspend: Bool) {
        let timeout = handlers.timeout
        let input = HandlerInput(action: action, violation: violation).json
        Task.detached { [weak self] in
            let outcome = await HandlerRunner.run(command, input: input, timeout: timeout)
            await self?.handlerFinished(
                outcome, command: command, violation: violation, action: action, fallbackToSuspend: fallbackToSuspend)
        }
    }

    func handlerFinished(
        _ outcome: HandlerRunner.Outcome, command: [String], violation: Violation, action: EnforcementAction, fallbackToSuspend: Bool
    ) {
        let now = clock()
        var records = [
            EnforcementRecord(
                violation: violation, action: action, at: now, succeeded: outcome.succeeded,
                error: outcome.succeeded ? nil : outcome.summary,
                details: "\(command.joined(separator: " ")): \(outcome.summary)")
        ]
        if !outcome.succeeded, fallbackToSuspend, agents[violation.agent]?.record.state.isLive == true {
            if let suspend = execute(.suspend(violation), on: violation.agent) {
                records.append(suspend)
                if suspend.succeeded { agents[violation.agent]?.ladder.noteSuspended() }
            }
        }
        guard let agent = agents[violation.agent] else { return }
        if let stored = try? store.commit(records: records, ladder: agent.ladder, agent: agent.record) {
            for record in stored {
                publish(.enforcement, agent: violation.agent, "\(record.action.rawValue): \(record.details)", record: record)
            }
        }
    }

    // MARK: Events

    @discardableResult
    func publish(
        _ kind: CorralEvent.Kind, agent: String?, _ message: String, violation: Violation? = nil, record: EnforcementRecord? = nil,
        request: ScaleDownRequest? = nil, resource: Resource? = nil, factor: Double? = nil, graceSeconds: Double? = nil,
        plan: DegradationPlan? = nil, limits: LimitSet? = nil, ack: Acknowledgement? = nil
    ) -> CorralEvent {
        hub.publish(
            CorralEvent(
                at: clock(), kind: kind, agent: agent, message: message, violation: violation, record: record, request: request,
                resource: resource, factor: factor, graceSeconds: graceSeconds, plan: plan, limits: limits, ack: ack))
    }
}
