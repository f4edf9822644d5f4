import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralServer
import CorralTestSupport
import CorralWatcher
import Foundation
import NIOCore
import Synchronization
import Testing

/// The Prometheus exposition: every family with HELP and TYPE, the values
/// of the engine's latest sample with cAdvisor's meanings, the daemon's
/// counters and histograms, series that go with their agent, and what
/// promtool and the monitoring artefacts (deploy/prometheus, deploy/grafana) make of it.
@Suite struct MetricsTests {
    final class Clock: Sendable {
        let current = Mutex(Timestamp(milliseconds: 1_795_000_000_000))
        var now: Timestamp { current.withLock { $0 } }
        func advance(_ duration: Duration) { current.withLock { $0 = $0 + duration } }
    }

    struct Harness {
        let engine: Engine
        let metrics: DaemonMetrics
        let clock: Clock
        let fs: FakeCgroupFilesystem
    }

    static let root = CgroupPath(["metrics-corral"])

    static func withEngine(_ body: (Harness) async throws -> Void) async throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(root)
        let tree = CgroupTree(fs: fs, root: root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let clock = Clock()
        let metrics = DaemonMetrics(version: "9.9.9-test")
        let engine = Engine(
            configuration: .builtIn, tree: tree, store: MemoryStore(), instruments: metrics, clock: { clock.now })
        _ = try await engine.restore()
        defer { engine.hub.finishAll() }
        try await body(Harness(engine: engine, metrics: metrics, clock: clock, fs: fs))
    }

    /// A sample with every figure the metrics carry.
    static let sample = CgroupSample(
        memoryCurrent: 100 << 20, memoryEvents: MemoryEvents(low: 0, high: 7, max: 3, oom: 2, oomKill: 2, oomGroupKill: 0),
        cpu: CPUStat(
            usageUsec: 2_500_000, userUsec: 2_000_000, systemUsec: 500_000, nrPeriods: 40, nrThrottled: 12, throttledUsec: 750_000),
        pidsCurrent: 4, events: CgroupEvents(populated: true, frozen: false), inactiveFile: 30 << 20,
        pressure: PressureTotals(
            cpuSome: 1_500_000, cpuFull: 250_000, memorySome: 3_000_000, memoryFull: 1_000_000, ioSome: 500_000, ioFull: 0))

    /// name{labels} → value, from an exposition.
    static func series(_ text: String) -> [String: Double] {
        var result: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            result[String(line[..<space])] = value
        }
        return result
    }

    static func register(_ id: String, on engine: Engine, pid: Int32) async throws {
        _ = try await engine.register(id: id, group: "standard_agent", command: ["worker"], overrides: [:])
        _ = try await engine.attach(id: id, pid: pid)
    }

    @Test("every family has HELP and TYPE, and the values are the sample's with cAdvisor's meanings")
    func exposition() async throws {
        let child = try SleepingChild()
        defer { child.stop() }
        try await Self.withEngine { harness in
            try await Self.register("m1", on: harness.engine, pid: child.pid)
            // A kernel event over the hard limit: the ladder acts, which feeds the counters and histograms.
            await harness.engine.handle(
                .observation(
                    Observation(
                        subject: .agent("m1"), trigger: .event(.memoryEvents), at: harness.clock.now, seenAt: .now, sample: Self.sample,
                        readings: [UsageReading(resource: .memory, usage: 900_000_000, hitHard: true)], elapsed: .seconds(1))))
            harness.engine.waitForCommits()
            let text = harness.metrics.exposition(await harness.engine.metrics())
            let values = Self.series(text)
            for family in MetricFamily.all {
                #expect(text.contains("# HELP \(family.name) "), "no HELP for \(family.name)")
                #expect(text.contains("# TYPE \(family.name) \(family.kind.rawValue)\n"), "no TYPE for \(family.name)")
            }
            let agent = #"agent="m1",group="standard_agent""#
            #expect(values["corral_agent_memory_usage_bytes{\(agent)}"] == Double(100 << 20))
            #expect(values["corral_agent_memory_working_set_bytes{\(agent)}"] == Double(70 << 20))
            #expect(values["corral_agent_cpu_usage_seconds_total{\(agent)}"] == 2.5)
            #expect(values["corral_agent_cpu_periods_total{\(agent)}"] == 40)
            #expect(values["corral_agent_cpu_throttled_periods_total{\(agent)}"] == 12)
            #expect(values["corral_agent_cpu_throttled_seconds_total{\(agent)}"] == 0.75)
            #expect(values["corral_agent_oom_kills_total{\(agent)}"] == 2)
            #expect(values[#"corral_agent_memory_events_total{\#(agent),event="high"}"#] == 7)
            #expect(values["corral_agent_processes{\(agent)}"] == 4)
            #expect(values["corral_agent_pressure_memory_waiting_seconds_total{\(agent)}"] == 3)
            #expect(values["corral_agent_pressure_memory_stalled_seconds_total{\(agent)}"] == 1)
            #expect(values["corral_agent_pressure_cpu_waiting_seconds_total{\(agent)}"] == 1.5)
            #expect(values["corral_agent_pressure_io_stalled_seconds_total{\(agent)}"] == 0)
            let limits = try #require(await harness.engine.status(of: "m1").agent.limits[.memory])
            #expect(values[#"corral_agent_memory_limit_bytes{\#(agent),kind="hard"}"#] == limits.hard)
            #expect(values[#"corral_agent_memory_limit_bytes{\#(agent),kind="soft"}"#] == limits.soft)
            #expect(values[#"corral_agent_state{\#(agent),state="running"}"#] == 1)
            #expect(values[#"corral_agent_state{\#(agent),state="suspended"}"#] == 0)
            #expect(values["corral_agent_priority{\(agent)}"] == 5)
            #expect((values["corral_agent_escalation_step{\(agent)}"] ?? 0) >= 1, "the ladder acted on the crossing")
            #expect(values[#"corral_agents{state="running"}"#] == 1)
            #expect(values[#"corral_agents_sampled{cadence="active"}"#] == 1 && values[#"corral_agents_sampled{cadence="idle"}"#] == 0)
            #expect(values[#"corral_build_info{version="9.9.9-test"}"#] == 1)
            let actions = values.filter { $0.key.hasPrefix("corral_enforcement_actions_total{") }
            #expect(!actions.isEmpty && actions.keys.allSatisfy { $0.contains(#"resource="memory""#) }, "\(actions)")
            // The crossing woke the watcher through memory.events; every trigger has its series.
            #expect((values[#"corral_reaction_seconds_count{trigger="memory.events",kind="crossing"}"#] ?? 0) >= 1)
            for trigger in ReactionTrigger.labels {
                for kind in ["crossing", "step"] {
                    #expect(values[#"corral_reaction_seconds_count{trigger="\#(trigger)",kind="\#(kind)"}"#] != nil)
                }
            }
            #expect((values["corral_store_commit_seconds_count"] ?? 0) >= 1)
            #expect((values[#"corral_host_capacity_memory_bytes{kind="allocatable"}"#] ?? 0) > 0)

            // promtool's lint finds nothing; the alert rules and the dashboard name only families that exist.
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("corral-metrics-\(UUID().uuidString).prom")
            try text.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let promtool = try #require(
                ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) },
                "promtool is needed to lint the exposition: run scripts/setup (apt package prometheus)")
            let path = file.path
            let lint = try await Subprocess.execute("/bin/sh", ["-c", "\"$0\" check metrics < \"$1\"", promtool, path])
            #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool check metrics: \(lint)")
            let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            let checker = repository.appendingPathComponent("scripts/check-monitoring").path
            let check = try await Subprocess.execute(checker, ["--exposition", path], timeout: 120)
            #expect(check.status == 0, "scripts/check-monitoring: \(check)")
        }
    }

    @Test("an agent's kept lines are the same text while its values stay, and show new values at the next scrape")
    func keptLinesFollowTheValues() async throws {
        let child = try SleepingChild()
        defer { child.stop() }
        try await Self.withEngine { harness in
            try await Self.register("k1", on: harness.engine, pid: child.pid)
            func feed(_ sample: CgroupSample) async {
                await harness.engine.handle(
                    .observation(
                        Observation(
                            subject: .agent("k1"), trigger: .sample, at: harness.clock.now, seenAt: .now, sample: sample, readings: [],
                            elapsed: .seconds(1))))
            }
            await feed(Self.sample)
            let agent = #"agent="k1",group="standard_agent""#
            let first = harness.metrics.exposition(await harness.engine.metrics())
            let again = harness.metrics.exposition(await harness.engine.metrics())
            #expect(first == again, "nothing changed between the scrapes")
            #expect(Self.series(first)["corral_agent_memory_usage_bytes{\(agent)}"] == Double(100 << 20))
            // A body still held (a response being sent) keeps its text when the next scrape writes.
            let held = try #require(harness.metrics.expositionBuffer(await harness.engine.metrics()))

            var moved = Self.sample
            moved.memoryCurrent = 200 << 20
            moved.cpu.usageUsec = 3_250_000
            await feed(moved)
            var values = Self.series(harness.metrics.exposition(await harness.engine.metrics()))
            #expect(values["corral_agent_memory_usage_bytes{\(agent)}"] == Double(200 << 20))
            #expect(values["corral_agent_cpu_usage_seconds_total{\(agent)}"] == 3.25)
            #expect(String(buffer: held) == first, "the held body is not written over")

            // A counter lower than shown (a cgroup made again under the name) is written as it is: Prometheus reads a reset.
            var reset = moved
            reset.cpu.usageUsec = 1_000
            reset.memoryEvents = MemoryEvents()
            await feed(reset)
            values = Self.series(harness.metrics.exposition(await harness.engine.metrics()))
            #expect(values["corral_agent_cpu_usage_seconds_total{\(agent)}"] == 0.001)
            #expect(values["corral_agent_oom_kills_total{\(agent)}"] == 0)
        }
    }

    @Test("an agent registered after a scrape is in the next one, and one removed is gone from it")
    func agentsComingAndGoingBetweenScrapes() async throws {
        let child = try SleepingChild()
        defer { child.stop() }
        try await Self.withEngine { harness in
            #expect(!harness.metrics.exposition(await harness.engine.metrics()).contains(#"agent="late""#))
            try await Self.register("late", on: harness.engine, pid: child.pid)
            #expect(await harness.engine.metrics().agents.map(\.id) == ["late"])
            #expect(harness.metrics.exposition(await harness.engine.metrics()).contains(#"agent="late""#))
            try await harness.engine.remove("late", force: true)
            #expect(await harness.engine.metrics().agents.isEmpty)
        }
    }

    @Test("with several agents, the kept texts give each family's lines together, the same text a fresh render gives")
    func keptTextsOfSeveralAgents() async throws {
        let children = try (0..<3).map { _ in try SleepingChild() }
        defer { for child in children { child.stop() } }
        try await Self.withEngine { harness in
            func feed(_ id: String, _ sample: CgroupSample) async {
                await harness.engine.handle(
                    .observation(
                        Observation(
                            subject: .agent(id), trigger: .sample, at: harness.clock.now, seenAt: .now, sample: sample, readings: [],
                            elapsed: .seconds(1))))
            }
            for (index, child) in children.enumerated() {
                try await Self.register("s\(index)", on: harness.engine, pid: child.pid)
                var sample = Self.sample
                sample.memoryCurrent = Int64(index + 1) << 20
                await feed("s\(index)", sample)
            }
            _ = harness.metrics.exposition(await harness.engine.metrics())
            // One agent's values move; the others' kept texts are copied as they are.
            var moved = Self.sample
            moved.memoryCurrent = 123_456_789
            moved.cpu.usageUsec = 9_876_543
            await feed("s1", moved)
            let snapshot = await harness.engine.metrics()
            let kept = harness.metrics.exposition(snapshot)
            let fresh = DaemonMetrics(version: "9.9.9-test").exposition(snapshot)
            // (The daemon's own series differ: the engine's commits and actions went to `harness.metrics`.)
            func agentLines(_ text: String) -> [Substring] { text.split(separator: "\n").filter { $0.contains(#"{agent=""#) } }
            #expect(agentLines(kept).count == agentLines(fresh).count && agentLines(kept).count > 100)
            #expect(agentLines(kept) == agentLines(fresh), "the kept texts give what a first scrape of the same snapshot gives")
            let values = Self.series(kept)
            #expect(values[#"corral_agent_memory_usage_bytes{agent="s1",group="standard_agent"}"#] == 123_456_789)
            #expect(values[#"corral_agent_memory_usage_bytes{agent="s2",group="standard_agent"}"#] == Double(3 << 20))
            // Each family: its HELP and TYPE, then all of its lines, every agent's, before the next family.
            var seen = Set<String>()
            var current = ""
            for line in kept.split(separator: "\n") {
                if line.hasPrefix("# HELP ") {
                    current = String(line.dropFirst(7).prefix { $0 != " " })
                    #expect(seen.insert(current).inserted, "\(current) has one HELP line")
                    continue
                }
                if line.hasPrefix("#") { continue }
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                let family = ["_bucket", "_sum", "_count"].reduce(name) { name, suffix in
                    name.hasSuffix(suffix) && name != current ? String(name.dropLast(suffix.count)) : name
                }
                #expect(family == current, "\(line) is under \(current)'s HELP")
            }
            for family in ["corral_agent_memory_usage_bytes", "corral_agent_state", "corral_agent_pressure_io_stalled_seconds_total"] {
                let lines = kept.split(separator: "\n").filter { $0.hasPrefix("\(family){") }
                #expect(lines.count == (family == "corral_agent_state" ? 3 * AgentState.allCases.count : 3), "\(family): \(lines)")
            }
        }
    }

    @Test("a scrape asks only for the agents changed since the last one it wrote; the text is what a full snapshot gives")
    func scrapesAskOnlyForChangedAgents() async throws {
        let children = try (0..<4).map { _ in try SleepingChild() }
        defer { for child in children { child.stop() } }
        try await Self.withEngine { harness in
            func feed(_ id: String, memory: Int64) async {
                var sample = Self.sample
                sample.memoryCurrent = memory
                await harness.engine.handle(
                    .observation(
                        Observation(
                            subject: .agent(id), trigger: .sample, at: harness.clock.now, seenAt: .now, sample: sample, readings: [],
                            elapsed: .seconds(1))))
            }
            func agentLines(_ text: String) -> [Substring] { text.split(separator: "\n").filter { $0.contains(#"{agent=""#) } }
            func fullRender() async -> [Substring] {
                agentLines(DaemonMetrics(version: "9.9.9-test").exposition(await harness.engine.metrics()))
            }
            for (index, child) in children.enumerated() {
                try await Self.register("u\(index)", on: harness.engine, pid: child.pid)
                await feed("u\(index)", memory: Int64(index + 1) << 20)
            }
            let first = String(buffer: await harness.metrics.scrape(harness.engine))
            #expect(agentLines(first) == (await fullRender()))

            // Nothing changed: every agent comes as unchanged, and the text is the same.
            let mark = try #require(await harness.engine.metrics().generationMark)
            let quiet = await harness.engine.metrics(drawnThrough: mark)
            #expect(quiet.agents.allSatisfy(\.unchanged) && quiet.agents.count == 4)
            #expect(agentLines(String(buffer: await harness.metrics.scrape(harness.engine))) == agentLines(first))

            // One agent moves: only it comes in full, and the text shows its new value.
            await feed("u2", memory: 987_654_321)
            let moved = await harness.engine.metrics(drawnThrough: mark)
            #expect(moved.agents.filter { !$0.unchanged }.map(\.id) == ["u2"])
            let second = String(buffer: await harness.metrics.scrape(harness.engine))
            #expect(agentLines(second) == (await fullRender()))
            #expect(Self.series(second)[#"corral_agent_memory_usage_bytes{agent="u2",group="standard_agent"}"#] == 987_654_321)

            // One goes and one comes between scrapes: the order shifts, and the text still matches.
            try await harness.engine.remove("u0", force: true)
            let late = try SleepingChild()
            defer { late.stop() }
            try await Self.register("u9", on: harness.engine, pid: late.pid)
            let third = String(buffer: await harness.metrics.scrape(harness.engine))
            #expect(agentLines(third) == (await fullRender()))
            #expect(!third.contains(#"agent="u0""#) && third.contains(#"agent="u9""#))

            // A snapshot marked against lines this exposition never drew (another's mark):
            // refused, not written with agents missing; a scrape then takes a full one.
            let stranger = DaemonMetrics(version: "9.9.9-test")
            let latest: UInt64 = try #require(await harness.engine.metrics().generationMark)
            let unchangedOnly = await harness.engine.metrics(drawnThrough: latest)
            #expect(stranger.expositionBuffer(unchangedOnly) == nil)
            #expect(agentLines(String(buffer: await stranger.scrape(harness.engine))) == (await fullRender()))
        }
    }

    @Test("an agent drawn again in a scrape that was refused is drawn again in the next, not copied stale from the last body")
    func aRefusedScrapeLeavesNoStaleLines() throws {
        func agent(_ id: String, memory: Int64, generation: UInt64) -> AgentMetrics {
            var sample = Self.sample
            sample.memoryCurrent = memory
            return AgentMetrics(
                id: id, group: "standard_agent", state: .running, priority: .standard, limits: LimitSet(), sample: sample,
                degradation: .none, escalationStep: 0, generation: generation)
        }
        func snapshot(_ agents: [AgentMetrics], mark: UInt64) -> MetricsSnapshot {
            MetricsSnapshot(
                agents: agents, states: [.running: agents.count], capacity: CapacityReport(resources: [], admission: .refuse),
                generationMark: mark)
        }
        func memory(_ buffer: ByteBuffer?) -> [String: Double] {
            Self.series(String(buffer: buffer ?? ByteBuffer())).filter { $0.key.hasPrefix("corral_agent_memory_usage_bytes") }
        }
        let metrics = DaemonMetrics(version: "9.9.9-test")
        let first = snapshot([agent("a", memory: 1 << 20, generation: 1), agent("b", memory: 2 << 20, generation: 2)], mark: 2)
        #expect(memory(metrics.expositionBuffer(first)).count == 2)
        // `a` moved, and `c` comes as unchanged though it was never drawn: refused, after `a` was drawn again.
        let refused = snapshot(
            [agent("a", memory: 5 << 20, generation: 3), .unchanged(id: "c", group: "standard_agent", state: .running, generation: 4)],
            mark: 4)
        #expect(metrics.expositionBuffer(refused) == nil)
        // The full snapshot after it: `a` at its generation 3 again, which the last body shows at 1 MiB.
        let full = snapshot([agent("a", memory: 5 << 20, generation: 3), agent("b", memory: 2 << 20, generation: 2)], mark: 4)
        let text = try #require(metrics.expositionBuffer(full))
        #expect(memory(text)[#"corral_agent_memory_usage_bytes{agent="a",group="standard_agent"}"#] == Double(5 << 20))
        #expect(memory(text)[#"corral_agent_memory_usage_bytes{agent="b",group="standard_agent"}"#] == Double(2 << 20))
        func agentLines(_ text: String) -> [Substring] { text.split(separator: "\n").filter { $0.contains(#"{agent=""#) } }
        #expect(agentLines(String(buffer: text)) == agentLines(DaemonMetrics(version: "9.9.9-test").exposition(full)))
        // And b alone moving next: a's and b's lines from the last body and the arena, in order.
        let next = snapshot(
            [
                .unchanged(id: "a", group: "standard_agent", state: .running, generation: 3), agent("b", memory: 7 << 20, generation: 5),
            ], mark: 5)
        let after = try #require(metrics.expositionBuffer(next))
        #expect(memory(after)[#"corral_agent_memory_usage_bytes{agent="a",group="standard_agent"}"#] == Double(5 << 20))
        #expect(memory(after)[#"corral_agent_memory_usage_bytes{agent="b",group="standard_agent"}"#] == Double(7 << 20))
    }

    @Test("the histograms' text is kept between scrapes while they do not change, and written again when one does")
    func histogramTextFollowsObservations() async throws {
        try await Self.withEngine { harness in
            let metrics = harness.metrics
            func count(_ series: String) async -> Double? { Self.series(metrics.exposition(await harness.engine.metrics()))[series] }
            let commits = "corral_store_commit_seconds_count"
            let reactions = #"corral_reaction_seconds_count{trigger="pids.events",kind="step"}"#
            let commitsBefore = try #require(await count(commits))
            let reactionsBefore = try #require(await count(reactions))
            #expect(await count(commits) == commitsBefore, "nothing observed between the scrapes")
            metrics.committed(in: .milliseconds(3))
            #expect(await count(commits) == commitsBefore + 1)
            let now = ContinuousClock.now
            metrics.reacted(
                ReactionTiming(woke: now, read: now, dequeued: nil, entered: now, done: now), to: "pids.events", crossing: false)
            #expect(await count(reactions) == reactionsBefore + 1)
            #expect(await count(commits) == commitsBefore + 1)
        }
    }

    @Test("sample values in the text format: whole numbers in digits, the rest round-trip, infinities and NaN as Prometheus spells them")
    func numbers() {
        let cases: [(Double, String)] = [
            (0, "0"), (42, "42"), (-7, "-7"), (104_857_600, "104857600"), (2.5, "2.5"), (0.001, "0.001"), (1e20, "1e+20"),
            (.infinity, "+Inf"), (-.infinity, "-Inf"), (.nan, "NaN"), (9_007_199_254_740_992, "9007199254740992.0"),
        ]
        for (value, text) in cases {
            var buffer: [UInt8] = []
            AgentExposition.appendNumber(value, to: &buffer)
            let written = String(decoding: buffer, as: UTF8.self)
            #expect(written == text, "\(value)")
            if value.isFinite { #expect(Double(written) == value, "\(written) reads back as \(value)") }
        }
        var label: [UInt8] = []
        AgentExposition.appendEscaped("a\"b\\c\nd", escapingQuotes: true, to: &label)
        #expect(String(decoding: label, as: UTF8.self) == #"a\"b\\c\nd"#)
    }

    @Test("a removed agent's series go at the next scrape; an ended one's stay for the retention, then go")
    func seriesFollowTheAgents() async throws {
        let first = try SleepingChild()
        let second = try SleepingChild()
        defer {
            first.stop()
            second.stop()
        }
        try await Self.withEngine { harness in
            try await Self.register("keep", on: harness.engine, pid: first.pid)
            try await Self.register("done", on: harness.engine, pid: second.pid)
            _ = try await harness.engine.finished("done", exitStatus: 0, reason: nil)
            var text = harness.metrics.exposition(await harness.engine.metrics())
            #expect(text.contains(#"corral_agent_state{agent="done",group="standard_agent",state="exited"} 1"#))
            #expect(Self.series(text)[#"corral_agents{state="exited"}"#] == 1)

            harness.clock.advance(Engine.endedRetention + .seconds(1))
            text = harness.metrics.exposition(await harness.engine.metrics())
            #expect(!text.contains(#"agent="done""#), "an agent ended longer ago than the retention has no series")
            #expect(text.contains(#"agent="keep""#))

            try await harness.engine.remove("keep", force: true)
            text = harness.metrics.exposition(await harness.engine.metrics())
            #expect(!text.contains(#"agent="keep""#), "a removed agent has no series")
            #expect(Self.series(text)[#"corral_agents{state="running"}"#] == 0)
        }
    }
}

/// `corrald --metrics-address`: what it accepts, and what it says about the rest.
@Suite struct MetricsAddressTests {
    @Test("HOST:PORT, a bracketed IPv6 address or a name")
    func valid() throws {
        #expect(try MetricsAddress(parsing: "127.0.0.1:9464") == MetricsAddress(host: "127.0.0.1", port: 9464))
        #expect(try MetricsAddress(parsing: "[::1]:9464") == MetricsAddress(host: "::1", port: 9464))
        #expect(try MetricsAddress(parsing: "localhost:1") == MetricsAddress(host: "localhost", port: 1))
        #expect(MetricsAddress(host: "::1", port: 9464).description == "[::1]:9464")
    }

    @Test(
        "a bad value names itself and the fix",
        arguments: [
            ("9464", "has no port"), (":9464", "has no host"), ("127.0.0.1:", "from 1 to 65535"), ("127.0.0.1:0", "from 1 to 65535"),
            ("127.0.0.1:70000", "from 1 to 65535"), ("127.0.0.1:http", "from 1 to 65535"), ("::1:9464", "goes in brackets"),
        ])
    func invalid(text: String, says: String) {
        do {
            _ = try MetricsAddress(parsing: text)
            Issue.record("'\(text)' was accepted")
        } catch {
            #expect(error.description.contains("'\(text)'") && error.description.contains(says), "\(error.description)")
        }
    }

    @Test("a port another process listens on, or an address not of this host, is said before the daemon starts")
    func unbindable() throws {
        // A listener of our own on an ephemeral port.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        #expect(bound && listen(fd, 1) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        #expect(throws: DaemonError.self) { try MetricsAddress(host: "127.0.0.1", port: port).checkBindable() }
        do {
            try MetricsAddress(host: "127.0.0.1", port: port).checkBindable()
        } catch {
            #expect(error.description.contains("another process listens there"), "\(error.description)")
        }
        do {
            try MetricsAddress(host: "192.0.2.1", port: 9464).checkBindable()
            Issue.record("an address of no interface was accepted")
        } catch {
            #expect(error.description.contains("not one of this host's"), "\(error.description)")
        }
    }
}
