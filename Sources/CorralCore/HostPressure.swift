/// When the host as a whole (Corral's root: all agents together) is short of
/// memory, and how the host ladder answers (`host_pressure:` in the
/// configuration).
///
/// systemd-oomd kills the cgroup with the most pressure once PSI memory
/// `full` has stayed above 60% for 20 s (Debian 12's defaults). Corral acts earlier and
/// reversibly: when the root's working set reaches `memoryHigh` of the
/// allocatable while it still rises (or while PSI memory `full` avg10 is at
/// least `memoryPressure`), or reaches `memoryCritical` at all, it steps
/// through the lowest-priority agents — degrade (agents that follow their
/// stream), throttle, freeze, and only when `terminate` is set, kill — one
/// step per `stepInterval`, re-checking in between. Pressure alone (without
/// the root near its allocatable) is not a host episode: agents stalled by
/// their own memory.high are the per-agent ladder's business, and `full`
/// (every task stalled) rather than `some` keeps the stalls of an agent the
/// ladder throttled from counting as more pressure.
///
/// Recovery starts once the root has stayed below `memoryCritical`, not rising
/// and without pressure, for `quietPeriod` (frozen agents keep their memory,
/// so "calm" cannot mean "low"): the agent touched last is thawed and
/// restored first, and the ones before it in the same step while their room
/// to grow (memory hard limit − usage) fits under `memoryCritical` with the
/// room of those thawed before.
public struct HostPressurePolicy: Equatable, Codable, Sendable {
    public var enabled: Bool
    /// Share of the allocatable in use (root memory.current) at which an episode starts while usage rises.
    public var memoryHigh: Double
    /// Share at which the ladder steps whether usage rises or not.
    public var memoryCritical: Double
    /// PSI memory `full` avg10, in percent, that counts as pressure above `memoryHigh`.
    public var memoryPressure: Double
    /// PSI cpu / io `some` avg10 in percent that start an episode on their own (nil: off;
    /// CPU is shared by cpu.weight under contention, which needs no freezing).
    public var cpuPressure: Double?
    public var ioPressure: Double?
    /// Time between two escalation steps (each re-checks first).
    public var stepInterval: Duration
    /// How long the host must stay calm before recovery starts.
    public var quietPeriod: Duration
    /// Time between two recovery steps (one agent is thawed and restored per step).
    public var recoveryInterval: Duration
    /// Agents with a priority above this are never touched.
    public var protectAbove: Priority
    /// Whether the last step (when every candidate is frozen and the host is still short) kills.
    public var terminate: Bool

    public init(
        enabled: Bool = true, memoryHigh: Double = 0.85, memoryCritical: Double = 0.95, memoryPressure: Double = 10,
        cpuPressure: Double? = nil, ioPressure: Double? = nil, stepInterval: Duration = .seconds(1),
        quietPeriod: Duration = .seconds(10), recoveryInterval: Duration = .seconds(5), protectAbove: Priority = Priority(rawValue: 7)!,
        terminate: Bool = false
    ) {
        self.enabled = enabled
        self.memoryHigh = memoryHigh
        self.memoryCritical = memoryCritical
        self.memoryPressure = memoryPressure
        self.cpuPressure = cpuPressure
        self.ioPressure = ioPressure
        self.stepInterval = stepInterval
        self.quietPeriod = quietPeriod
        self.recoveryInterval = recoveryInterval
        self.protectAbove = protectAbove
        self.terminate = terminate
    }

    public static let standard = HostPressurePolicy()

    /// Problems with the thresholds' order, for the configuration reader.
    public var problems: [String] {
        var found: [String] = []
        if memoryHigh > memoryCritical { found.append("memory_high ≤ memory_critical must hold") }
        return found
    }
}

/// One reading of Corral's root: memory in use against the allocatable, and PSI.
public struct HostReading: Equatable, Codable, Sendable {
    public var at: Timestamp
    public var memoryUsed: Double
    public var memoryAllocatable: Double
    public var memory: Pressure?
    public var cpu: Pressure?
    public var io: Pressure?

    public init(at: Timestamp, memoryUsed: Double, memoryAllocatable: Double, memory: Pressure?, cpu: Pressure?, io: Pressure?) {
        self.at = at
        self.memoryUsed = memoryUsed
        self.memoryAllocatable = memoryAllocatable
        self.memory = memory
        self.cpu = cpu
        self.io = io
    }

    /// memory.current / allocatable (0 when the allocatable is unknown).
    public var memoryShare: Double { memoryAllocatable > 0 ? memoryUsed / memoryAllocatable : 0 }
}

/// An agent the host ladder may act on.
public struct HostCandidate: Equatable, Sendable {
    public var agent: String
    public var priority: Priority
    /// Its memory in use (bytes).
    public var memory: Double
    /// Whether it follows its event stream (a degradation plan reaches it).
    public var listens: Bool
    /// Frozen by someone else (the agent's own ladder, an operator): not a target.
    public var frozenElsewhere: Bool
    /// Its memory hard limit (nil: none): hard − memory is the room it may still take when thawed.
    public var memoryLimit: Double?

    public init(
        agent: String, priority: Priority, memory: Double, listens: Bool, frozenElsewhere: Bool = false, memoryLimit: Double? = nil
    ) {
        self.memoryLimit = memoryLimit
        self.agent = agent
        self.priority = priority
        self.memory = memory
        self.listens = listens
        self.frozenElsewhere = frozenElsewhere
    }
}

/// How far the host ladder has gone with one agent.
public enum HostStage: String, Codable, Sendable, Comparable, CaseIterable, CaseHashable {
    case degraded
    case throttled
    case frozen
    case terminated

    public static func < (lhs: HostStage, rhs: HostStage) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The action recorded for the step.
    public var action: EnforcementAction {
        switch self {
        case .degraded: .warn
        case .throttled: .throttle
        case .frozen: .suspend
        case .terminated: .terminate
        }
    }
}

/// What the host ladder asks the engine to do.
public enum HostCommand: Equatable, Sendable {
    /// An episode began: why, in words.
    case started(reason: String)
    /// Take `stage` on `agent`.
    case step(agent: String, stage: HostStage)
    /// Undo `stages` of `agent` (latest first: thaw, restore limits, end degradation).
    case undo(agent: String, stages: [HostStage])
    /// Every candidate is as far as the policy allows and the host is still short (said once per episode).
    case exhausted
    /// Recovery is complete: nothing of the episode is left in force.
    case ended
}

/// What `corral capacity` shows of the host ladder.
public struct HostPressureStatus: Equatable, Codable, Sendable {
    public var enabled: Bool
    public var phase: HostPressureLadder.Phase
    public var since: Timestamp?
    /// The latest reading of the root (nil: none yet).
    public var reading: HostReading?
    /// Steps in force, in the order taken.
    public var steps: [HostPressureLadder.Step]

    public init(enabled: Bool, phase: HostPressureLadder.Phase, since: Timestamp?, reading: HostReading?, steps: [HostPressureLadder.Step])
    {
        self.enabled = enabled
        self.phase = phase
        self.since = since
        self.reading = reading
        self.steps = steps
    }
}

/// The host ladder: a state machine over `HostReading`s, with time from the
/// readings. Owner: the engine (one per daemon).
public struct HostPressureLadder: Equatable, Codable, Sendable {
    public enum Phase: String, Codable, Sendable {
        /// No episode.
        case calm
        /// Short of memory: a step per interval.
        case escalating
        /// Steps in force, no longer short, not yet calm.
        case holding
        /// Calm for the quiet period: undoing, one agent per interval.
        case recovering
    }

    public struct Step: Equatable, Codable, Sendable {
        public var agent: String
        public var stage: HostStage
        public var at: Timestamp

        public init(agent: String, stage: HostStage, at: Timestamp) {
            self.agent = agent
            self.stage = stage
            self.at = at
        }
    }

    public private(set) var phase: Phase = .calm
    /// Steps in force, in the order taken.
    public private(set) var steps: [Step] = []
    public private(set) var episodeStartedAt: Timestamp?
    public private(set) var last: HostReading?
    private var lastActionAt: Timestamp?
    private var calmSince: Timestamp?
    private var exhaustedSaid = false
    /// Growth is measured over at least `growthWindow`: from this reading.
    private var baseline: HostReading?
    private var rising = false
    /// Agents thawed in this recovery: their room to grow stays reserved.
    private var thawed: Set<String> = []
    static let growthWindow: Duration = .milliseconds(500)
    /// Growth that counts as rising: 0.5% of the allocatable per second.
    static let risingRate = 0.005

    public init() {}

    /// A ladder with `steps` in force (a restarted daemon's, from its agents'
    /// ladders): it holds them until the host is calm, then recovers as usual.
    public init(restoring steps: [Step]) {
        self.steps = steps.sorted { $0.at < $1.at }
        phase = self.steps.isEmpty ? .calm : .holding
        episodeStartedAt = self.steps.first?.at
    }

    /// A step the engine could not carry out (a write failed, a freeze was not
    /// confirmed): it is not in force, and the agent stays a candidate for it.
    public mutating func failed(agent: String, stage: HostStage) {
        if let index = steps.lastIndex(where: { $0.agent == agent && $0.stage == stage }) { steps.remove(at: index) }
    }

    /// The furthest stage taken on `agent` and still in force.
    public func stage(of agent: String) -> HostStage? {
        steps.filter { $0.agent == agent }.map(\.stage).max()
    }

    /// The agent is gone: its steps are no longer in force.
    public mutating func forget(_ agent: String) {
        steps.removeAll { $0.agent == agent }
    }

    /// Why the host counts as short now (nil: it does not).
    static func shortage(_ reading: HostReading, rising: Bool, policy: HostPressurePolicy) -> String? {
        // `rising` is false while recovering: thawed agents grow within the room checked for them.
        let share = reading.memoryShare
        let percent = Int((share * 100).rounded())
        let memoryPSI = reading.memory?.full?.avg10 ?? 0
        if share >= policy.memoryCritical { return "memory \(percent)% of the allocatable (critical \(Int(policy.memoryCritical * 100))%)" }
        if share >= policy.memoryHigh {
            if rising { return "memory \(percent)% of the allocatable and rising (high \(Int(policy.memoryHigh * 100))%)" }
            if memoryPSI >= policy.memoryPressure {
                return "memory \(percent)% of the allocatable, PSI memory full \(memoryPSI)% (≥ \(policy.memoryPressure)%)"
            }
        }
        if let limit = policy.cpuPressure, let cpu = reading.cpu?.some.avg10, cpu >= limit {
            return "PSI cpu some \(cpu)% (≥ \(limit)%)"
        }
        if let limit = policy.ioPressure, let io = reading.io?.some.avg10, io >= limit {
            return "PSI io some \(io)% (≥ \(limit)%)"
        }
        return nil
    }

    static func isCalm(_ reading: HostReading, rising: Bool, policy: HostPressurePolicy) -> Bool {
        // Below critical, not high: frozen agents keep their memory; the room check decides who is thawed.
        guard reading.memoryShare < policy.memoryCritical, !rising, (reading.memory?.full?.avg10 ?? 0) < policy.memoryPressure / 2 else {
            return false
        }
        if let limit = policy.cpuPressure, (reading.cpu?.some.avg10 ?? 0) >= limit / 2 { return false }
        if let limit = policy.ioPressure, (reading.io?.some.avg10 ?? 0) >= limit / 2 { return false }
        return true
    }

    /// Takes a reading; returns what to do, in order.
    public mutating func observe(_ reading: HostReading, candidates: [HostCandidate], policy: HostPressurePolicy) -> [HostCommand] {
        defer { last = reading }
        guard policy.enabled else {
            // Turned off (a reload) in the middle of an episode: nothing stays in force.
            guard !steps.isEmpty || phase != .calm else { return [] }
            var order: [String] = []
            for step in steps.reversed() where !order.contains(step.agent) { order.append(step.agent) }
            let commands = order.compactMap { agent -> HostCommand? in
                let stages = steps.filter { $0.agent == agent }.map(\.stage).sorted().reversed().filter { $0 != .terminated }
                return stages.isEmpty ? nil : .undo(agent: agent, stages: Array(stages))
            }
            self = HostPressureLadder()
            return commands + [.ended]
        }
        let now = reading.at
        // Steps of agents that are gone are no longer in force.
        let present = Set(candidates.map(\.agent))
        steps.removeAll { !present.contains($0.agent) }
        var commands: [HostCommand] = []
        if let baseline {
            let elapsed = now - baseline.at
            if elapsed >= Self.growthWindow {
                let perSecond = (reading.memoryUsed - baseline.memoryUsed) / (Double(elapsed.milliseconds) / 1000)
                rising = perSecond > Self.risingRate * reading.memoryAllocatable
                self.baseline = reading
            }
        } else {
            baseline = reading
        }
        // While recovering, the thawed agents' room to grow was checked against the
        // critical watermark: only that (or real stalls) brings the ladder back.
        if let reason = Self.shortage(reading, rising: rising && phase != .recovering, policy: policy) {
            calmSince = nil
            if phase == .calm {
                episodeStartedAt = now
                exhaustedSaid = false
                commands.append(.started(reason: reason))
            }
            phase = .escalating
            thawed = []
            if lastActionAt.map({ now - $0 >= policy.stepInterval }) ?? true {
                if let step = nextStep(candidates, policy: policy) {
                    steps.append(Step(agent: step.agent, stage: step.stage, at: now))
                    lastActionAt = now
                    commands.append(.step(agent: step.agent, stage: step.stage))
                } else if !exhaustedSaid {
                    exhaustedSaid = true
                    commands.append(.exhausted)
                }
            }
            return commands
        }
        guard phase != .calm else { return [] }
        if phase != .recovering {
            guard Self.isCalm(reading, rising: rising, policy: policy) else {
                calmSince = nil
                phase = .holding
                return []
            }
            let since = calmSince ?? now
            calmSince = since
            guard now - since >= policy.quietPeriod else {
                if phase == .escalating { phase = .holding }
                return []
            }
            phase = .recovering
        }
        if !steps.isEmpty, lastActionAt.map({ now - $0 >= policy.recoveryInterval }) ?? true {
            // Latest first, all of an agent's stages at once, each agent only while its room
            // to grow (hard limit − usage) fits under the critical watermark together with the
            // room of those thawed before it: thawing can then never run the root out.
            func room(_ agent: String) -> Double? {
                candidates.first { $0.agent == agent }.flatMap { candidate in candidate.memoryLimit.map { max(0, $0 - candidate.memory) } }
            }
            let reserved = thawed.compactMap(room).reduce(0, +)
            var budget = policy.memoryCritical * reading.memoryAllocatable - reading.memoryUsed - reserved
            var order: [String] = []
            for step in steps.reversed() where !order.contains(step.agent) { order.append(step.agent) }
            var undone = false
            for agent in order {
                // Without a memory limit its room is unknown: alone, and only below the high watermark.
                let needs = room(agent) ?? (!undone && reading.memoryShare < policy.memoryHigh ? 0 : .infinity)
                guard needs <= budget else { continue }
                budget -= needs
                undone = true
                thawed.insert(agent)
                let stages = steps.filter { $0.agent == agent }.map(\.stage).sorted().reversed().filter { $0 != .terminated }
                steps.removeAll { $0.agent == agent }
                if !stages.isEmpty { commands.append(.undo(agent: agent, stages: Array(stages))) }
            }
            if undone { lastActionAt = now }
        }
        if steps.isEmpty {
            phase = .calm
            episodeStartedAt = nil
            calmSince = nil
            lastActionAt = nil
            thawed = []
            commands.append(.ended)
        }
        return commands
    }

    /// The lowest-priority candidate not yet frozen (the one using most memory
    /// among equals) and its next stage; when all are frozen, the lowest to
    /// terminate if the policy allows.
    func nextStep(_ candidates: [HostCandidate], policy: HostPressurePolicy) -> (agent: String, stage: HostStage)? {
        let eligible = candidates.filter { $0.priority <= policy.protectAbove && !$0.frozenElsewhere }
            .sorted { ($0.priority, -$0.memory, $0.agent) < ($1.priority, -$1.memory, $1.agent) }
        for candidate in eligible {
            switch stage(of: candidate.agent) {
            case nil: return (candidate.agent, candidate.listens ? .degraded : .throttled)
            case .degraded: return (candidate.agent, .throttled)
            case .throttled: return (candidate.agent, .frozen)
            case .frozen, .terminated: continue
            }
        }
        guard policy.terminate else { return nil }
        return eligible.first { stage(of: $0.agent) == .frozen }.map { ($0.agent, .terminated) }
    }
}
