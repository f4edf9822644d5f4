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

        // The HTML report, rendered by headless Chromium: the chart's pixels are there.
        let idleReport = try await harness.engine.report(agent: "idle", since: harness.clock.now + .seconds(-600))
        var withActions = report
        withActions.agents[0].events = [
            ReportEvent(at: harness.clock.now + .seconds(-100), resource: .memory, action: .warn, succeeded: true)
        ]
        withActions.agents += idleReport.agents
        try Self.checkRenderedChart(ReportHTML.render(withActions))

        // Finished minutes are stored (the engine flushes them on its tick).
        await harness.engine.tick()
        await harness.engine.settle()
        let minutes = try harness.store.usageMinutes(agent: "grow", since: Timestamp(milliseconds: 0))
        #expect(minutes.count >= 9)
        #expect(minutes.allSatisfy { $0.resource == .memory && $0.samples <= 60 && $0.peak >= $0.mean })
    }

    /// Renders `html` with headless Chromium (the Debian package, installed by
    /// scripts/setup) and counts the chart colours in the screenshot.
    static func checkRenderedChart(_ html: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("corral-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let page = directory.appendingPathComponent("report.html")
        let shot = directory.appendingPathComponent("report.png")
        try html.write(to: page, atomically: true, encoding: .utf8)
        let browser = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let chromium = try #require(
            browser, "headless Chromium is needed to render the HTML report: run scripts/setup (apt package chromium)")
        let rendered = try Subprocess.run(
            chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=800,1400",
                "--user-data-dir=\(directory.path)/profile",
                "--screenshot=\(shot.path)", page.absoluteString,
            ], timeout: 120)
        #expect(FileManager.default.fileExists(atPath: shot.path), "chromium wrote no screenshot: \(rendered)")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/png-colors").path
        let colours = try Subprocess.run("/usr/bin/python3", [script, shot.path, "1f77b4", "e69f00", "d62728", "7b3294"])
        var counts: [String: Int] = [:]
        for line in colours.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { counts[String(parts[0])] = Int(parts[1]) }
        }
        print(
            "report screenshot: usage \(counts["1f77b4"] ?? 0) px, soft \(counts["e69f00"] ?? 0) px, hard \(counts["d62728"] ?? 0) px, actions \(counts["7b3294"] ?? 0) px"
        )
        #expect((counts["1f77b4"] ?? 0) > 1500, "the usage line is drawn: \(colours)")
        #expect((counts["e69f00"] ?? 0) > 500, "the soft limit line is drawn")
        #expect((counts["d62728"] ?? 0) > 500, "the hard limit line is drawn")
        #expect((counts["7b3294"] ?? 0) > 100, "the enforcement marker is drawn")
    }
}
