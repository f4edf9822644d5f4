public import CorralCore
public import CorralWatcher

/// What the engine tells whoever measures it (the daemon's Prometheus
/// metrics) as it happens. Called on the engine's executor and on the
/// committer's thread: implementations must be thread-safe and cheap (an
/// atomic add, a histogram observation), and never call back into the engine.
public protocol EngineInstruments: Sendable {
    /// An enforcement record was stored (and published): an action and its real outcome.
    func recorded(_ record: EnforcementRecord)
    /// A kernel event (a `*.events` change or a PSI trigger) led to actions:
    /// the time from the watcher waking for it to the actions carried out and
    /// queued for the store; `trigger` names the file that woke it
    /// (`ReactionTrigger.label`). `crossing`: the event showed a new violation
    /// (no episode of that resource was open); otherwise it carried a ladder
    /// step its delay had made due (its confirmation, for an agent whose events
    /// keep coming), which says how far behind the engine is rather than how
    /// fast it reacts.
    func reacted(_ timing: ReactionTiming, to trigger: String, crossing: Bool)
    /// One group commit of the store took `duration`.
    func committed(in duration: Duration)
    /// One job held the engine's actor longer than `Engine.longHold` (what
    /// every observation behind it waited): `what` names it.
    func heldEngine(_ what: String, for duration: Duration)
}

extension EngineInstruments {
    public func heldEngine(_ what: String, for duration: Duration) {}
}

extension Engine {
    /// A job on the engine longer than this is told to the instruments.
    static let longHold = Duration.milliseconds(20)

    /// Tells the instruments that the job `what`, begun at `started`, held the engine long.
    func noteHold(_ what: @autoclosure () -> String, since started: ContinuousClock.Instant) {
        guard let instruments else { return }
        let held = started.duration(to: .now)
        if held > Self.longHold { instruments.heldEngine(what(), for: held) }
    }
}

/// One agent as the metrics show it: taken from the engine's table at
/// scrape time (the latest sample the watcher read; no cgroupfs reads).
public struct AgentMetrics: Equatable, Sendable {
    public var id: String
    public var group: String
    public var state: AgentState
    public var priority: Priority
    public var limits: LimitSet
    /// The latest reading of the agent's cgroup (nil: none yet, or queued).
    public var sample: CgroupSample? {
        get { sampleBox?.sample }
        set { sampleBox = newValue.map(SampleBox.init) }
    }
    /// `sample`, held by reference: a `CgroupSample` is most of the value's
    /// size, and a snapshot moves one of these per agent and scrape (callgrind
    /// of a scrape: five copies of the whole value per agent, most of them for
    /// `unchanged` agents, which have no sample).
    private var sampleBox: SampleBox?

    final class SampleBox: Sendable, Equatable {
        let sample: CgroupSample
        init(_ sample: CgroupSample) { self.sample = sample }
        static func == (lhs: SampleBox, rhs: SampleBox) -> Bool { lhs.sample == rhs.sample }
    }
    /// Usage as the ladder sees it (memory bytes, CPU percent of one core over the last window, processes).
    public var usage: [Resource: Double]
    /// Its place in the admission queue (queued agents).
    public var queuePosition: Int?
    /// The highest degradation level over its resources.
    public var degradation: DegradationLevel
    /// The highest step its open episodes took on the ladder: 0 none, then
    /// 1 + the action's severity (warn 1, throttle 2, scale_down/custom 3, suspend/migrate 4, terminate 5).
    public var escalationStep: Int
    /// Changes whenever anything of the agent changes in the engine's table,
    /// unique over all agents: equal to what a scrape drew last, the agent's
    /// lines are as they were. Nil: not in the table (a queued agent), or not known.
    public var generation: UInt64?
    /// Only `id`, `group`, `state` and `generation` are filled: the agent has
    /// not changed since the snapshot the asker drew last (`Engine.metrics(drawnThrough:)`).
    public var unchanged = false

    public init(
        id: String, group: String, state: AgentState, priority: Priority, limits: LimitSet, sample: CgroupSample?,
        usage: [Resource: Double] = [:], queuePosition: Int? = nil, degradation: DegradationLevel, escalationStep: Int,
        generation: UInt64? = nil
    ) {
        self.id = id
        self.group = group
        self.state = state
        self.priority = priority
        self.limits = limits
        sampleBox = sample.map(SampleBox.init)
        self.usage = usage
        self.queuePosition = queuePosition
        self.degradation = degradation
        self.escalationStep = escalationStep
        self.generation = generation
    }
}

extension AgentMetrics {
    /// An agent that has not changed since the asker's last snapshot: what
    /// that snapshot showed of it still holds.
    public static func unchanged(id: String, group: String, state: AgentState, generation: UInt64) -> Self {
        var metrics = Self(
            id: id, group: group, state: state, priority: .standard, limits: LimitSet(), sample: nil, degradation: .none, escalationStep: 0,
            generation: generation)
        metrics.unchanged = true
        return metrics
    }
}

/// The engine's state for one scrape.
public struct MetricsSnapshot: Equatable, Sendable {
    /// Live and queued agents, and those that ended within the retention
    /// (so that a scrape sees an OOM-killed agent's last counters), by id.
    public var agents: [AgentMetrics]
    /// Agents in the engine's table (live, queued, ended and not yet
    /// removed since the daemon started), by state.
    public var states: [AgentState: Int]
    /// Live agents by how often the watcher samples them (all active when
    /// adaptive sampling is off).
    public var sampling: [SamplingCadence: Int]
    public var capacity: CapacityReport
    /// The registry's last generation when the snapshot was taken: passed as
    /// `drawnThrough` to the next one, agents not changed since come as `unchanged`.
    public var generationMark: UInt64?

    public init(
        agents: [AgentMetrics], states: [AgentState: Int], sampling: [SamplingCadence: Int] = [:], capacity: CapacityReport,
        generationMark: UInt64? = nil
    ) {
        self.agents = agents
        self.states = states
        self.sampling = sampling
        self.capacity = capacity
        self.generationMark = generationMark
    }
}

extension Engine {
    /// How long an ended agent's series stay in the metrics.
    public static let endedRetention: Duration = .seconds(300)

    /// The metrics' view of the engine, from what it holds (no I/O).
    /// `drawnThrough`: the `generationMark` of the asker's last snapshot, all
    /// of which it keeps drawn; an agent not changed since comes as
    /// `AgentMetrics.unchanged` (at a scrape a second, most idle agents:
    /// building each one's values again was most of the snapshot's cost).
    public func metrics(endedRetention: Duration = Engine.endedRetention, drawnThrough mark: UInt64? = nil) -> MetricsSnapshot {
        let started = ContinuousClock.now
        defer { noteHold("the metrics' snapshot", since: started) }
        let now = clock()
        var agents: [AgentMetrics] = []
        // Counted by case, in tables indexed by it (hashed per agent and scrape, they showed).
        var stateCounts = [Int](repeating: 0, count: AgentState.allCases.count)
        var cadenceCounts = [Int](repeating: 0, count: SamplingCadence.allCases.count)
        // What the capacity's walk sums, in the same walk.
        var used = UsedByGroup()
        agents.reserveCapacity(registry.count)
        // Read in place: an agent is a large value (its analytics rings), and a copy per agent per scrape showed;
        // read only: `update` would also redo its timers and commitments, per agent and scrape.
        registry.forEachSorted { id, agent in
            let state = agent.record.state
            stateCounts[state.caseIndex] += 1
            if state.isLive {
                cadenceCounts[(agent.cadence ?? .active).caseIndex] += 1
                used.add(agent)
            }
            if !state.isLive, let ended = agent.record.endedAt, now - ended > endedRetention { return }
            if let mark, agent.generation <= mark {
                agents.append(.unchanged(id: id, group: agent.record.group, state: state, generation: agent.generation))
                return
            }
            var degradation = DegradationLevel.none
            for tracker in (agent.ladder.degradation ?? [:]).values { degradation = max(degradation, tracker.level) }
            var step = 0
            for episode in agent.ladder.episodes.values {
                for action in episode.fired { step = max(step, action.severity + 1) }
            }
            agents.append(
                AgentMetrics(
                    id: id, group: agent.record.group, state: state, priority: agent.record.priority, limits: agent.record.limits,
                    sample: agent.latest,
                    usage: agent.reported.isEmpty ? agent.usage : agent.usage.merging(agent.reported) { _, reported in reported },
                    degradation: degradation, escalationStep: step, generation: agent.generation))
        }
        var states: [AgentState: Int] = [:]
        var sampling: [SamplingCadence: Int] = [:]
        for state in AgentState.allCases where stateCounts[state.caseIndex] > 0 { states[state] = stateCounts[state.caseIndex] }
        for cadence in SamplingCadence.allCases where cadenceCounts[cadence.caseIndex] > 0 {
            sampling[cadence] = cadenceCounts[cadence.caseIndex]
        }
        for record in queuedRecords() {
            states[record.state, default: 0] += 1
            agents.append(
                AgentMetrics(
                    id: record.id, group: record.group, state: record.state, priority: record.priority, limits: record.limits, sample: nil,
                    queuePosition: record.queuePosition, degradation: .none, escalationStep: 0))
        }
        return MetricsSnapshot(
            agents: agents, states: states, sampling: sampling, capacity: capacity(used: used), generationMark: registry.lastGeneration)
    }
}

/// Where the time of one reaction went, stage by stage: the watcher's wake,
/// its reading of the files, the queue, the hop onto the engine's actor (the
/// jobs before it there), and the step (ladder, enforcement, the commit queued).
public struct ReactionTiming: Sendable, Equatable {
    public var woke: ContinuousClock.Instant
    public var read: ContinuousClock.Instant
    public var dequeued: ContinuousClock.Instant
    public var entered: ContinuousClock.Instant
    public var done: ContinuousClock.Instant

    public init(
        woke: ContinuousClock.Instant, read: ContinuousClock.Instant, dequeued: ContinuousClock.Instant?,
        entered: ContinuousClock.Instant, done: ContinuousClock.Instant
    ) {
        self.woke = woke
        self.read = read
        // Handed to the engine directly (tests): no queue, the hop counts from the read.
        self.dequeued = dequeued ?? read
        self.entered = entered
        self.done = done
    }

    /// Kernel event (the watcher's wake) to action recorded.
    public var total: Duration { woke.duration(to: done) }

    /// The stages, for a log line: "watcher read 3 ms, queue 40 ms, engine hop 2 ms, step 5 ms".
    public var stages: String {
        [("watcher read", woke, read), ("queue", read, dequeued), ("engine hop", dequeued, entered), ("step", entered, done)]
            .map { "\($0.0) \(Self.milliseconds($0.1.duration(to: $0.2)))" }
            .joined(separator: ", ")
    }

    public static func milliseconds(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        guard value < 10 else { return "\(Int(value.rounded())) ms" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) ms"
    }
}

/// The kernel files whose change can lead to an action, as the reaction
/// metric's `trigger` label names them (a fixed set: each has its series
/// from the start).
public enum ReactionTrigger {
    public static let labels = ["memory.events", "pids.events", "cgroup.events", "memory.pressure", "cpu.pressure"]

    /// The label of an observation's trigger; nil for samples and requested readings.
    public static func label(of trigger: ObservationTrigger) -> String? {
        switch trigger {
        case .event(let file): file.rawValue
        case .pressure(let resource): "\(resource == .memory ? "memory" : "cpu").pressure"
        case .sample, .requested: nil
        }
    }
}
