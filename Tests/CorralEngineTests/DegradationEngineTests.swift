import CorralAPI
import CorralCore
import CorralEngine
import CorralTestSupport
import Foundation
import Testing

@Suite("Engine: degradation, staged recovery, thaw on recovery")
struct DegradationEngineTests {
    static var configuration: CorralConfiguration {
        var configuration = EngineHarness.quickConfiguration
        configuration.recovery = RecoveryPolicy(stageInterval: .seconds(5), quietPeriod: .seconds(5), usageBelow: 0.8, thawSuspended: true)
        return configuration
    }

    @Test("levels climb with usage, plans are published and recorded, recovery steps down one stage per interval")
    func climbAndRecover() async throws {
        let harness = try EngineHarness(configuration: Self.configuration)
        _ = try await harness.start()
        try await harness.agent("d1")  // standard_agent: memory soft 200 MB
        await harness.keepObserving("d1", [.memory: 190_000_000], for: .seconds(2))  // 0.95: minimal
        await harness.keepObserving("d1", [.memory: 230_000_000], for: .seconds(2))  // 1.15: moderate
        await harness.keepObserving("d1", [.memory: 260_000_000], for: .seconds(2))  // 1.3: aggressive
        let climbed = try await harness.engine.degradationHistory(agent: "d1", limit: 100)
        #expect(climbed.map(\.level) == [.minimal, .moderate, .aggressive])
        #expect(
            harness.events("d1").filter { $0.kind == .degradationStrategy }.compactMap(\.plan?.level) == [.minimal, .moderate, .aggressive])
        let status = try await harness.engine.status(of: "d1")
        #expect(status.degradation.first?.level == .aggressive)
        #expect(status.degradation.first?.strategies == [.cacheAggressively, .batchOperations, .reducePrecision])

        await harness.keepObserving("d1", [.memory: 100_000_000], for: .seconds(40))
        let all = try await harness.engine.degradationHistory(agent: "d1", limit: 100)
        let stages = Array(all.dropFirst(3))
        #expect(stages.map(\.level) == [.moderate, .minimal, .none])
        #expect(stages.map(\.reason) == [.recovery, .recovery, .recovery])
        let spacing = zip(stages.dropFirst(), stages).map { ($0.at - $1.at).components.seconds }
        #expect(spacing == [5, 5], "one stage per configured interval")
        #expect(harness.events("d1").filter { $0.kind == .recoveryStage }.count == 3)
        #expect(try await harness.engine.status(of: "d1").degradation.isEmpty)
    }

    @Test("an agent the ladder suspended is thawed once its violation has cleared and recovery is complete")
    func thawOnRecovery() async throws {
        let harness = try EngineHarness(configuration: Self.configuration)
        _ = try await harness.start()
        try await harness.agent("s1", group: "lightweight_agent")  // processes: hard 20 → suspend
        let leaf = harness.leaf("lightweight_agent", "s1")
        await harness.keepObserving("s1", [.processes: 25], for: .seconds(5))
        #expect(try await harness.engine.status(of: "s1").agent.state == .suspended)
        await harness.keepObserving("s1", [.processes: 1], for: .seconds(60))
        #expect(try await harness.engine.status(of: "s1").agent.state == .running)
        #expect(harness.fs.value(.freeze, at: leaf) == "0")
        #expect(harness.events("s1").contains { $0.kind == .thawed && $0.message.contains("recovery") })
    }

    @Test("without thaw_suspended the agent stays frozen")
    func noThawWhenThePolicySaysNo() async throws {
        var configuration = Self.configuration
        configuration.recovery.thawSuspended = false
        let harness = try EngineHarness(configuration: configuration)
        _ = try await harness.start()
        try await harness.agent("s2", group: "lightweight_agent")
        await harness.keepObserving("s2", [.processes: 25], for: .seconds(5))
        await harness.keepObserving("s2", [.processes: 1], for: .seconds(60))
        #expect(try await harness.engine.status(of: "s2").agent.state == .suspended)
    }

    /// A sleeping process adopted as agent `id` in standard_agent, with
    /// SIGUSR1 as the degradation signal.
    static func signalledAgent(_ id: String) async throws -> (SleepingChild, EngineHarness) {
        let child = try SleepingChild()
        do {
            var configuration = Self.configuration
            configuration.escalation.degradationSignal = SIGUSR1
            let harness = try EngineHarness(configuration: configuration)
            _ = try await harness.start()
            harness.fs.seed(.anchor, procs: [child.pid])
            _ = try await harness.engine.adopt(pid: child.pid, id: id, group: "standard_agent")
            return (child, harness)
        } catch {
            child.stop()
            throw error
        }
    }

    @Test("a program that does not listen gets the group's degradation signal when its level rises, once per rise")
    func degradationSignal() async throws {
        let (child, harness) = try await Self.signalledAgent("plain")
        defer { child.stop() }
        // An operator (or `corral run`) following the agent's events is not its listener.
        let watching = harness.engine.hub.subscribe(agent: "plain", isListener: false)
        #expect(harness.engine.hub.listenerCount(agent: "plain") == 0)
        await harness.keepObserving("plain", [.memory: 150_000_000], for: .seconds(2))  // 0.75: no level
        #expect(child.waitForSignal(timeout: .milliseconds(300)) == nil)
        await harness.keepObserving("plain", [.memory: 190_000_000], for: .seconds(2))  // 0.95: minimal
        #expect(child.waitForSignal() == SIGUSR1)
        _ = watching
    }

    @Test("an agent that follows its stream gets no degradation signal; without a listener a relapse sends it")
    func degradationSignalOnlyWithoutAListener() async throws {
        let (child, harness) = try await Self.signalledAgent("heard")
        defer { child.stop() }
        let hub = harness.engine.hub
        let stream = hub.subscribe(agent: "heard", isListener: true)
        let listening = Task { for await _ in stream {} }
        #expect(hub.listenerCount(agent: "heard") == 1)
        #expect(hub.listenerCount(agent: "other") == 0)

        // It listens: the rises reach it on the stream, and no signal comes (SIGUSR1 would end `sleep`).
        await harness.keepObserving("heard", [.memory: 190_000_000], for: .seconds(2))  // 0.95: minimal
        await harness.keepObserving("heard", [.memory: 230_000_000], for: .seconds(2))  // 1.15: moderate
        #expect(child.waitForSignal(timeout: .milliseconds(300)) == nil)
        #expect(
            harness.events("heard").filter { $0.kind == .degradationStrategy }.compactMap(\.plan?.level) == [.minimal, .moderate])

        // It stops listening; usage falls and recovery takes a stage back …
        listening.cancel()
        let deadline = ContinuousClock.now + .seconds(5)
        while hub.listenerCount(agent: "heard") > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(hub.listenerCount(agent: "heard") == 0)
        await harness.keepObserving("heard", [.memory: 100_000_000], for: .seconds(7))  // one stage (quiet 5 s, stages 5 s apart)
        let recovered = try await harness.engine.degradationHistory(agent: "heard", limit: 100)
        #expect(recovered.map(\.reason) == [.pressure, .pressure, .recovery])
        #expect(child.waitForSignal(timeout: .milliseconds(300)) == nil, "a recovery stage sends no signal")

        // … and a relapse (0.85 of the limit) is a rise: now the signal is its only notice.
        await harness.keepObserving("heard", [.memory: 170_000_000], for: .seconds(1))
        let relapsed = try await harness.engine.degradationHistory(agent: "heard", limit: 100)
        #expect(relapsed.last?.reason == .relapse)
        #expect(relapsed.last?.level == .moderate)
        #expect(child.waitForSignal() == SIGUSR1)
    }
}
