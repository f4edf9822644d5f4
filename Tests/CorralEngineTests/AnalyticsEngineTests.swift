import CorralAPI
import CorralCore
import CorralEngine
import CorralTestSupport
import Foundation
import Testing

@Suite("Engine: analytics from observed samples")
struct AnalyticsEngineTests {
    static var configuration: CorralConfiguration {
        var configuration = EngineHarness.quickConfiguration
        configuration.intervals.analyticsWindow = .seconds(600)
        return configuration
    }

    @Test("a growing agent gets an increase, an idle one a decrease; each keeps its own; the report and minutes follow")
    func growingAndIdle() async throws {
        let harness = try EngineHarness(configuration: Self.configuration)
        _ = try await harness.start()
        try await harness.agent("grow")
        try await harness.agent("idle")
        for second in 0..<600 {
            harness.clock.advance(.seconds(1))
            await harness.observe("grow", [.memory: 120_000_000 + Double(second) * 200_000])  // 120 → 240 MB
            await harness.observe("idle", [.memory: 10_000_000 + Double(second % 7) * 10_000])
        }
        let made = await harness.engine.runAnalytics()
        let grow = try await harness.engine.recommendations(agent: "grow")
        let idle = try await harness.engine.recommendations(agent: "idle")
        #expect(grow.contains { $0.kind == .increaseQuota && $0.resource == .memory && $0.pattern == .growing })
        #expect(idle.contains { $0.kind == .decreaseQuota && $0.resource == .memory })
        #expect(made.count == grow.count + idle.count)
        #expect(harness.events("grow").contains { $0.kind == .recommendation })

        // Applying the decrease goes through the normal override path.
        let applied = try await harness.engine.applyRecommendation(agent: "idle", resource: .memory)
        let suggested = try #require(idle.first { $0.kind == .decreaseQuota }?.suggested)
        #expect(applied.limits[.memory]?.soft == suggested.soft)
        #expect(harness.fs.value(.memoryHigh, at: harness.leaf("standard_agent", "idle")) == String(Int64(suggested.soft)))
        await #expect(throws: EngineError.self) { try await harness.engine.applyRecommendation(agent: "idle", resource: .cpu) }

        // The report: statistics, pattern, time over the soft limit (200 MB from second 400 on), chart points.
        let report = try await harness.engine.report(agent: "grow", since: harness.clock.now + .seconds(-600))
        let memory = try #require(report.agents.first?.resources.first { $0.resource == .memory })
        #expect(memory.pattern == .growing)
        #expect(memory.statistics.count == 600)
        #expect(abs(memory.secondsOverSoft - 199) <= 2)
        #expect(memory.points.count <= 240 && memory.points.count >= 200)
        #expect(memory.source == "samples")

        // The HTML report, rendered by headless Chromium: the DOM has one marker per event, every chart point and
        // the limit lines; the screenshot has the lines and exactly the markers' pixels. The idle agent's chart has
        // no event: no marker there, in the DOM or in the pixels (rendered alone, a negative control).
        let idleReport = try await harness.engine.report(agent: "idle", since: harness.clock.now + .seconds(-600))
        var withActions = report
        withActions.agents[0].events = [-450, -300, -100].map {
            ReportEvent(at: harness.clock.now + .seconds($0), resource: .memory, action: .warn, succeeded: true)
        }
        withActions.agents += idleReport.agents
        #expect(idleReport.agents.first?.events.isEmpty == true)
        try await Self.checkRenderedReport(withActions)
        try await Self.checkRenderedReport(idleReport)

        // Finished minutes are stored (the engine flushes them on its tick).
        await harness.engine.tick()
        await harness.engine.settle()
        let minutes = try harness.store.usageMinutes(agent: "grow", since: Timestamp(milliseconds: 0))
        #expect(minutes.count >= 9)
        #expect(minutes.allSatisfy { $0.resource == .memory && $0.samples <= 60 && $0.peak >= $0.mean })
    }

    /// The daemon's own path: `tick` runs the analysis once
    /// `intervals.analytics` has passed since the first tick, on the
    /// background queue, and stores every agent's recommendations.
    @Test func theAnalysisRunsPeriodicallyFromTick() async throws {
        var configuration = Self.configuration
        configuration.intervals.analytics = .seconds(60)
        let harness = try EngineHarness(configuration: configuration)
        _ = try await harness.start()
        try await harness.agent("grow")
        try await harness.agent("idle")
        await harness.engine.tick()  // the first tick schedules the analysis 60 s on
        for second in 0..<120 {
            harness.clock.advance(.seconds(1))
            await harness.observe("grow", [.memory: 120_000_000 + Double(second) * 1_000_000])
            await harness.observe("idle", [.memory: 10_000_000])
            if second == 30 {
                await harness.engine.tick()
                await harness.engine.settle()
                #expect(try harness.store.recommendations(agent: nil).isEmpty, "not due yet")
            }
        }
        await harness.engine.tick()  // 120 s on: due
        await harness.engine.settle()
        let stored = try harness.store.recommendations(agent: nil)
        #expect(stored.contains { $0.agent == "grow" && $0.kind == .increaseQuota && $0.pattern == .growing }, "\(stored)")
        #expect(stored.contains { $0.agent == "idle" && $0.kind == .decreaseQuota }, "\(stored)")
        #expect(stored.allSatisfy { $0.at == harness.clock.now })
        #expect(harness.events("grow").contains { $0.kind == .recommendation })
        // The next run is another interval on: a tick right after stores nothing new.
        harness.clock.advance(.seconds(30))
        try harness.store.replaceRecommendations(agent: "grow", with: [])
        await harness.engine.tick()
        await harness.engine.settle()
        #expect(try harness.store.recommendations(agent: "grow").isEmpty)
        harness.clock.advance(.seconds(31))
        await harness.engine.tick()
        await harness.engine.settle()
        #expect(try !harness.store.recommendations(agent: "grow").isEmpty)
    }

    /// The +20% bump follows the kernel's own counters of memory.max hits and
    /// OOM kills (their increases, counted), not readings; CPU throttling
    /// never bumps.
    @Test func hardLimitBumpsComeFromKernelCounters() async throws {
        let harness = try EngineHarness(configuration: Self.configuration)
        _ = try await harness.start()
        try await harness.agent("oom", group: "lightweight_agent")
        // Memory steady at 60 MB (lightweight: 50 / 100 MB), CPU throttled at every reading. The counters start
        // at 100 max / 3 oom_kill (history); then 5 more memory.max hits and 2 OOM kills, over 20 readings.
        for second in 0..<600 {
            harness.clock.advance(.seconds(1))
            let extra = Int64(min(max(second - 300, 0), 7))
            let events = MemoryEvents(max: 100 + min(extra, 5), oomKill: 3 + max(extra - 5, 0))
            let sample = CgroupSample(memoryCurrent: 60_000_000, memoryEvents: events, pidsCurrent: 3)
            let readings = [
                UsageReading(resource: .memory, usage: 60_000_000, hitHard: extra > 0),
                UsageReading(resource: .cpu, usage: 8, hitHard: true),
            ]
            await harness.engine.handle(
                .observed(agent: "oom", at: harness.clock.now, readings: readings, sample: sample))
        }
        _ = await harness.engine.runAnalytics()
        let made = try await harness.engine.recommendations(agent: "oom")
        let memory = try #require(made.first { $0.resource == .memory && $0.kind == .increaseQuota }, "\(made)")
        #expect(memory.rationale.contains("7× in the window (memory.max hits and OOM kills)"), "\(memory.rationale)")
        #expect((memory.suggested?.soft ?? 0) >= 120_000_000)
        #expect(!made.contains { $0.resource == .cpu && $0.kind == .increaseQuota }, "throttling is no reason: \(made)")
    }

    /// Rings are kept only for resources with a limit; a reported resource
    /// without one gets none (and so no chart, no recommendation).
    @Test func ringsOnlyForLimitedResources() async throws {
        let harness = try EngineHarness(configuration: Self.configuration)
        _ = try await harness.start()
        try await harness.agent("a1")
        for _ in 0..<120 {
            harness.clock.advance(.seconds(1))
            await harness.observe("a1", [.memory: 50_000_000])
            _ = try await harness.engine.report(usage: [.files: 40], for: "a1")
        }
        let report = try await harness.engine.report(agent: "a1", since: harness.clock.now + .seconds(-600))
        #expect(report.agents.first?.resources.map(\.resource) == [.memory])
        // The per-ring figure for the README: the window at the sampling interval and a slot per minute.
        #expect(await harness.engine.ringBytes == 600 * 8 + 11 * 12)
        let seed = try EngineHarness(configuration: .builtIn)  // an hour at 1 s
        #expect(await seed.engine.ringBytes == 29_532)
    }

    /// An unknown agent is "not found", naming it and where the agents are
    /// listed; a removed agent's recommendations are not shown.
    @Test func unknownAndRemovedAgentsHaveNoRecommendations() async throws {
        let harness = try EngineHarness(configuration: Self.configuration)
        _ = try await harness.start()
        for id in ["keep", "gone"] {
            try await harness.agent(id)
            try harness.store.replaceRecommendations(
                agent: id,
                with: [
                    Recommendation(
                        agent: id, resource: .memory, kind: .optimizeCode, current: QuotaGroup.standard.limits[.memory]!,
                        pattern: .bursty, confidence: 0.5, rationale: "test", at: harness.clock.now)
                ])
        }
        let unknown = await #expect(throws: EngineError.self) { try await harness.engine.recommendations(agent: "ghost") }
        let unreported = await #expect(throws: EngineError.self) {
            try await harness.engine.report(agent: "ghost", since: harness.clock.now)
        }
        for error in [unknown, unreported] {
            #expect(error?.code == .notFound)
            #expect(error?.message.contains("no agent 'ghost'") == true && error?.message.contains("corral agents list") == true)
        }
        try await harness.engine.remove("gone", force: true)
        #expect(try await harness.engine.recommendations(agent: nil).map(\.agent) == ["keep"])
        await #expect(throws: EngineError.self) { try await harness.engine.recommendations(agent: "gone") }
    }

    /// Headless Chromium (the Debian package, installed by scripts/setup), or
    /// `CORRAL_CHROMIUM`. Missing, the test fails: it is never skipped.
    static func chromium() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let candidates = environment["CORRAL_CHROMIUM"].map { [$0] } ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        return try #require(
            candidates.first { FileManager.default.isExecutableFile(atPath: $0) },
            "headless Chromium is needed to render the HTML report (looked for \(candidates.joined(separator: ", "))): run scripts/setup (apt package chromium)"
        )
    }

    /// Renders `report` as HTML in headless Chromium and checks what it
    /// shows: in the DOM Chromium built, each chart's marker count, usage
    /// points and limit lines; in the screenshot, the lines' colours and
    /// exactly the markers' pixels (none when there is no event).
    static func checkRenderedReport(_ report: UsageReport) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("corral-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let page = directory.appendingPathComponent("report.html")
        let shot = directory.appendingPathComponent("report.png")
        try ReportHTML.render(report).write(to: page, atomically: true, encoding: .utf8)
        let chromium = try chromium()
        let common = [
            "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=800,1400",
            "--user-data-dir=\(directory.path)/profile",
        ]

        // The DOM, as Chromium parsed it.
        let dump = try await Subprocess.execute(chromium, common + ["--dump-dom", page.absoluteString], timeout: 120)
        #expect(dump.status == 0 && dump.stdout.contains("</svg>"), "chromium dumped no DOM: \(dump)")
        var expectedMarkers = 0
        var charts = 0
        for agent in report.agents {
            let section = try #require(
                slice(dump.stdout, from: "<section class=\"agent\" data-agent=\"\(agent.agent)\"", to: "</section>"),
                "no section for \(agent.agent) in the DOM")
            for resource in agent.resources where !resource.points.isEmpty {
                let chart = try #require(
                    slice(section, from: "<div class=\"chart\" data-resource=\"\(resource.resource.rawValue)\"", to: "</svg>"),
                    "no \(resource.resource.rawValue) chart for \(agent.agent) in the DOM")
                charts += 1
                let events = agent.events.filter { $0.resource == resource.resource }.count
                expectedMarkers += events
                let markers = chart.components(separatedBy: "<line class=\"action\"").count - 1
                #expect(markers == events, "\(agent.agent) \(resource.resource.rawValue): \(markers) markers for \(events) events")
                let points = try #require(slice(chart, from: "<polyline class=\"usage\" points=\"", to: "\""), "no usage line")
                #expect(
                    points.split(separator: " ").count == resource.points.count,
                    "\(agent.agent) \(resource.resource.rawValue): the usage line has every point")
                #expect(chart.contains("<line class=\"soft\"") == (resource.soft > 0), "the soft limit line")
                #expect(chart.contains("<line class=\"hard\"") == (resource.hard > 0), "the hard limit line")
            }
        }
        #expect(charts > 0, "the report has charts")

        // The pixels.
        let rendered = try await Subprocess.execute(chromium, common + ["--screenshot=\(shot.path)", page.absoluteString], timeout: 120)
        #expect(FileManager.default.fileExists(atPath: shot.path), "chromium wrote no screenshot: \(rendered)")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/png-colors").path
        let marker = String(ReportHTML.markerColour.dropFirst())
        let colours = try await Subprocess.execute("/usr/bin/python3", [script, shot.path, "1f77b4", "e69f00", "d62728", marker])
        var counts: [String: Int] = [:]
        for line in colours.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { counts[String(parts[0])] = Int(parts[1]) }
        }
        let markerPixels = counts[marker] ?? 0
        print(
            "report screenshot: \(charts) charts, usage \(counts["1f77b4"] ?? 0) px, soft \(counts["e69f00"] ?? 0) px, hard \(counts["d62728"] ?? 0) px, \(expectedMarkers) markers \(markerPixels) px (\(ReportHTML.markerPixels) px each)"
        )
        #expect((counts["1f77b4"] ?? 0) > 1500 * charts, "the usage lines are drawn: \(colours)")
        #expect((counts["e69f00"] ?? 0) > 500 * charts, "the soft limit lines are drawn")
        #expect((counts["d62728"] ?? 0) > 500 * charts, "the hard limit lines are drawn")
        // Each marker covers exactly `markerPixels`, less where the usage line (3 px wide) crosses it.
        let crossing = 4 * ReportHTML.markerWidth * 3
        #expect(
            markerPixels <= expectedMarkers * ReportHTML.markerPixels
                && markerPixels >= expectedMarkers * (ReportHTML.markerPixels - crossing),
            "\(markerPixels) marker pixels for \(expectedMarkers) markers of \(ReportHTML.markerPixels) px")
    }

    /// The text after the first `start` up to the next `end` (nil when either is missing).
    static func slice(_ text: String, from start: String, to end: String) -> String? {
        guard let from = text.range(of: start), let to = text.range(of: end, range: from.upperBound..<text.endIndex) else { return nil }
        return String(text[from.upperBound..<to.lowerBound])
    }
}
