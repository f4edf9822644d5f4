import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralServer
import CorralTestSupport
import CorralWatcher
import Foundation
import Hummingbird
import Logging
import Synchronization
import Testing

/// The status page in headless Chromium (Debian's), served by the metrics
/// listener over TCP as `corrald --metrics-address` serves it, driven over
/// the DevTools protocol (Tests/status-page/cdp.py): the DOM has a row per
/// agent with the API's numbers, an update from the event stream appears
/// without a reload, and the screenshots show the bars — none before there
/// is an agent (the negative control), the usage and soft-limit colours after.
@Suite struct StatusPageTests {
    struct PageDOM: Decodable {
        struct Row: Decodable {
            struct Memory: Decodable {
                var used: String?
                var soft: String?
                var hard: String?
                var width: Double
            }
            var id: String
            var group: String
            var state: String
            var arrived: String?
            var memory: Memory
        }
        var marker: String?
        var live: String
        var renders: Int
        var streamEvents: Int
        var capacityRows: Int
        var rows: [Row]
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The pixels of the usage, soft-limit and hard-limit colours in a screenshot (scripts/png-colors).
    static func colours(_ shot: String) async throws -> [String: Int] {
        let script = repository.appendingPathComponent("scripts/png-colors").path
        let result = try await Subprocess.execute("/usr/bin/python3", [script, shot, "1f77b4", "e69f00", "d62728"])
        var counts: [String: Int] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { counts[String(parts[0])] = Int(parts[1]) }
        }
        return counts
    }

    @Test("the page lists every agent with the API's numbers, follows the stream without a reload, and draws the bars")
    func statusPageInChromium() async throws {
        let chromium = try #require(
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "headless Chromium is needed for the status page test: run scripts/setup (apt package chromium)")
        let children = [try SleepingChild(), try SleepingChild()]
        defer { children.forEach { $0.stop() } }
        let fs = FakeCgroupFilesystem()
        let root = CgroupPath(["status-page-corral"])
        fs.seed(root)
        let tree = CgroupTree(fs: fs, root: root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let metrics = DaemonMetrics(version: "page-test")
        let engine = Engine(configuration: .builtIn, tree: tree, store: MemoryStore(), instruments: metrics)
        _ = try await engine.restore()
        defer { engine.hub.finishAll() }

        let port = Mutex<Int?>(nil)
        var logger = Logger(label: "corral-status-page-test")
        logger.logLevel = .critical
        let app = Application(
            router: buildMetricsRouter(engine: engine, metrics: metrics),
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: "corral-metrics"),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } }, logger: logger)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("corral-status-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer {
            if ProcessInfo.processInfo.environment["CORRAL_KEEP_SCREENSHOTS"] == nil { try? FileManager.default.removeItem(at: directory) }
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            defer { group.cancelAll() }
            // Generous: the other suites run beside this one on the same two pool threads.
            let deadline = ContinuousClock.now + .seconds(60)
            while port.withLock({ $0 }) == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let bound = try #require(port.withLock { $0 }, "the metrics listener did not start")

            let driver = try Subprocess.start(
                "/usr/bin/python3",
                [
                    Self.repository.appendingPathComponent("Tests/status-page/cdp.py").path, chromium, "http://127.0.0.1:\(bound)/?poll=0",
                    directory.path,
                ])
            let waited = ContinuousClock.now + .seconds(90)
            while !driver.stdoutSoFar.contains("loaded ") && driver.process.isRunning && ContinuousClock.now < waited {
                try await Task.sleep(for: .milliseconds(50))
            }
            guard let loadedLine = driver.stdoutSoFar.split(separator: "\n").first(where: { $0.hasPrefix("loaded ") }) else {
                let output = await driver.finished(timeout: 5)
                Issue.record("the page did not load: \(output)")
                return
            }
            let before = try JSONDecoder().decode(PageDOM.self, from: Data(loadedLine.dropFirst("loaded ".count).utf8))
            #expect(before.rows.isEmpty && before.capacityRows >= 2 && before.live == "live", "\(before)")

            // Two agents start and are sampled while the page is open: only the stream can tell it.
            var expected: [String: (used: Double, soft: Double, hard: Double)] = [:]
            for (index, id) in ["p1", "p2"].enumerated() {
                _ = try await engine.register(id: id, group: "standard_agent", command: ["worker"], overrides: [:])
                _ = try await engine.attach(id: id, pid: children[index].pid)
                let limit = try #require(await engine.status(of: id).agent.limits[.memory])
                let used = (limit.hard * (index == 0 ? 0.8 : 0.4)).rounded()
                expected[id] = (used, limit.soft, limit.hard)
                var sample = CgroupSample(memoryCurrent: Int64(used), pidsCurrent: 3, events: CgroupEvents(populated: true, frozen: false))
                sample.inactiveFile = 0
                await engine.handle(
                    .observation(
                        Observation(
                            subject: .agent(id), trigger: .sample, at: Engine.wallClock(), seenAt: .now, sample: sample,
                            readings: [UsageReading(resource: .memory, usage: used)], elapsed: .seconds(1))))
                _ = try await engine.report(usage: [.files: 1], for: id)
            }
            // Waited for off the cooperative pool: the server's handlers need it meanwhile.
            let finished = await driver.finished(timeout: 90)
            #expect(finished.status == 0, "cdp.py: \(finished)")
            let updatedLine = try #require(finished.stdout.split(separator: "\n").first { $0.hasPrefix("updated ") }, "\(finished)")
            let after = try JSONDecoder().decode(PageDOM.self, from: Data(updatedLine.dropFirst("updated ".count).utf8))

            #expect(after.marker == "no reload", "the page was reloaded: \(after)")
            #expect(after.streamEvents > before.streamEvents, "no event arrived on the stream")
            #expect(after.rows.map(\.id) == ["p1", "p2"], "one row per agent: \(after.rows.map(\.id))")
            for row in after.rows {
                let want = try #require(expected[row.id])
                #expect(row.arrived == "stream", "\(row.id) arrived by \(row.arrived ?? "nothing"), not the stream")
                #expect(row.state == "running" && row.group == "standard_agent")
                #expect(row.memory.used.flatMap(Double.init) == want.used, "\(row.id) used \(row.memory.used ?? "-") vs \(want.used)")
                #expect(row.memory.soft.flatMap(Double.init) == want.soft)
                #expect(row.memory.hard.flatMap(Double.init) == want.hard)
                // The bar is 160 px less its 3 px hard-limit border; usage fills its share of that.
                let width = 157 * want.used / max(want.hard, want.used)
                #expect(abs(row.memory.width - width) < 1.5, "\(row.id): bar \(row.memory.width) px, expected \(width)")
            }

            // The pixels: no usage or soft-limit colour before any agent, both after.
            let empty = try await Self.colours(directory.appendingPathComponent("before.png").path)
            let full = try await Self.colours(directory.appendingPathComponent("after.png").path)
            let usagePixels = after.rows.reduce(0.0) { $0 + $1.memory.width * 12 }
            print("status page: before \(empty), after \(full); memory bars \(Int(usagePixels)) px of usage expected")
            #expect(empty["1f77b4"] == 0 && empty["e69f00"] == 0, "the negative control shows bars: \(empty)")
            #expect((empty["d62728"] ?? 0) > 0, "the capacity bars' hard edge is drawn before agents exist")
            #expect(Double(full["1f77b4"] ?? 0) >= usagePixels * 0.9, "the usage bars are drawn: \(full)")
            #expect((full["e69f00"] ?? 0) >= 2 * 3 * 12, "the soft-limit markers are drawn: \(full)")
        }
    }
}
