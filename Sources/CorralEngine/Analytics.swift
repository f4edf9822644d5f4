public import CorralAPI
public import CorralCore

extension Engine {
    /// Samples kept per resource: the analytics window at the sampling interval.
    var ringCapacity: Int {
        let window = configuration.intervals.analyticsWindow.seconds
        let interval = max(configuration.intervals.sampling.seconds, 0.05)
        return max(60, Int((window / interval).rounded(.up)))
    }

    /// Minutes of hard-limit event counts each ring keeps: the window's, plus one.
    var eventMinutes: Int { Int((configuration.intervals.analyticsWindow.seconds / 60).rounded(.up)) + 1 }

    /// The most a ring takes (README: bytes per agent are this times the
    /// agent's limited resources, at most `Resource.allCases.count`).
    public var ringBytes: Int { UsageRing.bytes(capacity: ringCapacity, eventMinutes: eventMinutes) }

    /// Bytes the live agents' rings hold now (their sample and event slots).
    public func ringBytesInUse() -> Int {
        var total = 0
        for id in registry.ids { total += registry.update(id) { $0.rings.values.reduce(0) { $0 + $1.bytes } } ?? 0 }
        return total
    }

    /// Keeps readings for analytics, of the resources the agent has a limit
    /// for (the others get no recommendation; their rings would only cost
    /// memory): into the ring at most once per sampling interval (event
    /// storms do not shorten the window), into the minute being folded, and
    /// the kernel's hard-limit counters of memory and processes (counted per
    /// minute, bounded whatever the rate).
    func remember(_ readings: [UsageReading], of agent: inout ManagedAgent, at now: Timestamp) {
        let spacing = Int64(configuration.intervals.sampling.seconds * 900)  // 90% of the interval, in ms
        let limits = agent.record.limits
        if agent.rings.keys.contains(where: { limits[$0] == nil }) {
            // A limit was removed: so is what was kept for it.
            agent.rings = agent.rings.filter { limits[$0.key] != nil }
            agent.minutes = agent.minutes.filter { limits[$0.key] != nil }
        }
        for reading in readings where limits[reading.resource] != nil {
            let resource = reading.resource
            // Mutated in place (a copy of the ring would copy its samples).
            if agent.rings[resource] == nil {
                agent.rings[resource] = UsageRing(
                    capacity: ringCapacity, window: configuration.intervals.analyticsWindow, eventMinutes: eventMinutes)
            }
            if let sample = agent.latest, let counter = Self.hardLimitCounter(resource, in: sample) {
                agent.rings[resource]!.recordHardLimitCounter(counter, at: now)
            }
            if agent.rings[resource]!.newest.map({ now.milliseconds - $0.milliseconds >= spacing }) ?? true {
                agent.rings[resource]!.append(reading.usage, at: now)
                if let minute = agent.minutes[resource, default: MinuteAccumulator()].add(
                    reading.usage, at: now, agent: agent.record.id, resource: resource)
                {
                    pendingMinutes.append(minute)
                }
            }
        }
    }

    /// The kernel's cumulative count of `resource` stopped at its hard limit:
    /// memory.events max (memory.max reached) plus oom_kill, pids.events max
    /// (forks refused at pids.max). CPU throttling is the limit working, not
    /// the limit being too small: none.
    static func hardLimitCounter(_ resource: Resource, in sample: CgroupSample) -> Int64? {
        switch resource {
        case .memory: sample.memoryEvents.max + sample.memoryEvents.oomKill
        case .processes: sample.pidsEvents.max
        default: nil
        }
    }

    /// From `tick`: stores finished minutes every 10 s (pruning what is older
    /// than `intervals.history_retention`) and runs the analysis when due.
    /// Both run on the background queue: the engine never waits for them.
    func analyticsDuties(at now: Timestamp) {
        if !pendingMinutes.isEmpty, lastMinuteFlush.map({ now - $0 >= .seconds(10) }) ?? true {
            lastMinuteFlush = now
            storePendingMinutes(at: now)
        }
        guard let due = nextAnalytics else {
            nextAnalytics = now + configuration.intervals.analytics
            return
        }
        if now >= due {
            nextAnalytics = now + configuration.intervals.analytics
            let job = analyticsJob(at: now)
            writer.later { _ = job.run() }
        }
    }

    static let minutesPerTransaction = 20

    /// Hands the finished minutes to the background queue.
    func storePendingMinutes(at now: Timestamp) {
        guard !pendingMinutes.isEmpty else { return }
        let minutes = pendingMinutes
        pendingMinutes.removeAll()
        let store = writer.store  // minutes never wait for the steps' commits
        let events = events
        let pruneBefore = now + (Duration.zero - configuration.intervals.historyRetention)
        // Small transactions: the engine's commits wait for SQLite's write
        // lock while one runs (a minute of 200 agents is 600 rows).
        let chunks = stride(from: 0, to: minutes.count, by: Self.minutesPerTransaction).map {
            Array(minutes[$0..<min($0 + Self.minutesPerTransaction, minutes.count)])
        }
        for (index, chunk) in chunks.enumerated() {
            let last = index == chunks.count - 1
            writer.later {
                do {
                    try store.record(minutes: chunk, pruneBefore: last ? pruneBefore : nil)
                } catch {
                    events.publish(.daemon, agent: nil, EventText.minutesNotStored(chunk.count, error))
                }
            }
        }
    }

    /// Waits until every queued step is committed, stores the finished
    /// minutes and waits until everything handed to the background queue is
    /// done (graceful stop, before the store closes; tests).
    public func settle() async {
        _ = await writer.settledStore()
        storePendingMinutes(at: clock())
        await writer.settle()
    }

    /// Classifies every live agent's usage over the analytics window and
    /// replaces its recommendations (each agent's own only). Returns them all.
    /// The engine only copies the samples (copy-on-write: no bytes move); the
    /// analysis runs on the background queue while the engine goes on.
    @discardableResult
    public func runAnalytics() async -> [Recommendation] {
        let job = analyticsJob(at: clock())
        let writer = writer
        return await withCheckedContinuation { (done: CheckedContinuation<[Recommendation], Never>) in
            writer.later { done.resume(returning: job.run()) }
        }
    }

    /// What the analysis needs, taken from the live agents at `now`.
    func analyticsJob(at now: Timestamp) -> AnalyticsJob {
        var agents: [AnalyticsJob.Agent] = []
        for (id, agent) in registry.live {
            agents.append(
                AnalyticsJob.Agent(
                    id: id, group: agent.record.group, limits: agent.record.limits,
                    rings: agent.rings.sorted { $0.key < $1.key }))
        }
        return AnalyticsJob(
            agents: agents, groups: configuration.groups.values.sorted { $0.name < $1.name },
            interval: configuration.intervals.sampling, since: now + (Duration.zero - configuration.intervals.analyticsWindow),
            now: now, store: writer.store, events: events)
    }

    /// The stored recommendations of `agent` (of every agent when nil). Only
    /// agents the store knows have any: an unknown `agent` is `notFound`, and
    /// a removed agent's are not shown even if a run racing the removal
    /// stored some.
    public func recommendations(agent: String?) async throws -> [Recommendation] {
        let store = await writer.settledStore()
        let known = Set(try store.agents().map(\.id))
        if let agent, !known.contains(agent) { throw Self.noSuchAgent(agent) }
        return try store.recommendations(agent: agent).filter { known.contains($0.agent) }
    }

    /// "No such agent", with where to find the agents.
    static func noSuchAgent(_ id: String) -> EngineError {
        EngineError(.notFound, "no agent '\(id)'; corral agents list shows the agents (--all: those that ended too)")
    }

    /// Applies `agent`'s recommendation for `resource` (an increase or a
    /// decrease) as a quota override, through the normal path.
    public func applyRecommendation(agent id: String, resource: Resource) async throws -> AgentRecord {
        let agent = try registry.live(id)
        guard
            let recommendation = try await writer.settledStore().recommendations(agent: id).first(where: {
                $0.resource == resource && ($0.kind == .increaseQuota || $0.kind == .decreaseQuota)
            }), let suggested = recommendation.suggested
        else {
            throw EngineError(.notFound, "no increase or decrease recommended for \(resource.rawValue) of \(id) (corral recommend \(id))")
        }
        var overrides = agent.record.overrides
        overrides[resource] = LimitOverride(soft: suggested.soft, hard: suggested.hard)
        return try await setOverrides(id, overrides)
    }

    /// Usage of `agent` (or every agent with samples) since `since`: from
    /// the in-memory samples when they reach back that far, else from the
    /// minute history.
    public func report(agent filter: String?, since: Timestamp) async throws -> UsageReport {
        let now = clock()
        var reports: [AgentReport] = []
        let store = await writer.settledStore()
        let records = try store.agents()
        for record in records where filter == nil || record.id == filter {
            let managed = registry[record.id]
            guard managed != nil || filter != nil || record.state.isLive else { continue }
            var resources: [ResourceReport] = []
            let minutes = try store.usageMinutes(agent: record.id, since: since)
            for resource in Set(record.limits.resources).union(managed?.rings.keys.map { $0 } ?? []).sorted() {
                let limit = record.limits[resource]
                var samples: [(Timestamp, Double)] = []
                var interval = configuration.intervals.sampling
                var source = "samples"
                let ownMinutes = minutes.filter { $0.resource == resource }
                // The samples, unless the minute history reaches clearly further back (over two minutes more).
                if let ring = managed?.rings[resource], let oldest = ring.oldest,
                    oldest <= since || (ownMinutes.first.map { oldest - $0.minute <= .seconds(120) } ?? true)
                {
                    samples = ring.filled(since: since, interval: interval, limit: ringCapacity)
                } else {
                    samples = ownMinutes.map { ($0.minute, $0.peak) }
                    interval = .seconds(60)
                    source = "minutes (peaks)"
                }
                guard !samples.isEmpty else { continue }
                let values = samples.map(\.1)
                let analysis = PatternClassifier.analyze(values, interval: interval)
                let soft = limit?.soft ?? .infinity
                let hard = limit?.hard ?? .infinity
                resources.append(
                    ResourceReport(
                        resource: resource, unit: resource.unit, soft: limit?.soft ?? 0, hard: limit?.hard ?? 0,
                        statistics: analysis.statistics, pattern: analysis.pattern, confidence: analysis.confidence,
                        secondsOverSoft: Double(values.filter { $0 > soft }.count) * interval.seconds,
                        secondsOverHard: Double(values.filter { $0 >= hard }.count) * interval.seconds, source: source,
                        points: Self.chartPoints(samples)))
            }
            let history = try store.history(agent: record.id, since: since, afterID: nil, limit: 10_000)
            var actions: [String: Int] = [:]
            for entry in history { actions[entry.action.rawValue, default: 0] += 1 }
            reports.append(
                AgentReport(
                    agent: record.id, group: record.group, state: record.state, resources: resources, actions: actions,
                    events: history.map { ReportEvent(at: $0.at, resource: $0.resource, action: $0.action, succeeded: $0.succeeded) },
                    recommendations: try store.recommendations(agent: record.id)))
        }
        if let filter, reports.isEmpty { throw Self.noSuchAgent(filter) }
        return UsageReport(generatedAt: now, since: since, agents: reports)
    }

    /// At most ~240 points: the peak of each stretch, at its start.
    static func chartPoints(_ samples: [(Timestamp, Double)]) -> [ReportPoint] {
        let stride = max(1, (samples.count + 239) / 240)
        return Swift.stride(from: 0, to: samples.count, by: stride).map { start in
            let slice = samples[start..<min(start + stride, samples.count)]
            return ReportPoint(at: slice.first!.0, value: slice.map(\.1).max() ?? 0)
        }
    }
}

/// One analysis run, detached from the engine: the samples (rings shared
/// copy-on-write), the groups, and where the results go.
struct AnalyticsJob: Sendable {
    struct Agent: Sendable {
        var id: String
        var group: String
        var limits: LimitSet
        var rings: [(key: Resource, value: UsageRing)]
    }

    var agents: [Agent]
    var groups: [QuotaGroup]
    var interval: Duration
    var since: Timestamp
    var now: Timestamp
    /// Samples in the window at `interval` (the most a filled series holds).
    var window: Int { max(1, Int(((now - since).seconds / max(interval.seconds, 0.001)).rounded(.up))) }
    var store: any EngineStore
    var events: EventPublisher

    /// Classifies, recommends, stores each agent's recommendations (replacing
    /// only its own) and publishes them. Returns them all.
    func run() -> [Recommendation] {
        var all: [Recommendation] = []
        for agent in agents {
            let usage = agent.rings.map { resource, ring in
                ResourceUsage(
                    resource: resource, values: ring.filled(since: since, interval: interval, limit: window).map(\.1), interval: interval,
                    hardLimitEvents: ring.hardLimitEvents(since: since))
            }
            let recommendations = Recommender.recommend(
                agent: agent.id, group: agent.group, limits: agent.limits, usage: usage, groups: groups, at: now)
            do {
                try store.replaceRecommendations(agent: agent.id, with: recommendations)
            } catch {
                events.publish(.daemon, agent: agent.id, EventText.recommendationsNotStored(agent.id, error))
            }
            if !recommendations.isEmpty {
                events.publish(.recommendation, agent: agent.id, EventText.recommendations(agent.id, recommendations))
            }
            all += recommendations
        }
        return all
    }
}
