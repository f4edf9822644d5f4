import CorralAPI
import CorralCgroup
public import CorralCore

/// A start held back by `admission: queue` until its group's totals and the
/// allocatable have room for its hard limits.
struct QueuedStart {
    enum Request {
        case launch(LaunchRequest)
        case register(overrides: [Resource: LimitOverride], user: String?, seccomp: String?, priority: Int?)
    }

    var record: AgentRecord
    var request: Request
    /// Why it waits (the latest check).
    var shortfalls: [Shortfall]
}

/// Capacity and admission: what is left per resource (allocatable − used), and
/// what happens to an agent that would overcommit (`admission:`).
extension Engine {
    enum Admission {
        case admit
        case queue([Shortfall])
    }

    /// What the root may hand out: its own memory.max, cpu.max and pids.max
    /// where it has them (the system reservation, a container's or a unit's
    /// limits), else the host's (the hierarchy root has no limit files).
    func allocatable() -> [Resource: Double] {
        if let cached = allocatableCache, ContinuousClock.now - cached.at < .seconds(1) { return cached.amounts }
        let amounts = readAllocatable()
        allocatableCache = (ContinuousClock.now, amounts)
        return amounts
    }

    /// The host's amounts within the root's own limits, read now.
    func readAllocatable() -> [Resource: Double] {
        var amounts: [Resource: Double] = [
            .memory: Double(host.memoryBytes), .cpu: Double(host.cpus) * 100, .processes: Double(host.pidMax),
        ]
        let limits: CgroupSettings
        do throws(CgroupError) {
            limits = try tree.rootLimits()
            rootLimitsUnreadable = false
        } catch {
            // The host's totals stand in: said once, not at every admission.
            if !rootLimitsUnreadable {
                events.publish(.daemon, agent: nil, EventText.rootLimitsUnreadable(error))
                rootLimitsUnreadable = true
            }
            return amounts
        }
        if let memory = limits.memoryMax?.value { amounts[.memory] = Double(memory) }
        if let percent = limits.cpuMax?.percent { amounts[.cpu] = percent }
        if let pids = limits.pidsMax?.value { amounts[.processes] = Double(pids) }
        return amounts
    }

    /// Per resource: host, reserved, allocatable, committed (hard and soft limits
    /// of live agents, per group and overall), in use (latest samples) and available.
    public func capacity() -> CapacityReport {
        let started = ContinuousClock.now
        defer { noteHold("the capacity's walk", since: started) }
        // Usage changes with every sample: summed now, in place (no copy of an agent, no sort).
        var used = UsedByGroup()
        registry.forEachLiveUnordered { _, agent in used.add(agent) }
        return capacity(used: used)
    }

    /// The live agents' usage summed by group. The groups are few: found by a
    /// comparison of names in a short list (the last one first), not by hashing
    /// each agent's group, and each agent's usage is walked rather than looked
    /// up per resource (callgrind of a scrape in the VM: hashing was an eighth
    /// of the daemon's instructions). The metrics' snapshot sums it in its own walk.
    struct UsedByGroup {
        var groups: [String] = []
        /// Per group, per `CapacityReport.resources` entry (nil: no agent of it uses that resource).
        var totals: [[Double?]] = []
        private var last = 0

        mutating func add(_ agent: borrowing ManagedAgent) {
            guard !agent.usage.isEmpty else { return }
            let group = agent.record.group
            if last >= groups.count || groups[last] != group {
                if let known = groups.firstIndex(of: group) {
                    last = known
                } else {
                    groups.append(group)
                    totals.append(Array(repeating: nil, count: CapacityReport.resources.count))
                    last = groups.count - 1
                }
            }
            for (resource, amount) in agent.usage {
                guard let index = Self.index(of: resource) else { continue }
                totals[last][index] = (totals[last][index] ?? 0) + amount
            }
        }

        /// `resource`'s place in `CapacityReport.resources`.
        static func index(of resource: Resource) -> Int? {
            switch resource {
            case .memory: 0
            case .cpu: 1
            case .processes: 2
            default: nil
            }
        }
    }

    /// `capacity()` with the usage summed already.
    func capacity(used: UsedByGroup) -> CapacityReport {
        var sums = committedSums()
        let resources = CapacityReport.resources
        for (group, totals) in zip(used.groups, used.totals) {
            for index in resources.indices {
                if let total = totals[index] { sums[group, default: .init()].used[resources[index], default: 0] += total }
            }
        }
        var report = CapacityReport.compute(
            host: host, allocatable: allocatable(), groups: Array(configuration.groups.values), sums: sums,
            admission: configuration.admission)
        report.hostPressure = HostPressureStatus(
            enabled: configuration.hostPressure.enabled, phase: hostLadder.phase, since: hostLadder.episodeStartedAt,
            reading: hostLadder.last, steps: hostLadder.steps)
        return report
    }

    /// The live agents' limits summed by group (the registry keeps them), with the agents starting now.
    func committedSums() -> [String: CapacityReport.GroupSums] {
        var sums = registry.committed
        for starting in launching.values { sums[starting.group, default: .init()].add(limits: starting.limits, usage: [:]) }
        return sums
    }

    /// Checks a new agent's hard limits against its group's totals and the
    /// allocatable: `refuse` throws (409) naming each shortfall; `allow` says it
    /// on the event stream and admits; `queue` says to hold it.
    func admission(_ limits: LimitSet, into group: String, id: String) throws(EngineError) -> Admission {
        // Only the committed limits matter here: the registry's running sums, no walk.
        let committed = CapacityReport.compute(
            host: host, allocatable: allocatable(), groups: Array(configuration.groups.values), sums: committedSums(),
            admission: configuration.admission)
        let shortfalls = committed.shortfalls(admitting: limits, into: group)
        guard !shortfalls.isEmpty else { return .admit }
        let text = shortfalls.map(\.description).joined(separator: "; ")
        switch configuration.admission {
        case .refuse:
            throw EngineError(.conflict, EventText.notAdmitted(id, text))
        case .allow:
            events.publish(.daemon, agent: id, EventText.admittedOverCapacity(id, text))
            return .admit
        case .queue:
            return .queue(shortfalls)
        }
    }

    /// Holds a start; returns its record (state `queued`, with its position).
    func enqueue(_ record: AgentRecord, _ request: QueuedStart.Request, shortfalls: [Shortfall]) -> AgentRecord {
        admissionQueue.append(QueuedStart(record: record, request: request, shortfalls: shortfalls))
        // Highest priority first; among equals, first come first served (a stable sort).
        let ordered = admissionQueue.enumerated().sorted { lhs, rhs in
            lhs.element.record.priority != rhs.element.record.priority
                ? lhs.element.record.priority > rhs.element.record.priority : lhs.offset < rhs.offset
        }
        admissionQueue = ordered.map(\.element)
        let queued = queuedRecord(record.id) ?? record
        events.publish(.agentQueued, agent: record.id, EventText.queued(record.id, position: queued.queuePosition ?? 0, shortfalls))
        return queued
    }

    /// The queued agents' records with their positions, next first.
    func queuedRecords() -> [AgentRecord] {
        admissionQueue.enumerated().map { index, queued in
            var record = queued.record
            record.queuePosition = index + 1
            return record
        }
    }

    func queuedRecord(_ id: String) -> AgentRecord? { queuedRecords().first { $0.id == id } }

    /// Refuses an operation on a queued agent, naming what can be done.
    func ensureNotQueued(_ id: String) throws(EngineError) {
        if let record = queuedRecord(id) {
            throw EngineError(
                .conflict,
                "agent '\(id)' is queued (position \(record.queuePosition ?? 0)) and has no cgroup yet: remove it (corral agents remove \(id)) or wait"
            )
        }
    }

    /// Starts queued agents while the one next in line fits (strict order: a large,
    /// high-priority agent is not overtaken by smaller ones behind it).
    func admitQueued() {
        while let next = admissionQueue.first {
            let shortfalls = capacity().shortfalls(admitting: next.record.limits, into: next.record.group)
            guard shortfalls.isEmpty else {
                admissionQueue[0].shortfalls = shortfalls
                return
            }
            admissionQueue.removeFirst()
            let id = next.record.id
            do {
                switch next.request {
                case .launch(let request):
                    _ = try launch(request, admitted: true)
                case .register(let overrides, let user, let seccomp, let priority):
                    let record = try registerInTable(
                        id: id, group: next.record.group, command: next.record.command, overrides: overrides, user: user, seccomp: seccomp,
                        priority: priority, admitted: true)
                    writer.saveStarted(record, what: "the registration")
                }
            } catch {
                var record = next.record
                record.state = .lost
                record.endedAt = clock()
                record.endReason = EventText.notStartedOnceAdmitted(error)
                writer.save(record, what: "the failed start")
                events.publish(.agentExited, agent: id, "\(id) \(EventText.notStartedOnceAdmitted(error))")
            }
        }
    }
}
