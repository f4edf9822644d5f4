public import CorralCore
public import CorralEngine
public import Logging
public import NIOCore
import Prometheus
import Synchronization

/// A metric family: its name, Prometheus type and HELP text. Every family
/// the daemon can emit is listed in `MetricFamily.all` (the tests check the
/// alert rules and the Grafana dashboard against that list).
public struct MetricFamily: Sendable, Hashable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }
    public var name: String
    public var kind: Kind
    public var help: String

    var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }

    init(_ name: String, _ kind: Kind, _ help: String) {
        self.name = name
        self.kind = kind
        self.help = help
    }

    // Per agent (labels agent, group), with cAdvisor's meanings.
    static let workingSet = Self(
        "corral_agent_memory_working_set_bytes", .gauge,
        "The agent's memory working set: memory.current less inactive file pages (cAdvisor's container_memory_working_set_bytes).")
    static let memoryUsage = Self("corral_agent_memory_usage_bytes", .gauge, "The agent's memory.current, page cache included.")
    static let memoryLimit = Self(
        "corral_agent_memory_limit_bytes", .gauge, "The agent's memory limit: kind=soft is memory.high, kind=hard is memory.max.")
    static let cpuUsage = Self("corral_agent_cpu_usage_seconds_total", .counter, "CPU time the agent used (cpu.stat usage_usec).")
    static let cpuPeriods = Self(
        "corral_agent_cpu_periods_total", .counter,
        "Enforcement periods of the agent's cpu.max that had runnable tasks (cpu.stat nr_periods).")
    static let cpuThrottledPeriods = Self(
        "corral_agent_cpu_throttled_periods_total", .counter, "Periods in which cpu.max throttled the agent (cpu.stat nr_throttled).")
    static let cpuThrottledSeconds = Self(
        "corral_agent_cpu_throttled_seconds_total", .counter, "Time the agent's tasks were throttled by cpu.max (cpu.stat throttled_usec).")
    static let cpuLimit = Self(
        "corral_agent_cpu_limit_cores", .gauge,
        "The agent's CPU limit in cores: kind=hard is cpu.max, kind=soft the level at which the ladder acts.")
    static let oomKills = Self(
        "corral_agent_oom_kills_total", .counter, "Processes of the agent the kernel's OOM killer killed (memory.events oom_kill).")
    static let memoryEvents = Self(
        "corral_agent_memory_events_total", .counter, "The agent's memory.events counters (low, high, max, oom, oom_kill, oom_group_kill).")
    static let processes = Self("corral_agent_processes", .gauge, "Processes and threads in the agent's cgroup (pids.current).")
    static let processesLimit = Self(
        "corral_agent_processes_limit", .gauge,
        "The agent's process limit: kind=hard is pids.max, kind=soft the level at which the ladder acts.")
    static let pressure: [Resource: (waiting: MetricFamily, stalled: MetricFamily)] = [
        .cpu: (
            Self(
                "corral_agent_pressure_cpu_waiting_seconds_total", .counter,
                "Time some of the agent's tasks waited for a CPU (cpu.pressure some total)."),
            Self(
                "corral_agent_pressure_cpu_stalled_seconds_total", .counter,
                "Time all of the agent's tasks were stalled on CPU (cpu.pressure full total).")
        ),
        .memory: (
            Self(
                "corral_agent_pressure_memory_waiting_seconds_total", .counter,
                "Time some of the agent's tasks waited for memory (memory.pressure some total)."),
            Self(
                "corral_agent_pressure_memory_stalled_seconds_total", .counter,
                "Time all of the agent's tasks were stalled on memory (memory.pressure full total).")
        ),
        .disk: (
            Self(
                "corral_agent_pressure_io_waiting_seconds_total", .counter,
                "Time some of the agent's tasks waited for I/O (io.pressure some total)."),
            Self(
                "corral_agent_pressure_io_stalled_seconds_total", .counter,
                "Time all of the agent's tasks were stalled on I/O (io.pressure full total).")
        ),
    ]
    static let state = Self("corral_agent_state", .gauge, "1 for the agent's current state, 0 for the others.")
    static let degradation = Self(
        "corral_agent_degradation_level", .gauge,
        "The agent's highest degradation level: 0 none, 1 minimal, 2 moderate, 3 aggressive, 4 emergency.")
    static let escalation = Self(
        "corral_agent_escalation_step", .gauge,
        "The highest ladder step the agent's open violations took: 0 none, 1 warn, 2 throttle, 3 scale_down or custom, 4 suspend or migrate, 5 terminate."
    )
    static let priority = Self("corral_agent_priority", .gauge, "The agent's priority, 0 (least) to 10 (most); 5 is the default.")

    // Per daemon.
    static let actions = Self(
        "corral_enforcement_actions_total", .counter,
        "Enforcement actions recorded since the daemon started, by action, resource and outcome.")
    static let reaction = Self(
        "corral_reaction_seconds", .histogram,
        "Time from a kernel event (a *.events change or a PSI trigger) to the enforcement actions it caused, carried out and queued for the store, by the file that woke the watcher; kind crossing: a new violation, kind step: a ladder step already due, confirmed by the event."
    )
    static let commit = Self("corral_store_commit_seconds", .histogram, "Time one group commit of the store (SQLite) took.")
    static let agents = Self(
        "corral_agents", .gauge, "Agents in the daemon's table by state (live, queued, and ended ones not yet removed since it started).")
    static let sampled = Self(
        "corral_agents_sampled", .gauge,
        "Live agents by sampling cadence: active ones every intervals.sampling, idle ones (far from every limit, quiet) every intervals.idle_sampling."
    )
    static let capacityMemory = Self(
        "corral_host_capacity_memory_bytes", .gauge,
        "Memory of the host as corral capacity shows it, by kind (host, reserved, allocatable, committed, used, available).")
    static let capacityCPU = Self(
        "corral_host_capacity_cpu_cores", .gauge, "CPU of the host in cores as corral capacity shows it, by kind.")
    static let capacityProcesses = Self(
        "corral_host_capacity_processes", .gauge, "Processes of the host as corral capacity shows them, by kind.")
    static let hostPressureActive = Self(
        "corral_host_pressure_active", .gauge,
        "1 while the host memory-pressure ladder is in an episode (escalating, holding or recovering).")
    static let hostPressureSteps = Self(
        "corral_host_pressure_steps", .gauge, "Agents the host memory-pressure ladder holds (degraded, throttled, frozen).")
    static let buildInfo = Self("corral_build_info", .gauge, "Always 1; the label carries the daemon's version.")

    /// Every family the daemon emits.
    public static let all: [MetricFamily] =
        [
            workingSet, memoryUsage, memoryLimit, cpuUsage, cpuPeriods, cpuThrottledPeriods, cpuThrottledSeconds, cpuLimit, oomKills,
            memoryEvents, processes, processesLimit,
        ] + pressure.values.flatMap { [$0.waiting, $0.stalled] }
        + [
            state, degradation, escalation, priority, actions, reaction, commit, agents, sampled, capacityMemory, capacityCPU,
            capacityProcesses,
            hostPressureActive, hostPressureSteps, buildInfo,
        ]
}

/// The daemon's Prometheus metrics, in one long-lived registry. The engine
/// feeds what accumulates (enforcement counters, the reaction and commit
/// histograms) as its `EngineInstruments`, from its executor and the
/// committer's thread (the registry locks). Per-agent and capacity series are
/// brought up to date at each scrape from the engine's snapshot: made the
/// first time they appear, set (gauges) or moved by the difference
/// (counters), and unregistered when they are no longer in a snapshot, so a
/// removed agent's series are gone at the next scrape. Making a series costs
/// far more than updating it (the registry copies a family to add to it), so
/// they are kept between scrapes. Owner of `series`: the scrape in progress
/// (one at a time, under its mutex).
public final class DaemonMetrics: EngineInstruments {
    let registry = PrometheusCollectorRegistry()
    /// One per `ReactionTrigger.labels` entry and kind ("TRIGGER crossing|step"), made at start (fixed; read-only after).
    let reactionHistograms: [String: DurationHistogram]
    let commitHistogram: DurationHistogram
    public let version: String
    /// Where slow reactions are told (debug level).
    let logger: Logger?

    /// A daemon-wide series of the snapshot's families (agents by state, capacity): its family and label value.
    struct SeriesKey: Hashable {
        var family: String
        var label: String
    }
    /// What the scrapes keep between them (owner: the scrape in progress, under the mutex).
    struct Series {
        var daemon: [SeriesKey: Gauge] = [:]
        var agents: [String: AgentSeries] = [:]
        /// The text of the last scrape, kept for its capacity: the next one is
        /// written into it without growing it step by step (each step a new
        /// allocation of up to megabytes, and its pages faulted in).
        var text: [UInt8] = []
    }
    let series = Mutex(Series())

    /// Reaction buckets: 1 ms to 5 s (the ladder's target is milliseconds; TCG stretches it).
    static let reactionBuckets: [Duration] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000].map { .milliseconds($0) }
    /// Commit buckets: 0.5 ms to 2 s.
    static let commitBuckets: [Duration] = [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2000].map { .microseconds(Int64($0 * 1000)) }

    public init(version: String, logger: Logger? = nil) {
        self.version = version
        self.logger = logger
        let registry = registry
        reactionHistograms = Dictionary(
            uniqueKeysWithValues: ReactionTrigger.labels.flatMap { trigger in
                ["crossing", "step"].map { kind in
                    (
                        "\(trigger) \(kind)",
                        registry.makeDurationHistogram(
                            descriptor: MetricFamily.reaction.descriptor, labels: [("trigger", trigger), ("kind", kind)],
                            buckets: Self.reactionBuckets)
                    )
                }
            })
        commitHistogram = registry.makeDurationHistogram(descriptor: MetricFamily.commit.descriptor, buckets: Self.commitBuckets)
        registry.makeGauge(descriptor: MetricFamily.buildInfo.descriptor, labels: [("version", version)]).set(to: 1.0)
    }

    public func recorded(_ record: EnforcementRecord) {
        registry.makeCounter(
            descriptor: MetricFamily.actions.descriptor,
            labels: [
                ("action", record.action.rawValue), ("resource", record.resource.rawValue),
                ("outcome", record.succeeded ? "succeeded" : "failed"),
            ]
        ).increment()
    }

    public func reacted(_ timing: ReactionTiming, to trigger: String, crossing: Bool) {
        let total = timing.total
        reactionHistograms["\(trigger) \(crossing ? "crossing" : "step")"]?.record(total)
        // Where a slow one's time went (`--log-level debug`): the stages say
        // whether the watcher, the queue, the engine's other work or the step held it.
        if total > Self.slowReaction, let logger, logger.logLevel <= .debug {
            logger.debug(
                "reaction to \(trigger) (\(crossing ? "crossing" : "step")) took \(ReactionTiming.milliseconds(total)): \(timing.stages)")
        }
    }

    public func heldEngine(_ what: String, for duration: Duration) {
        guard let logger, logger.logLevel <= .debug else { return }
        logger.debug("\(what) held the engine for \(ReactionTiming.milliseconds(duration))")
    }

    /// A reaction slower than this is logged at debug level with its stages (the target, issue 15).
    static let slowReaction = Duration.milliseconds(50)

    public func committed(in duration: Duration) { commitHistogram.record(duration) }

    /// The content type of `exposition`.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Brings the series up to date with `snapshot` and returns the text
    /// exposition (Prometheus format 0.0.4) of every metric.
    public func exposition(_ snapshot: MetricsSnapshot) -> String {
        series.withLock { series in
            write(snapshot, into: &series)
            return String(decoding: series.text, as: UTF8.self)
        }
    }

    /// `exposition` as the body the response sends (the text copied once).
    public func expositionBuffer(_ snapshot: MetricsSnapshot) -> ByteBuffer {
        series.withLock { series in
            write(snapshot, into: &series)
            return ByteBuffer(bytes: series.text)
        }
    }

    func write(_ snapshot: MetricsSnapshot, into series: inout Series) {
        update(&series, with: snapshot)
        series.text.removeAll(keepingCapacity: true)
        registry.emit(into: &series.text)
    }

    func update(_ series: inout Series, with snapshot: MetricsSnapshot) {
        var present = Set<String>()
        present.reserveCapacity(snapshot.agents.count)
        var values = [Double?](repeating: nil, count: AgentSeries.slots.count)
        for agent in snapshot.agents {
            present.insert(agent.id)
            AgentSeries.values(of: agent, into: &values)
            if series.agents[agent.id] == nil { series.agents[agent.id] = AgentSeries(id: agent.id, group: agent.group) }
            series.agents[agent.id]!.update(values, registry: registry)
        }
        for (id, gone) in series.agents where !present.contains(id) {
            gone.unregister(from: registry)
            series.agents[id] = nil
        }

        var seen = Set<SeriesKey>()
        func gauge(_ family: MetricFamily, label: (String, String)? = nil, _ value: Double) {
            let key = SeriesKey(family: family.name, label: label?.1 ?? "")
            seen.insert(key)
            let gauge = series.daemon[key] ?? registry.makeGauge(descriptor: family.descriptor, labels: label.map { [$0] } ?? [])
            gauge.set(to: value)
            series.daemon[key] = gauge
        }
        for state in AgentState.allCases {
            gauge(.agents, label: ("state", state.rawValue), Double(snapshot.states[state] ?? 0))
        }
        for cadence in SamplingCadence.allCases {
            gauge(.sampled, label: ("cadence", cadence.rawValue), Double(snapshot.sampling[cadence] ?? 0))
        }
        for line in snapshot.capacity.resources {
            let family: MetricFamily
            let scale: Double
            switch line.resource {
            case .memory: (family, scale) = (.capacityMemory, 1)
            case .cpu: (family, scale) = (.capacityCPU, 0.01)
            case .processes: (family, scale) = (.capacityProcesses, 1)
            default: continue
            }
            for (kind, value) in [
                ("host", line.host), ("reserved", line.reserved), ("allocatable", line.allocatable), ("committed_hard", line.committedHard),
                ("committed_soft", line.committedSoft), ("used", line.used), ("available", line.available),
            ] where value.isFinite {
                gauge(family, label: ("kind", kind), value * scale)
            }
        }
        let host = snapshot.capacity.hostPressure
        gauge(.hostPressureActive, host.map { $0.enabled && $0.phase != .calm } == true ? 1 : 0)
        gauge(.hostPressureSteps, Double(host?.steps.count ?? 0))
        for (key, gauge) in series.daemon where !seen.contains(key) {
            registry.unregisterGauge(gauge)
            series.daemon[key] = nil
        }
    }
}

/// One agent's series, kept between scrapes: a fixed slot per series (one
/// dictionary lookup per agent and scrape, not one per series).
struct AgentSeries {
    /// What a slot holds: its family and the label beside agent and group.
    struct Slot {
        var family: MetricFamily
        var label: (String, String)?
        var isCounter: Bool { family.kind == .counter }
    }

    static let slots: [Slot] = {
        var slots: [Slot] = AgentState.allCases.map { Slot(family: .state, label: ("state", $0.rawValue)) }
        slots += [.priority, .degradation, .escalation, .memoryUsage, .workingSet, .processes].map { Slot(family: $0) }
        for family in [MetricFamily.memoryLimit, .cpuLimit, .processesLimit] {
            slots += [Slot(family: family, label: ("kind", "soft")), Slot(family: family, label: ("kind", "hard"))]
        }
        slots += [.cpuUsage, .cpuPeriods, .cpuThrottledPeriods, .cpuThrottledSeconds, .oomKills].map { Slot(family: $0) }
        slots += memoryEvents.map { Slot(family: .memoryEvents, label: ("event", $0)) }
        for resource in [Resource.cpu, .memory, .disk] {
            guard let pair = MetricFamily.pressure[resource] else { continue }
            slots += [Slot(family: pair.waiting), Slot(family: pair.stalled)]
        }
        return slots
    }()
    static let memoryEvents = ["low", "high", "max", "oom", "oom_kill", "oom_group_kill"]
    static func index(_ family: MetricFamily, _ label: String? = nil) -> Int {
        slots.firstIndex { $0.family == family && $0.label?.1 == label }!
    }
    static let stateIndex = index(.state, AgentState.allCases[0].rawValue)
    static let priorityIndex = index(.priority)
    static let degradationIndex = index(.degradation)
    static let escalationIndex = index(.escalation)
    static let memoryUsageIndex = index(.memoryUsage)
    static let workingSetIndex = index(.workingSet)
    static let processesIndex = index(.processes)
    static let limitIndex: [(Resource, Int, Double)] = [
        (.memory, index(.memoryLimit, "soft"), 1), (.cpu, index(.cpuLimit, "soft"), 0.01), (.processes, index(.processesLimit, "soft"), 1),
    ]
    static let cpuUsageIndex = index(.cpuUsage)
    static let cpuPeriodsIndex = index(.cpuPeriods)
    static let cpuThrottledPeriodsIndex = index(.cpuThrottledPeriods)
    static let cpuThrottledSecondsIndex = index(.cpuThrottledSeconds)
    static let oomKillsIndex = index(.oomKills)
    static let memoryEventsIndex = index(.memoryEvents, "low")
    static let pressureIndex = index(MetricFamily.pressure[.cpu]!.waiting)

    /// The slots' values for `agent` (nil: the series is not there).
    static func values(of agent: AgentMetrics, into values: inout [Double?]) {
        for index in values.indices { values[index] = nil }
        for (offset, state) in AgentState.allCases.enumerated() { values[stateIndex + offset] = state == agent.state ? 1 : 0 }
        values[priorityIndex] = Double(agent.priority.rawValue)
        values[degradationIndex] = Double(DegradationLevel.allCases.firstIndex(of: agent.degradation) ?? 0)
        values[escalationIndex] = Double(agent.escalationStep)
        for (resource, index, scale) in limitIndex {
            guard let limit = agent.limits[resource] else { continue }
            if limit.soft > 0 { values[index] = limit.soft * scale }
            if limit.hard > 0 { values[index + 1] = limit.hard * scale }
        }
        guard let sample = agent.sample else { return }
        func seconds(_ microseconds: Int64) -> Double { Double(microseconds) / 1_000_000 }
        values[memoryUsageIndex] = sample.memoryCurrent.map(Double.init)
        values[workingSetIndex] = sample.workingSet.map(Double.init)
        values[processesIndex] = sample.pidsCurrent.map(Double.init)
        values[cpuUsageIndex] = seconds(sample.cpu.usageUsec)
        values[cpuPeriodsIndex] = sample.cpu.nrPeriods.map(Double.init)
        values[cpuThrottledPeriodsIndex] = sample.cpu.nrThrottled.map(Double.init)
        values[cpuThrottledSecondsIndex] = sample.cpu.throttledUsec.map(seconds)
        let events = sample.memoryEvents
        values[oomKillsIndex] = Double(events.oomKill)
        for (offset, value) in [events.low, events.high, events.max, events.oom, events.oomKill, events.oomGroupKill].enumerated() {
            values[memoryEventsIndex + offset] = Double(value)
        }
        if let pressure = sample.pressure {
            for (offset, total) in [
                pressure.cpuSome, pressure.cpuFull, pressure.memorySome, pressure.memoryFull, pressure.ioSome, pressure.ioFull,
            ].enumerated() {
                values[pressureIndex + offset] = total.map(seconds)
            }
        }
    }

    let id: String
    let group: String
    var gauges: [Gauge?]
    var counters: [Counter?]
    /// The total each counter shows.
    var shown: [Double]

    init(id: String, group: String) {
        self.id = id
        self.group = group
        gauges = Array(repeating: nil, count: Self.slots.count)
        counters = Array(repeating: nil, count: Self.slots.count)
        shown = Array(repeating: 0, count: Self.slots.count)
    }

    func labels(_ slot: Slot) -> [(String, String)] {
        var labels = [("agent", id), ("group", group)]
        if let label = slot.label { labels.append(label) }
        return labels
    }

    /// Sets each slot's series to its value: made when it first has one, unregistered when it has none.
    mutating func update(_ values: [Double?], registry: PrometheusCollectorRegistry) {
        for (index, slot) in Self.slots.enumerated() {
            guard let value = values[index] else {
                if let gauge = gauges[index] { registry.unregisterGauge(gauge) }
                if let counter = counters[index] { registry.unregisterCounter(counter) }
                gauges[index] = nil
                counters[index] = nil
                continue
            }
            if !slot.isCounter {
                if gauges[index] == nil { gauges[index] = registry.makeGauge(descriptor: slot.family.descriptor, labels: labels(slot)) }
                gauges[index]?.set(to: value)
            } else if let counter = counters[index] {
                guard value != shown[index] else { continue }
                if value > shown[index] {
                    Self.add(value - shown[index], to: counter)
                } else {
                    // Lower than shown: a new cgroup under the same name. Prometheus reads the drop as a reset.
                    counter.reset()
                    Self.add(value, to: counter)
                }
                shown[index] = value
            } else {
                let counter = registry.makeCounter(descriptor: slot.family.descriptor, labels: labels(slot))
                Self.add(value, to: counter)
                counters[index] = counter
                shown[index] = value
            }
        }
    }

    /// Whole amounts (events, periods) go to the counter's integer part, which
    /// it prints without the floating-point formatting (most of an emit's cost).
    static func add(_ amount: Double, to counter: Counter) {
        if amount == amount.rounded(), abs(amount) < 9e15 { counter.increment(by: Int64(amount)) } else { counter.increment(by: amount) }
    }

    func unregister(from registry: PrometheusCollectorRegistry) {
        for gauge in gauges.compactMap({ $0 }) { registry.unregisterGauge(gauge) }
        for counter in counters.compactMap({ $0 }) { registry.unregisterCounter(counter) }
    }
}
