import CorralCore
import CorralWatcher
import Testing

@testable import CorralEngine

/// Adaptive sampling as the engine drives it: what it tells the watcher as an
/// agent goes far from its limits, near them, has kernel events, and ends.
@Suite("Adaptive sampling in the engine")
struct CadenceEngineTests {
    static let far: [Resource: Double] = [.memory: 20e6, .cpu: 1, .processes: 2]
    static let near: [Resource: Double] = [.memory: 150e6, .cpu: 1, .processes: 2]

    func sample(_ harness: EngineHarness, _ agent: String, _ readings: [Resource: Double]) async {
        let list = readings.sorted { $0.key < $1.key }.map { UsageReading(resource: $0.key, usage: $0.value) }
        await harness.engine.handle(.observed(agent: agent, at: harness.clock.now, readings: list, trigger: .sample))
    }

    func told(_ harness: EngineHarness, _ agent: String) -> [Duration?] {
        harness.watcher.calls.compactMap { call in
            if case .sample(let id, let every) = call, id == agent { return .some(every) }
            return nil
        }
    }

    @Test("far and quiet: the idle interval; near a limit, a kernel event or a violation: the sampling interval again")
    func followsTheAgent() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("k1")
        await sample(harness, "k1", Self.far)
        #expect(told(harness, "k1") == [.seconds(10)])
        await sample(harness, "k1", Self.far)
        #expect(told(harness, "k1") == [.seconds(10)], "said once")

        harness.clock.advance(.seconds(10))
        await sample(harness, "k1", Self.near)
        #expect(told(harness, "k1") == [.seconds(10), nil], "half the soft limit is near")
        harness.clock.advance(.seconds(1))
        await sample(harness, "k1", Self.far)
        #expect(told(harness, "k1") == [.seconds(10), nil, .seconds(10)])

        // A kernel event: active for the quiet period, then idle again.
        harness.clock.advance(.seconds(10))
        await harness.observe("k1", Self.far)
        #expect(told(harness, "k1").last == .some(nil))
        harness.clock.advance(.seconds(20))
        await sample(harness, "k1", Self.far)
        #expect(told(harness, "k1").count == 4, "still within the quiet period")
        harness.clock.advance(.seconds(10))
        await sample(harness, "k1", Self.far)
        #expect(told(harness, "k1").last == .some(.seconds(10)))

        // A violation (over the CPU soft limit) makes it active however it came.
        harness.clock.advance(.seconds(10))
        await sample(harness, "k1", [.memory: 20e6, .cpu: 20, .processes: 2])
        #expect(told(harness, "k1").last == .some(nil))
        #expect(await harness.engine.cadences["k1"] == .active)
    }

    @Test("an agent that ends is forgotten; a reload that turns it off puts idle agents back")
    func endAndReload() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("a1")
        try await harness.agent("a2")
        await sample(harness, "a1", Self.far)
        await sample(harness, "a2", Self.far)
        #expect(told(harness, "a1") == [.seconds(10)] && told(harness, "a2") == [.seconds(10)])
        #expect(await harness.engine.metrics().sampling == [.idle: 2], "the metrics count them")

        await harness.engine.handle(.emptied("a2"))
        #expect(await harness.engine.cadences["a2"] == nil)

        var off = harness.configuration
        off.intervals.idleSampling = off.intervals.sampling
        await harness.engine.reload(off)
        #expect(told(harness, "a1") == [.seconds(10), nil])
        harness.clock.advance(.seconds(1))
        await sample(harness, "a1", Self.far)
        #expect(told(harness, "a1") == [.seconds(10), nil], "off: nothing more said")
        #expect(await harness.engine.cadences.isEmpty)
        #expect(await harness.engine.metrics().sampling == [.active: 1])
    }
}

/// When the root's own limits cannot be read, admission counts the host's totals and says
/// so once, not at every read.
@Suite("Capacity without the root's limits")
struct RootLimitsUnreadableTests {
    @Test func saidOnceThenAgainAfterRecovery() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        harness.fs.set(.memoryMax, "500000000", at: EngineHarness.root)
        harness.fs.inject(.ioError, on: .read, path: EngineHarness.root, file: .memoryMax, times: 2)
        let host = await Double(harness.engine.host.memoryBytes)
        let told = { harness.engine.hub.recent(agent: nil).filter { $0.message.contains("cannot read the limits of Corral's root") } }
        #expect(await harness.engine.readAllocatable()[.memory] == host)
        #expect(await harness.engine.readAllocatable()[.memory] == host)
        #expect(told().count == 1, "said once: \(told().map(\.message))")
        #expect(told().first?.message.contains("memory.max") == true)
        #expect(await harness.engine.readAllocatable()[.memory] == 500_000_000, "read again once it can be")
        harness.fs.inject(.ioError, on: .read, path: EngineHarness.root, file: .memoryMax)
        _ = await harness.engine.readAllocatable()
        #expect(told().count == 2, "a new failure after a recovery is said again")
    }
}
