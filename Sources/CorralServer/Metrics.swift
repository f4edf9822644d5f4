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

/// The daemon's Prometheus metrics. What accumulates (enforcement counters,
/// the reaction and commit histograms) and the daemon-wide gauges live in one
/// long-lived swift-prometheus registry: the engine feeds the first as its
/// `EngineInstruments`, from its executor and the committer's thread (the
/// registry locks); the gauges (agents by state, capacity) are set from the
/// engine's snapshot at each scrape, made the first time they appear and
/// unregistered when they are no longer in it. The per-agent families are
/// written from the same snapshot after the registry's text
/// (`AgentExposition`), so a removed agent's series are gone at the next
/// scrape. Owner of `series`: the scrape in progress (one at a time, under its mutex).
public final class DaemonMetrics: EngineInstruments {
    let registry = PrometheusCollectorRegistry()
    /// The reaction and commit histograms, in a registry of their own: their
    /// text (about 150 lines, each number formatted through a `String`) is
    /// written again only when one of them changed (`histogramChanges`), which
    /// on a quiet host is seldom; emitted at every scrape it was 7% of a
    /// scrape's CPU under emulation (`perf`, 200 idle agents).
    let histogramRegistry = PrometheusCollectorRegistry()
    /// Bumped after each observation of a histogram.
    let histogramChanges = Atomic<UInt64>(0)
    /// One per `ReactionTrigger.labels` entry and kind ("TRIGGER crossing|step"), made at start (fixed; read-only after).
    let reactionHistograms: [String: DurationHistogram]
    let commitHistogram: DurationHistogram
    public let version: String
    /// Where slow reactions are told (debug level).
    let logger: Logger?

    /// A daemon-wide series of the snapshot's families (agents by state and
    /// cadence, capacity, host pressure): its family and label. Fixed, found
    /// by position: `update` fills them by index, with no name hashed.
    struct DaemonSlot {
        var family: MetricFamily
        var label: (String, String)?
    }
    /// The capacity's kinds, in `update`'s order.
    static let capacityKinds = ["host", "reserved", "allocatable", "committed_hard", "committed_soft", "used", "available"]
    /// The capacity's families and scales, by `CapacityReport` resource.
    static let capacityFamilies: [(Resource, MetricFamily, Double)] = [
        (.memory, .capacityMemory, 1), (.cpu, .capacityCPU, 0.01), (.processes, .capacityProcesses, 1),
    ]
    static let daemonSlots: [DaemonSlot] =
        AgentState.allCases.map { DaemonSlot(family: .agents, label: ("state", $0.rawValue)) }
        + SamplingCadence.allCases.map { DaemonSlot(family: .sampled, label: ("cadence", $0.rawValue)) }
        + capacityFamilies.flatMap { _, family, _ in capacityKinds.map { DaemonSlot(family: family, label: ("kind", $0)) } }
        + [DaemonSlot(family: .hostPressureActive), DaemonSlot(family: .hostPressureSteps)]
    static let cadenceSlot = AgentState.allCases.count
    static let capacitySlot = cadenceSlot + SamplingCadence.allCases.count
    static let hostPressureSlot = capacitySlot + capacityFamilies.count * capacityKinds.count

    /// What the scrapes keep between them (owner: the scrape in progress, under the mutex).
    struct Series {
        /// The gauge of each `daemonSlots` entry (nil: not in the last snapshot).
        var daemon = [Gauge?](repeating: nil, count: DaemonMetrics.daemonSlots.count)
        /// Scratch for one snapshot's values, by slot.
        var daemonValues = [Double?](repeating: nil, count: DaemonMetrics.daemonSlots.count)
        /// Each agent's lines as the last scrape wrote them (`AgentExposition`).
        var agents = AgentExposition.Cache()
        /// The registry's text of the last scrape, kept for its capacity.
        var text: [UInt8] = []
        /// The histograms' text, and the `histogramChanges` it shows (nil: none yet).
        var histogramText: [UInt8] = []
        var histogramsShown: UInt64?
        /// The body of the last scrape written in full, kept: the response
        /// shares it, the next scrape copies the lines of the agents that did
        /// not change from it (`AgentExposition.Cache`) into `spare`, the body
        /// before it. Once a response is sent, its storage is written again
        /// (no new allocation of most of a megabyte, no page faulted in again).
        var body = ByteBuffer()
        var spare = ByteBuffer()
        /// The `generationMark` of the snapshot last written in full: every
        /// agent of it is drawn in `agents` (nil: none yet, or one failed).
        var drawnThrough: UInt64?
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
        let histogramRegistry = histogramRegistry
        reactionHistograms = Dictionary(
            uniqueKeysWithValues: ReactionTrigger.labels.flatMap { trigger in
                ["crossing", "step"].map { kind in
                    (
                        "\(trigger) \(kind)",
                        histogramRegistry.makeDurationHistogram(
                            descriptor: MetricFamily.reaction.descriptor, labels: [("trigger", trigger), ("kind", kind)],
                            buckets: Self.reactionBuckets)
                    )
                }
            })
        commitHistogram = histogramRegistry.makeDurationHistogram(descriptor: MetricFamily.commit.descriptor, buckets: Self.commitBuckets)
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
        histogramChanges.add(1, ordering: .releasing)
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

    public func committed(in duration: Duration) {
        commitHistogram.record(duration)
        histogramChanges.add(1, ordering: .releasing)
    }

    /// The content type of `exposition`.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Brings the series up to date with `snapshot` and returns the text
    /// exposition (Prometheus format 0.0.4) of every metric.
    public func exposition(_ snapshot: MetricsSnapshot) -> String {
        String(buffer: expositionBuffer(snapshot) ?? ByteBuffer())
    }

    /// One scrape of `engine`: a snapshot in which the agents not changed
    /// since the last one written come as `unchanged`, their kept lines
    /// copied as they are. Should one of them not be kept (a scrape of an
    /// older snapshot finished meanwhile and drew it again), a full snapshot is taken.
    public func scrape(_ engine: Engine) async -> ByteBuffer {
        if let mark = drawnThrough, let body = expositionBuffer(await engine.metrics(drawnThrough: mark)) { return body }
        // A full snapshot always writes.
        return expositionBuffer(await engine.metrics()) ?? ByteBuffer()
    }

    /// What to pass as `Engine.metrics(drawnThrough:)` for the next snapshot.
    public var drawnThrough: UInt64? { series.withLock { $0.drawnThrough } }

    /// `exposition` as the body the response sends (shared with the kept one,
    /// not copied). Nil when an `unchanged` agent of `snapshot` has no kept
    /// lines, which cannot happen to a snapshot taken without `drawnThrough`.
    public func expositionBuffer(_ snapshot: MetricsSnapshot) -> ByteBuffer? {
        series.withLock { series in
            update(&series, with: snapshot)
            series.text.removeAll(keepingCapacity: true)
            registry.emit(into: &series.text)
            // Loaded before the histograms are read: one observed meanwhile bumps
            // the count past what is kept, so the next scrape writes them again.
            let changes = histogramChanges.load(ordering: .acquiring)
            if series.histogramsShown != changes {
                series.histogramText.removeAll(keepingCapacity: true)
                histogramRegistry.emit(into: &series.histogramText)
                series.histogramsShown = changes
            }
            // Cleared while unshared, the storage is kept; still shared with a response being sent, a new one is made.
            series.spare.clear()
            series.spare.writeBytes(series.text)
            series.spare.writeBytes(series.histogramText)
            guard series.agents.write(snapshot.agents, from: series.body, into: &series.spare) else {
                series.drawnThrough = nil
                return nil
            }
            swap(&series.body, &series.spare)
            series.drawnThrough = snapshot.generationMark
            return series.body
        }
    }

    func update(_ series: inout Series, with snapshot: MetricsSnapshot) {
        var values = series.daemonValues
        series.daemonValues = []
        for index in values.indices { values[index] = nil }
        for (offset, state) in AgentState.allCases.enumerated() { values[offset] = Double(snapshot.states[state] ?? 0) }
        for (offset, cadence) in SamplingCadence.allCases.enumerated() {
            values[Self.cadenceSlot + offset] = Double(snapshot.sampling[cadence] ?? 0)
        }
        for line in snapshot.capacity.resources {
            guard let family = Self.capacityFamilies.firstIndex(where: { $0.0 == line.resource }) else { continue }
            let scale = Self.capacityFamilies[family].2
            let at = Self.capacitySlot + family * Self.capacityKinds.count
            for (offset, value) in [
                line.host, line.reserved, line.allocatable, line.committedHard, line.committedSoft, line.used, line.available,
            ].enumerated() where value.isFinite {
                values[at + offset] = value * scale
            }
        }
        let host = snapshot.capacity.hostPressure
        values[Self.hostPressureSlot] = host.map { $0.enabled && $0.phase != .calm } == true ? 1 : 0
        values[Self.hostPressureSlot + 1] = Double(host?.steps.count ?? 0)
        for (index, value) in values.enumerated() {
            if let value {
                let gauge =
                    series.daemon[index]
                    ?? registry.makeGauge(
                        descriptor: Self.daemonSlots[index].family.descriptor, labels: Self.daemonSlots[index].label.map { [$0] } ?? [])
                gauge.set(to: value)
                series.daemon[index] = gauge
            } else if let gauge = series.daemon[index] {
                registry.unregisterGauge(gauge)
                series.daemon[index] = nil
            }
        }
        series.daemonValues = values
    }
}

/// The per-agent families, written from the snapshot at each scrape. They
/// are not in the swift-prometheus registry: there every series is an object
/// of its own, and its emit formats each value through a `String` at every
/// scrape; here each agent's lines are drawn as text when its values change
/// and copied as they are while they do not (`Cache`), integers written digit
/// by digit (the figures: README, "Metrics"). Same text format, same HELP and
/// TYPE (from `MetricFamily`). Counters are the kernel's own totals, written as
/// they are: a cgroup made again under the same name starts from zero, which
/// Prometheus reads as a counter reset. A removed agent is not in the
/// snapshot, so its series are gone at the next scrape.
public enum AgentExposition {
    /// What a slot holds: its family and the label beside agent and group.
    struct Slot {
        var family: MetricFamily
        var label: (String, String)?
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

    /// The families in the order of their first slot: each one's HELP and TYPE lines.
    static let headers: [[UInt8]] = families.map { family in
        var header: [UInt8] = []
        header.append(contentsOf: "# HELP \(family.name) ".utf8)
        appendEscaped(family.help, escapingQuotes: false, to: &header)
        header.append(contentsOf: "\n# TYPE \(family.name) \(family.kind.rawValue)\n".utf8)
        return header
    }
    static let families: [MetricFamily] = slots.reduce(into: []) { order, slot in
        if !order.contains(slot.family) { order.append(slot.family) }
    }

    /// One step of drawing an agent's lines: a slot, with where its text
    /// before the agent's labels (`name{`) and after them (`,kind="soft"} `)
    /// lies in `affixes`; or (slot -1) the end of a family.
    struct Entry {
        var slot: Int
        var before: Range<Int>
        var after: Range<Int>
    }

    /// Every slot, family after family, each family followed by its end.
    static let (entries, affixes): ([Entry], [UInt8]) = {
        var entries: [Entry] = []
        var affixes: [UInt8] = []
        func add(_ bytes: some Sequence<UInt8>) -> Range<Int> {
            let start = affixes.count
            affixes.append(contentsOf: bytes)
            return start..<affixes.count
        }
        for family in families {
            for index in slots.indices where slots[index].family == family {
                let before = add("\(family.name){".utf8)
                var after: [UInt8] = []
                if let (name, value) = slots[index].label {
                    after.append(contentsOf: ",\(name)=\"".utf8)
                    appendEscaped(value, escapingQuotes: true, to: &after)
                    after.append(UInt8(ascii: "\""))
                }
                after.append(contentsOf: "} ".utf8)
                entries.append(Entry(slot: index, before: before, after: add(after)))
            }
            entries.append(Entry(slot: -1, before: 0..<0, after: 0..<0))
        }
        return (entries, affixes)
    }()

    /// Each family's entries in `entries` (its end left out).
    static let familyEntries: [Range<Int>] = {
        var ranges: [Range<Int>] = []
        var start = 0
        for (index, entry) in entries.enumerated() where entry.slot < 0 {
            ranges.append(start..<index)
            start = index + 1
        }
        return ranges
    }()

    /// One agent's lines between scrapes: the values they show, and where
    /// its text sits in the last body written (`Cache`).
    final class Lines {
        let id: String
        let group: String
        var values: [Double?]
        /// The scrape that last saw the agent.
        var seen = 0
        /// The agent's `AgentMetrics.generation` that `values` show (nil: not known).
        var generation: UInt64?
        /// The body its current text is in (`Cache.bodyScrape`; 0: none, or
        /// its values changed since), and its row there.
        var inBody = 0
        var position = 0
        /// `agent="…",group="…"`, escaped: the same in every line, and for the agent's life.
        let labels: [UInt8]

        /// The most bytes its lines take: every line at its longest (its affixes, the labels, a number, the line feed).
        var bound: Int {
            AgentExposition.affixes.count + AgentExposition.entries.count * (labels.count + AgentExposition.longestNumber + 1)
        }

        init(id: String, group: String) {
            self.id = id
            self.group = group
            values = Array(repeating: nil, count: AgentExposition.slots.count)
            var labels = Array(#"agent=""#.utf8)
            appendEscaped(id, escapingQuotes: true, to: &labels)
            labels.append(contentsOf: #"",group=""#.utf8)
            appendEscaped(group, escapingQuotes: true, to: &labels)
            labels.append(UInt8(ascii: "\""))
            self.labels = labels
        }

        /// Draws its lines of `family` from `values` at `out`, straight into
        /// the body; returns how many bytes. Written through a pointer, each
        /// affix and number copied in place: appended to an array piece by
        /// piece (a capacity and uniqueness check each time) an agent's lines
        /// were 28.8K instructions, and a scrape draws every agent whose values
        /// moved (callgrind, `corral-bench scrape 200 40`).
        func draw(family: Int, into out: UnsafeMutableRawPointer, entries: UnsafeBufferPointer<Entry>, affixes: UnsafeRawPointer) -> Int {
            values.withUnsafeBufferPointer { values in
                labels.withUnsafeBytes { labelBytes in
                    guard let labels = labelBytes.baseAddress else { return 0 }
                    let labelCount = labelBytes.count
                    var at = 0
                    for index in AgentExposition.familyEntries[family] {
                        let entry = entries[index]
                        guard let value = values[entry.slot] else { continue }
                        (out + at).copyMemory(from: affixes + entry.before.lowerBound, byteCount: entry.before.count)
                        at += entry.before.count
                        (out + at).copyMemory(from: labels, byteCount: labelCount)
                        at += labelCount
                        (out + at).copyMemory(from: affixes + entry.after.lowerBound, byteCount: entry.after.count)
                        at += entry.after.count
                        at += writeNumber(value, into: out + at)
                        (out + at).storeBytes(of: UInt8(ascii: "\n"), as: UInt8.self)
                        at += 1
                    }
                    return at
                }
            }
        }
    }

    /// Every agent's lines between scrapes. The text is family after family,
    /// each family's lines agent after agent, so an agent's lines are spread
    /// over the whole body. An agent whose values did not change since the
    /// last scrape (most of them, with idle agents sampled every 10 s and
    /// scrapes every few seconds) is not drawn again: its lines are copied
    /// from the last body, and agents that were neighbours there are copied
    /// together, so a quiet scrape copies each family in one piece (it copied
    /// each agent's part of each family apart: 36 families × 200 agents small
    /// copies a scrape). Only the agents that changed are drawn, family by
    /// family, in place. The last body stays alive beside the one being
    /// written (`DaemonMetrics.Series`): two bodies and each agent's values are
    /// what is kept (`corral-bench metrics`). An agent gone from the snapshot
    /// is dropped at that scrape. Owner: `DaemonMetrics.series` (its mutex).
    struct Cache {
        var lines: [String: Lines] = [:]
        var scrape = 0
        /// The scrape whose body is the last written in full (0: none).
        var bodyScrape = 0
        /// Where the agents' part starts in that body, how many rows it has,
        /// and where each row's lines of each family start in it, from that
        /// start: `offsets[f * (rows + 1) + r]`, with the family's end at `r == rows`.
        var bodyStart = 0
        var bodyRows = 0
        var offsets: [UInt32] = []
        /// The same for the body being written (swapped in once written in full).
        var nextOffsets: [UInt32] = []
        /// Scratch for one agent's values.
        var values = [Double?](repeating: nil, count: AgentExposition.slots.count)
        /// Scratch: the scrape's pieces in row order (see `Piece`).
        var pieces: [Piece] = []
        /// The rows of the last scrape, in its order: while no agent comes or
        /// goes, agent `i` of this one is row `i` there, found without hashing its id.
        var previous: [Lines] = []

        /// A run of rows that were neighbours in the last body (`from` its
        /// rows `first...last`), or one row drawn now (`drawn` ≥ 0: its row in this scrape).
        struct Piece {
            var first: Int
            var last: Int
            var drawn: Int
        }

        /// Writes every per-agent family of `agents` to `buffer`, copying
        /// from `last`, the body this cache wrote last in full. False when
        /// an `unchanged` agent has no lines at its generation in it (the
        /// buffer then holds part of a scrape, and `last` stays the body to copy from).
        mutating func write(_ agents: [AgentMetrics], from last: ByteBuffer, into buffer: inout ByteBuffer) -> Bool {
            scrape += 1
            var rows: [Lines] = []
            rows.reserveCapacity(agents.count)
            pieces.removeAll(keepingCapacity: true)
            var drawnBound = 0
            // By index, each agent's fields read in place: `for agent in agents` copied each one.
            for position in agents.indices {
                let row: Lines
                let id = agents[position].id
                let unchanged = agents[position].unchanged
                let generation = agents[position].generation
                let known = position < previous.count && previous[position].id == id ? previous[position] : lines[id]
                if let kept = known, kept.group == agents[position].group, kept.seen != scrape {
                    row = kept
                } else if unchanged {
                    return false
                } else {
                    // New, or made again under another group (or a duplicate id: drawn on its own).
                    row = Lines(id: id, group: agents[position].group)
                    lines[id] = row
                }
                let inBody = bodyScrape > 0 && row.inBody == bodyScrape
                var draw = false
                // The same generation: nothing of the agent changed since its lines were drawn.
                if unchanged {
                    guard inBody, row.generation == generation else { return false }
                } else if !inBody || generation == nil || generation != row.generation {
                    for index in values.indices { values[index] = nil }
                    AgentExposition.values(of: agents[position], into: &values, at: 0)
                    if !inBody || row.values != values {
                        row.values = values
                        // Its text in the last body is stale now, whether or not this scrape is written in full.
                        row.inBody = 0
                        draw = true
                    }
                    row.generation = generation
                }
                row.seen = scrape
                rows.append(row)
                if draw {
                    drawnBound += row.bound
                    pieces.append(Piece(first: 0, last: 0, drawn: rows.count - 1))
                } else if let previous = pieces.last, previous.drawn < 0, previous.last + 1 == row.position {
                    pieces[pieces.count - 1].last = row.position
                } else {
                    pieces.append(Piece(first: row.position, last: row.position, drawn: -1))
                }
            }
            // Only when some agent went: the dictionary's walk hashes nothing, but visits them all.
            if lines.count != rows.count {
                for (id, row) in lines where row.seen != scrape { lines[id] = nil }
            }
            previous = rows
            copy(into: &buffer, from: last, rows: rows, drawnBound: drawnBound)
            // Written in full: this body is the one to copy from next time.
            bodyScrape = scrape
            bodyRows = rows.count
            swap(&offsets, &nextOffsets)
            for (position, row) in rows.enumerated() {
                row.inBody = scrape
                row.position = position
            }
            return true
        }

        /// Family after family: its header, then each piece's part of it: a
        /// run of neighbours copied from `last` at once, an agent that changed
        /// drawn in place; each row's offset noted in `nextOffsets`.
        mutating func copy(into buffer: inout ByteBuffer, from last: ByteBuffer, rows: [Lines], drawnBound: Int) {
            let families = headers.count
            let count = rows.count
            let stride = count + 1
            let lastStride = bodyRows + 1
            let lastStart = bodyStart
            bodyStart = buffer.writerIndex - buffer.readerIndex
            if nextOffsets.count != families * stride { nextOffsets = Array(repeating: 0, count: families * stride) }
            // At most: every header, every run's text in the last body, every drawn agent at its longest.
            let total = headers.reduce(0) { $0 + $1.count } + (bodyScrape > 0 ? last.readableBytes : 0) + drawnBound
            let pieces = self.pieces
            AgentExposition.entries.withUnsafeBufferPointer { entries in
                AgentExposition.affixes.withUnsafeBytes { affixes in
                    last.withUnsafeReadableBytes { lastBody in
                        offsets.withUnsafeBufferPointer { offsets in
                            nextOffsets.withUnsafeMutableBufferPointer { next in
                                _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
                                    guard let into = out.baseAddress, let affixes = affixes.baseAddress else { return 0 }
                                    var at = 0
                                    for family in 0..<families {
                                        headers[family].withUnsafeBytes { header in
                                            if let from = header.baseAddress { (into + at).copyMemory(from: from, byteCount: header.count) }
                                            at += header.count
                                        }
                                        var row = 0
                                        for piece in pieces {
                                            if piece.drawn >= 0 {
                                                next[family * stride + row] = UInt32(at)
                                                at += rows[piece.drawn].draw(
                                                    family: family, into: into + at, entries: entries, affixes: affixes)
                                                row += 1
                                            } else if let lastBody = lastBody.baseAddress, let from = offsets.baseAddress,
                                                let to = next.baseAddress
                                            {
                                                let source = from + family * lastStride + piece.first
                                                let runLength = piece.last - piece.first + 1
                                                let first = Int(source[0])
                                                let end = Int(source[runLength])
                                                (into + at).copyMemory(from: lastBody + lastStart + first, byteCount: end - first)
                                                // The run's rows keep their distances: each moves by the same amount (a loop the compiler vectorizes).
                                                let shift = UInt32(truncatingIfNeeded: at &- first)
                                                let target = to + family * stride + row
                                                for index in 0..<runLength { target[index] = source[index] &+ shift }
                                                row += runLength
                                                at += end - first
                                            }
                                        }
                                        next[family * stride + count] = UInt32(at)
                                    }
                                    return at
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The slots' values for `agent`, from `values[start]` on (nil: the series is not there).
    static func values(of agent: AgentMetrics, into values: inout [Double?], at start: Int) {
        for (offset, state) in AgentState.allCases.enumerated() { values[start + stateIndex + offset] = state == agent.state ? 1 : 0 }
        values[start + priorityIndex] = Double(agent.priority.rawValue)
        values[start + degradationIndex] = Double(DegradationLevel.allCases.firstIndex(of: agent.degradation) ?? 0)
        values[start + escalationIndex] = Double(agent.escalationStep)
        for (resource, index, scale) in limitIndex {
            guard let limit = agent.limits[resource] else { continue }
            if limit.soft > 0 { values[start + index] = limit.soft * scale }
            if limit.hard > 0 { values[start + index + 1] = limit.hard * scale }
        }
        guard let sample = agent.sample else { return }
        func seconds(_ microseconds: Int64) -> Double { Double(microseconds) / 1_000_000 }
        values[start + memoryUsageIndex] = sample.memoryCurrent.map(Double.init)
        values[start + workingSetIndex] = sample.workingSet.map(Double.init)
        values[start + processesIndex] = sample.pidsCurrent.map(Double.init)
        values[start + cpuUsageIndex] = seconds(sample.cpu.usageUsec)
        values[start + cpuPeriodsIndex] = sample.cpu.nrPeriods.map(Double.init)
        values[start + cpuThrottledPeriodsIndex] = sample.cpu.nrThrottled.map(Double.init)
        values[start + cpuThrottledSecondsIndex] = sample.cpu.throttledUsec.map(seconds)
        let events = sample.memoryEvents
        values[start + oomKillsIndex] = Double(events.oomKill)
        // Written out, not through an array literal: this runs per agent and scrape.
        let at = start + memoryEventsIndex
        values[at] = Double(events.low)
        values[at + 1] = Double(events.high)
        values[at + 2] = Double(events.max)
        values[at + 3] = Double(events.oom)
        values[at + 4] = Double(events.oomKill)
        values[at + 5] = Double(events.oomGroupKill)
        if let pressure = sample.pressure {
            let at = start + pressureIndex
            values[at] = pressure.cpuSome.map(seconds)
            values[at + 1] = pressure.cpuFull.map(seconds)
            values[at + 2] = pressure.memorySome.map(seconds)
            values[at + 3] = pressure.memoryFull.map(seconds)
            values[at + 4] = pressure.ioSome.map(seconds)
            values[at + 5] = pressure.ioFull.map(seconds)
        }
    }

    /// The most bytes `writeNumber` writes (Swift's longest `Double`
    /// description, "-2.2250738585072014e-308", is 24).
    static let longestNumber = 32

    /// A sample value as the text format writes it: whole numbers in digits,
    /// others in Swift's shortest round-trip form (which Prometheus parses),
    /// `+Inf`, `-Inf` and `NaN` as the format spells them.
    public static func appendNumber(_ value: Double, to buffer: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: longestNumber, alignment: 1) { scratch in
            guard let base = scratch.baseAddress else { return }
            let count = writeNumber(value, into: base)
            buffer.append(contentsOf: UnsafeRawBufferPointer(start: base, count: count))
        }
    }

    /// `appendNumber`'s text written at `out`, which has room for
    /// `longestNumber` bytes; returns how many it wrote.
    static func writeNumber(_ value: Double, into out: UnsafeMutableRawPointer) -> Int {
        func write(_ text: StaticString) -> Int {
            out.copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
            return text.utf8CodeUnitCount
        }
        if value.isNaN { return write("NaN") }
        if value.isInfinite { return value > 0 ? write("+Inf") : write("-Inf") }
        if value == value.rounded(.towardZero), abs(value) < 1e15 {
            var whole = Int64(value)
            var at = 0
            if whole < 0 {
                out.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self)
                at = 1
                whole = -whole
            }
            // Below 1e15: at most 15 digits, counted first, then written from the last.
            var digits = 1
            var rest = whole / 10
            while rest > 0 {
                digits += 1
                rest /= 10
            }
            var index = at + digits
            repeat {
                index -= 1
                out.storeBytes(of: UInt8(ascii: "0") + UInt8(whole % 10), toByteOffset: index, as: UInt8.self)
                whole /= 10
            } while whole > 0
            return at + digits
        }
        var text = value.description
        return text.withUTF8 { utf8 in
            let count = min(utf8.count, longestNumber)
            if let from = utf8.baseAddress { out.copyMemory(from: from, byteCount: count) }
            return count
        }
    }

    /// `text` with the format's escapes: backslash and line feed always, the double quote in label values.
    public static func appendEscaped(_ text: String, escapingQuotes: Bool, to buffer: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): buffer.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\"") where escapingQuotes: buffer.append(contentsOf: #"\""#.utf8)
            default: buffer.append(byte)
            }
        }
    }
}
