import CorralAPI
import CorralCgroup
import CorralCore

/// One agent the engine manages: its record, ladder, cgroup and latest usage.
struct ManagedAgent {
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
    /// A suspend whose freeze is written but not yet confirmed by cgroup.events.
    var pendingFreeze: PendingFreeze?
    /// An operator asked it to end (`stop`, `kill`): it ends `terminated`,
    /// and the kill after a stop's grace is no ladder action to record.
    var endRequested: EndRequest?
    /// Analytics: recent samples (with the kernel's hard-limit events per minute) and minutes being folded, by resource.
    var rings: [Resource: UsageRing] = [:]
    var minutes: [Resource: MinuteAccumulator] = [:]
    /// Changes with every change of the agent in the registry (`AgentRegistry`
    /// sets it, unique over all agents): a scrape skips redrawing an agent
    /// whose generation it has drawn (`AgentMetrics.generation`).
    var generation: UInt64 = 0
    /// How often the watcher samples it, as the engine last told it
    /// (`Engine+Cadence.swift`; nil: not decided yet, sampled as active).
    /// Kept here rather than in a table by id: the metrics' snapshot counts
    /// the cadences in its walk, and a lookup by id per agent and scrape showed.
    var cadence: SamplingCadence?

    init(record: AgentRecord, ladder: AgentLadder? = nil, leaf: CgroupPath) {
        self.record = record
        self.ladder = ladder ?? AgentLadder(agent: record.id)
        self.leaf = leaf
    }

    /// The agent's current violations: from its latest observation, and from
    /// the usage it reported itself.
    var currentViolations: [Violation] {
        var found = violations.filter { !reported.keys.contains($0.resource) }
        for (resource, usage) in reported.sorted(by: { $0.key < $1.key }) {
            guard let limit = record.limits[resource],
                let violation = Violation.classify(agent: record.id, resource: resource, usage: usage, limit: limit)
            else { continue }
            found.append(violation)
        }
        return found
    }

    /// How the API shows it.
    var status: AgentStatus {
        AgentStatus(
            agent: record, usage: usage.merging(reported) { _, reported in reported }, sample: latest, violations: currentViolations,
            ladder: ladder,
            degradation: (ladder.degradation ?? [:]).values.filter { $0.level != .none }.sorted { $0.resource < $1.resource }
                .map(DegradationSummary.init),
            pendingRequests: ladder.scaleDowns.values.sorted { $0.resource < $1.resource })
    }

    /// Whether the ladder or an operator ended it (else it went by itself).
    var endedByCorral: Bool { ladder.terminating || endRequested != nil }

    /// Whether the engine's timers have anything to do for the agent: a
    /// ladder step or scale-down that may come due, a termination's grace, a
    /// freeze awaiting confirmation.
    var needsTimers: Bool {
        record.state.isLive && (!ladder.isQuiet || terminationDeadline != nil || pendingFreeze != nil)
    }
}

/// A freeze written to `cgroup.freeze` whose `frozen 1` has not been seen yet:
/// confirmed when the watcher reports cgroup.events changed (or by the next
/// step or tick that finds it), failed and rolled back at `deadline`.
struct PendingFreeze {
    var violation: Violation
    /// When the ladder asked (the record's time).
    var at: Timestamp
    var started: ContinuousClock.Instant
    var deadline: Timestamp
}

/// What an operator asked of a live agent.
enum EndRequest {
    case stop, kill
}

/// The end reasons the engine gives (in the agent's record, for people).
enum EndReason {
    static let killedByRequest = "killed by request"
    static let stoppedByRequest = "stopped by request"
    static let terminatedByLadder = "terminated by the escalation ladder"
    static let oomKilled = "OOM-killed at its memory limit"
    static let cgroupRemoved = "its cgroup was removed"
    static let goneWhileDown = "its cgroup disappeared while Corral was not watching"
    static let endedWhileDown = "it ended while Corral was not watching (exit status unknown)"
}

/// The table of agents the engine manages. Owned by the `Engine` actor
/// (a value inside it: only the engine's executor touches it).
///
/// Each agent sits in a box of its own, so walking the table or finding an
/// entry moves one reference instead of copying the agent: a copy of a
/// `ManagedAgent` retains each of its ~30 strings, arrays and dictionaries,
/// and walks that copied every agent (the live ids, capacity, the metrics
/// snapshot) cost a scrape of 200 agents milliseconds under emulation
/// (perf in the VM). The boxes never leave the registry, and the registry
/// is never copied (the engine holds the one instance), so the table keeps
/// value semantics for everything outside it.
struct AgentRegistry {
    private final class Box {
        var agent: ManagedAgent
        /// What it counts for in `committed` (nil: nothing, not live).
        var commitment: Commitment?
        init(_ agent: ManagedAgent) { self.agent = agent }

        /// Lends the agent to `body` in place, through an exclusive access:
        /// passed straight from the property, the compiler copied the whole
        /// value (a retain and release per field, per agent and call: the
        /// scrape's snapshot and capacity walk were a third of a scrape's
        /// CPU in `perf`). `body` must not reach the registry.
        func lend<Result>(_ body: (borrowing ManagedAgent) -> Result) -> Result {
            func pass(_ agent: inout ManagedAgent) -> Result { body(agent) }
            return pass(&agent)
        }
    }
    private var boxes: [String: Box] = [:]
    /// The last `ManagedAgent.generation` given.
    private var generations: UInt64 = 0
    /// Every agent by id, sorted, while no agent came or went since (see `forEachSorted`).
    private var sorted: [(id: String, box: Box)]?

    /// What a live agent commits of its group: its limits, and the memory it protects.
    struct Commitment: Equatable {
        var group: String
        var limits: LimitSet
        var memoryLow: Int64

        init?(_ agent: borrowing ManagedAgent) {
            guard agent.record.state.isLive else { return nil }
            group = agent.record.group
            limits = agent.record.limits
            memoryLow = agent.record.priority.memoryLow(soft: agent.record.limits[.memory]?.soft ?? 0)
        }
    }

    /// The live agents' hard and soft limits summed by group (usage not
    /// included), and the memory.low they claim: kept at every change, so that
    /// admitting a start, or setting a group's memory.low, does not walk
    /// 1,000 agents (at that many, each launch held the engine 30–130 ms under
    /// emulation doing so, and kernel events waited behind it).
    private(set) var committed: [String: CapacityReport.GroupSums] = [:]
    private(set) var memoryLows: [String: Int64] = [:]
    /// The live agents the timers have something to look at: an open ladder
    /// episode or scale-down, a termination's grace, a freeze awaiting its
    /// confirmation. Kept at every change, so a tick over 1,000 agents walks
    /// the few that misbehave (it walked and sorted all of them, 20–60 ms a
    /// tick under emulation, and kernel events waited behind it).
    private var timed: Set<String> = []

    /// How many agents the table holds (live and ended).
    var count: Int { boxes.count }

    /// The last generation given: an agent whose `generation` is at most this
    /// has not changed since it was read.
    var lastGeneration: UInt64 { generations }

    subscript(id: String) -> ManagedAgent? {
        get { boxes[id]?.agent }
        set {
            guard let newValue else {
                if let box = boxes.removeValue(forKey: id) {
                    recommit(box, to: nil)
                    sorted = nil
                }
                timed.remove(id)
                return
            }
            let box: Box
            if let existing = boxes[id] {
                existing.agent = newValue
                box = existing
            } else {
                box = Box(newValue)
                boxes[id] = box
                sorted = nil
            }
            generations += 1
            box.agent.generation = generations
            noteTimers(id, newValue)
            recommit(box, to: Commitment(newValue))
        }
    }

    /// Moves `box`'s part of `committed` and `memoryLows` to `commitment`.
    private mutating func recommit(_ box: Box, to commitment: Commitment?) {
        guard box.commitment != commitment else { return }
        if let old = box.commitment {
            committed[old.group]?.remove(limits: old.limits)
            memoryLows[old.group, default: 0] -= old.memoryLow
        }
        if let new = commitment {
            committed[new.group, default: CapacityReport.GroupSums()].add(limits: new.limits, usage: [:])
            memoryLows[new.group, default: 0] += new.memoryLow
        }
        box.commitment = commitment
    }

    /// Keeps `timed` true of `agent`.
    private mutating func noteTimers(_ id: String, _ agent: borrowing ManagedAgent) {
        if agent.needsTimers { timed.insert(id) } else { timed.remove(id) }
    }

    /// The live agents with something for the timers (see `timed`), sorted.
    var timedIDs: [String] { timed.sorted() }

    /// Changes the agent in place: its rings are not copied (a copy taken
    /// out and written back shares their storage, so the first append
    /// copies every sample). Nil when there is no such agent.
    @discardableResult
    mutating func update<Result>(_ id: String, _ body: (inout ManagedAgent) -> Result) -> Result? {
        guard let box = boxes[id] else { return nil }
        let result = body(&box.agent)
        generations += 1
        box.agent.generation = generations
        let (needsTimers, commitment) = box.lend { ($0.needsTimers, Commitment($0)) }
        if needsTimers { timed.insert(id) } else { timed.remove(id) }
        recommit(box, to: commitment)
        return result
    }

    /// Reads the agent in place (no copy, no new generation). Nil when
    /// there is no such agent. `body` must not reach the registry.
    func read<Result>(_ id: String, _ body: (borrowing ManagedAgent) -> Result) -> Result? {
        guard let box = boxes[id] else { return nil }
        return box.lend(body)
    }

    /// Every agent's id, sorted.
    var ids: [String] {
        mutating get { sortedBoxes().map(\.id) }
    }

    /// Every agent by id, sorted once until an agent comes or goes.
    private mutating func sortedBoxes() -> [(id: String, box: Box)] {
        if let sorted { return sorted }
        let made = boxes.sorted { $0.key < $1.key }.map { (id: $0.key, box: $0.value) }
        sorted = made
        return made
    }

    /// Reads every agent in place, by id: each scrape's snapshot walks them
    /// all, and sorting the ids and looking each one up by name every time
    /// showed in `perf` under emulation. `body` must not reach the registry.
    mutating func forEachSorted(_ body: (String, borrowing ManagedAgent) -> Void) {
        for (id, box) in sortedBoxes() { box.lend { body(id, $0) } }
    }

    /// The ids of the live agents, sorted. For the timers: an agent is a
    /// large value, and sorting copies of them moved megabytes a tick under
    /// emulation; ids are cheap.
    var liveIDs: [String] {
        var ids: [String] = []
        ids.reserveCapacity(boxes.count)
        for (id, box) in boxes where box.agent.record.state.isLive { ids.append(id) }
        return ids.sorted()
    }

    /// The pids of the live agents this process started (to reap).
    var launchedPIDs: [Int32] {
        var pids: [Int32] = []
        for box in boxes.values where box.agent.record.state.isLive && box.agent.record.origin == .launched {
            if let pid = box.agent.record.pid { pids.append(pid) }
        }
        return pids
    }

    /// The live agents, by id. Built without an intermediate dictionary: each
    /// agent is copied once (a copy retains every reference it holds, which
    /// under emulation made a tick over 130 agents cost milliseconds).
    var live: [(key: String, value: ManagedAgent)] {
        liveIDs.compactMap { id in boxes[id].map { (id, $0.agent) } }
    }

    /// Reads every live agent in place, in no order (no sort, no copy).
    func forEachLiveUnordered(_ body: (String, borrowing ManagedAgent) -> Void) {
        for (id, box) in boxes where box.agent.record.state.isLive { box.lend { body(id, $0) } }
    }

    /// Reads every live agent in place, by id: no copy of an agent (the host
    /// monitor's reading every second walked copies of 1,000 agents, sorted).
    func forEachLive(_ body: (String, borrowing ManagedAgent) -> Void) {
        for id in liveIDs {
            guard let box = boxes[id] else { continue }
            box.lend { body(id, $0) }
        }
    }

    /// The agent if it is running (or starting, or suspended).
    func live(_ id: String) throws(EngineError) -> ManagedAgent {
        guard let agent = boxes[id]?.agent, agent.record.state.isLive else {
            if boxes[id] != nil { throw EngineError(.conflict, "agent '\(id)' is not running") }
            throw EngineError(.notFound, "no running agent '\(id)'")
        }
        return agent
    }

    /// The ids in the table after `after` (all when nil), in no order: no agent is copied.
    func ids(after: String?, includeEnded: Bool) -> [String] {
        boxes.compactMap { id, box in
            guard after.map({ id > $0 }) ?? true, includeEnded || box.agent.record.state.isLive else { return nil }
            return id
        }
    }

    /// Whether `id` is in the table.
    func contains(_ id: String) -> Bool { boxes[id] != nil }

    /// The agent's record alone (the rest of the agent is not copied).
    func record(of id: String) -> AgentRecord? { boxes[id]?.agent.record }

    /// Every agent: the stored ones, with the live state of those managed now.
    func list(stored: [AgentRecord], includeEnded: Bool) -> [AgentRecord] {
        var records = Dictionary(stored.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        for (id, box) in boxes { records[id] = box.agent.record }
        return records.values.filter { includeEnded || $0.state.isLive }.sorted { $0.id < $1.id }
    }
}
