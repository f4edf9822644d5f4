/// The life of an agent as Corral tracks it.
public enum AgentState: String, Codable, Sendable, CaseIterable, CaseHashable {
    /// Waiting for capacity (`admission: queue`): no cgroup and no process yet.
    case queued
    /// Cgroup created, process not yet in it.
    case starting
    case running
    /// Frozen (cgroup.freeze) by the ladder or an operator.
    case suspended
    /// Its processes have ended; the exit status is known when Corral was their parent.
    case exited
    /// Ended by Corral (terminate or kill).
    case terminated
    /// Gone while nobody watched (the daemon was down) or its cgroup vanished.
    case lost

    public var isLive: Bool { self == .starting || self == .running || self == .suspended }
}

/// How an agent came under Corral.
public enum AgentOrigin: String, Codable, Sendable, CaseHashable {
    /// Started by the daemon (`POST /v1/agents`, `corral agents start`).
    case launched
    /// Started by `corral run`, registered with the daemon.
    case registered
    /// An existing process moved into a leaf (`adopt`).
    case adopted
    /// Found in the cgroup tree at start-up without a record (re-attached).
    case discovered
}

/// An agent as stored and served by the API.
public struct AgentRecord: Equatable, Codable, Sendable {
    public var id: String
    public var group: String
    public var state: AgentState
    public var origin: AgentOrigin
    /// The main process (nil for adopted trees until known).
    public var pid: Int32?
    public var command: [String]
    /// Limits in force (group defaults + configuration + overrides).
    public var limits: LimitSet
    /// Overrides set for this agent through the API or flags.
    public var overrides: [Resource: LimitOverride]
    /// Absolute path of the agent's cgroup.
    public var cgroup: String
    public var createdAt: Timestamp
    public var endedAt: Timestamp?
    public var exitStatus: Int32?
    /// Why it ended, for people ("OOM-killed", "terminated: memory hard limit", …).
    public var endReason: String?
    /// The isolation it runs under (nil: unknown, an agent from before policies or adopted).
    public var security: SecurityPolicy?
    /// Its priority in force: its own (configuration, flag or API) or its group's.
    public var priority: Priority
    /// Whether `priority` is the agent's own; if not, it follows its group's.
    public var priorityIsOwn: Bool
    /// Its place in the admission queue (1: next), while `queued`.
    public var queuePosition: Int?

    public init(
        id: String, group: String, state: AgentState, origin: AgentOrigin, pid: Int32?, command: [String], limits: LimitSet,
        overrides: [Resource: LimitOverride] = [:], cgroup: String, createdAt: Timestamp, endedAt: Timestamp? = nil,
        exitStatus: Int32? = nil, endReason: String? = nil, security: SecurityPolicy? = nil, priority: Priority = .standard,
        priorityIsOwn: Bool = false
    ) {
        self.security = security
        self.priority = priority
        self.priorityIsOwn = priorityIsOwn
        self.id = id
        self.group = group
        self.state = state
        self.origin = origin
        self.pid = pid
        self.command = command
        self.limits = limits
        self.overrides = overrides
        self.cgroup = cgroup
        self.createdAt = createdAt
        self.endedAt = endedAt
        self.exitStatus = exitStatus
        self.endReason = endReason
    }

    enum CodingKeys: String, CodingKey {
        case id, group, state, origin, pid, command, limits, overrides, cgroup, createdAt, endedAt, exitStatus, endReason, security
        case priority, priorityIsOwn, queuePosition
    }

    /// Records from before priorities decode with the default priority, the group's.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(String.self, forKey: .id), group: try container.decode(String.self, forKey: .group),
            state: try container.decode(AgentState.self, forKey: .state), origin: try container.decode(AgentOrigin.self, forKey: .origin),
            pid: try container.decodeIfPresent(Int32.self, forKey: .pid), command: try container.decode([String].self, forKey: .command),
            limits: try container.decode(LimitSet.self, forKey: .limits),
            overrides: try container.decodeIfPresent([Resource: LimitOverride].self, forKey: .overrides) ?? [:],
            cgroup: try container.decode(String.self, forKey: .cgroup), createdAt: try container.decode(Timestamp.self, forKey: .createdAt),
            endedAt: try container.decodeIfPresent(Timestamp.self, forKey: .endedAt),
            exitStatus: try container.decodeIfPresent(Int32.self, forKey: .exitStatus),
            endReason: try container.decodeIfPresent(String.self, forKey: .endReason),
            security: try container.decodeIfPresent(SecurityPolicy.self, forKey: .security),
            priority: try container.decodeIfPresent(Priority.self, forKey: .priority) ?? .standard,
            priorityIsOwn: try container.decodeIfPresent(Bool.self, forKey: .priorityIsOwn) ?? false)
        queuePosition = try container.decodeIfPresent(Int.self, forKey: .queuePosition)
    }
}

extension UsageReading {
    /// Readings of memory, cpu and processes from two consecutive samples of
    /// an agent's cgroup, `elapsed` apart. Counter increases between them are
    /// the kernel's own signals (memory.events high/max/oom/oom_kill,
    /// pids.events max, cpu.stat nr_throttled). CPU use is the usage_usec
    /// delta over wall time and needs a previous sample at least
    /// `minimumCPUWindow` old; without one there is no cpu reading. Without a
    /// previous sample no counter counts as a new signal: a re-attached
    /// agent's old events are history, not news.
    public static func readings(
        previous: CgroupSample?, current: CgroupSample, elapsed: Duration,
        minimumCPUWindow: Duration = .milliseconds(200)
    ) -> [UsageReading] {
        var readings: [UsageReading] = []
        let events = current.memoryEvents
        let before = previous?.memoryEvents ?? MemoryEvents()
        if let memory = current.memoryCurrent {
            readings.append(
                UsageReading(
                    resource: .memory, usage: Double(memory),
                    hitHard: previous != nil && (events.max > before.max || events.oom > before.oom || events.oomKill > before.oomKill),
                    hitSoft: previous != nil && events.high > before.high))
        }
        if let previous, elapsed >= minimumCPUWindow {
            let throttledMore = (current.cpu.nrThrottled ?? 0) > (previous.cpu.nrThrottled ?? 0)
            readings.append(
                UsageReading(
                    resource: .cpu, usage: CPUStat.usagePercent(from: previous.cpu, to: current.cpu, elapsed: elapsed),
                    hitHard: throttledMore))
        }
        if let pids = current.pidsCurrent {
            readings.append(
                UsageReading(
                    resource: .processes, usage: Double(pids),
                    hitHard: previous.map { current.pidsEvents.max > $0.pidsEvents.max } ?? false))
        }
        return readings
    }
}
