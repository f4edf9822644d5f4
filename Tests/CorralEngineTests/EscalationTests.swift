import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralTestSupport
import Foundation
import Synchronization
import SystemPackage
import Testing

/// The ladder carried out on a fake cgroup tree, with a clock moved by hand.
@Suite("Escalation through the engine")
struct EscalationTests {
    @Test("a soft violation is warned about once, recorded and published")
    func warn() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("w1")
        await harness.observe("w1", [.memory: 300_000_000])
        await harness.keepObserving("w1", [.memory: 300_000_000], for: .seconds(3))
        let records = try await harness.history("w1")
        #expect(records.count == 1)
        let warn = try #require(records.first)
        #expect(warn.id == 1)
        #expect(warn.action == .warn && warn.kind == .soft && warn.resource == .memory)
        #expect(warn.current == 300_000_000 && warn.limit == 200_000_000)
        #expect(warn.succeeded && warn.error == nil)
        #expect(warn.at == TestClock.origin)
        let kinds = harness.events("w1").map(\.kind)
        #expect(kinds.contains(.violation) && kinds.contains(.enforcement))
        #expect(harness.fs.writes.allSatisfy { if case .write(_, let file, _) = $0 { file != .freeze } else { true } })
    }

    @Test("throttle lowers cpu.max by the factor and restore writes the configured value back")
    func throttleAndRestoreCPU() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("t1")
        let leaf = harness.leaf("standard_agent", "t1")
        #expect(harness.fs.value(.cpuMax, at: leaf) == "30000 100000")
        // 32% against a 30% hard limit: excess 0.067 → factor 0.9.
        await harness.observe("t1", [.cpu: 32])
        await harness.keepObserving("t1", [.cpu: 32], for: .seconds(2))
        #expect(harness.fs.value(.cpuMax, at: leaf) == "27000 100000")
        let records = try await harness.history("t1")
        #expect(records.map(\.action) == [.warn, .throttle])
        #expect(records.last?.succeeded == true)
        #expect(records.last?.details.contains("cpu.max 30000 100000 → 27000 100000") == true, "\(records.last?.details ?? "")")
        #expect(try await harness.engine.status(of: "t1").ladder?.throttled[.cpu] == 0.9)

        // Within the limit for longer than the clear time (2.5 s): restored.
        await harness.keepObserving("t1", [.cpu: 5], for: .seconds(2))
        #expect(harness.fs.value(.cpuMax, at: leaf) == "27000 100000")
        await harness.keepObserving("t1", [.cpu: 5], for: .seconds(2))
        #expect(harness.fs.value(.cpuMax, at: leaf) == "30000 100000")
        #expect(harness.written(.cpuMax, at: leaf) == ["30000 100000", "27000 100000", "30000 100000"])
        #expect(harness.events("t1").contains { $0.kind == .throttleRestored && $0.message.contains("cpu.max 30000 100000") })
        #expect(try await harness.engine.status(of: "t1").ladder?.throttled.isEmpty == true)
        #expect(try await harness.history("t1").count == 2)
    }

    @Test("throttle lowers memory.high; restore puts memory.high and memory.max back")
    func throttleMemory() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("m1")
        let leaf = harness.leaf("standard_agent", "m1")
        // 800 MB against 500 MB: excess 0.6 → factor 0.7 of the 200 MB soft limit.
        await harness.observe("m1", [.memory: 800_000_000])
        await harness.keepObserving("m1", [.memory: 800_000_000], for: .seconds(2))
        #expect(harness.fs.value(.memoryHigh, at: leaf) == "140000000")
        #expect(harness.fs.value(.memoryMax, at: leaf) == "500000000")
        await harness.keepObserving("m1", [.memory: 1_000_000], for: .seconds(4))
        #expect(harness.fs.value(.memoryHigh, at: leaf) == "200000000")
        #expect(harness.written(.memoryHigh, at: leaf) == ["200000000", "140000000", "200000000"])
    }

    @Test("throttle lowers pids.max for a burst violation")
    func throttleProcesses() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("p1", overrides: [.processes: LimitOverride(burst: 80)])
        let leaf = harness.leaf("standard_agent", "p1")
        #expect(harness.fs.value(.pidsMax, at: leaf) == "100")
        // 85 over the 80 burst: excess 0.0625 → factor 0.9 → 90.
        await harness.observe("p1", [.processes: 85])
        await harness.keepObserving("p1", [.processes: 85], for: .seconds(2))
        #expect(harness.fs.value(.pidsMax, at: leaf) == "90")
        #expect(try await harness.history("p1").map(\.action) == [.warn, .throttle])
    }

    @Test("throttle never raises pids.max above the limit in force, however many processes run")
    func throttleNeverLoosensProcesses() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("p2")
        let leaf = harness.leaf("standard_agent", "p2")
        _ = try await harness.engine.setOverrides("p2", [.processes: LimitOverride(hard: 60)])
        #expect(harness.fs.value(.pidsMax, at: leaf) == "60")
        // 80 processes were there before the limit came down to 60.
        await harness.observe("p2", [.processes: 80])
        await harness.keepObserving("p2", [.processes: 80], for: .seconds(2))
        let throttle = try #require(try await harness.history("p2").first { $0.action == .throttle })
        #expect(throttle.succeeded)
        let pidsMax = try #require(harness.fs.value(.pidsMax, at: leaf).flatMap { Int($0) })
        #expect(pidsMax <= 60, "throttle raised pids.max to \(pidsMax): \(throttle.details)")
    }

    @Test("suspend freezes the cgroup and records it as confirmed")
    func suspend() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("s1", group: "lightweight_agent")
        let leaf = harness.leaf("lightweight_agent", "s1")
        await harness.observe("s1", [.processes: 25])
        await harness.keepObserving("s1", [.processes: 25], for: .seconds(4))
        let records = try await harness.history("s1")
        #expect(records.map(\.action) == [.warn, .throttle, .suspend])
        let suspend = try #require(records.last)
        #expect(suspend.succeeded && suspend.kind == .hard)
        #expect(suspend.details.contains("cgroup.events frozen 1"))
        #expect(harness.fs.value(.freeze, at: leaf) == "1")
        #expect(harness.fs.value(.events, at: leaf)?.contains("frozen 1") == true)
        #expect(try await harness.engine.status(of: "s1").agent.state == .suspended)
        #expect(harness.events("s1").contains { $0.kind == .suspended })
    }

    @Test("a freeze the kernel confirms later is recorded when cgroup.events says so, by the next step or tick")
    func suspendConfirmedLater() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("s3", group: "lightweight_agent")
        let leaf = harness.leaf("lightweight_agent", "s3")
        harness.fs.freezeCompletes = false
        await harness.observe("s3", [.processes: 25])
        await harness.keepObserving("s3", [.processes: 25], for: .seconds(4))
        #expect(try await harness.history("s3").last?.action == .throttle)
        #expect(harness.fs.value(.freeze, at: leaf) == "1")
        // The kernel reports the freeze done (as the watcher would see cgroup.events change).
        harness.fs.completeFreeze(at: leaf)
        harness.clock.advance(.milliseconds(200))
        await harness.engine.tick()
        harness.engine.waitForCommits()
        let suspend = try #require(try await harness.history("s3").last)
        #expect(suspend.action == .suspend && suspend.succeeded)
        #expect(suspend.details.contains("cgroup.events frozen 1"))
        #expect(try await harness.engine.status(of: "s3").agent.state == .suspended)
        #expect(harness.events("s3").contains { $0.kind == .suspended })
    }

    @Test("an operator's thaw gives up a freeze still waiting for its confirmation, and it is recorded")
    func thawOvertakesAPendingFreeze() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("s4", group: "lightweight_agent")
        let leaf = harness.leaf("lightweight_agent", "s4")
        harness.fs.freezeCompletes = false
        await harness.observe("s4", [.processes: 25])
        await harness.keepObserving("s4", [.processes: 25], for: .seconds(4))
        #expect(harness.fs.value(.freeze, at: leaf) == "1")
        _ = try await harness.engine.thaw("s4")
        harness.engine.waitForCommits()
        let suspend = try #require(try await harness.history("s4").last)
        #expect(suspend.action == .suspend && !suspend.succeeded)
        #expect(suspend.error == "thawed by request before cgroup.events reported frozen 1")
        #expect(harness.fs.value(.freeze, at: leaf) == "0")
        #expect(try await harness.engine.status(of: "s4").agent.state == .running)
        // Nothing is left pending: two seconds on, no second record.
        await harness.keepObserving("s4", [.processes: 5], for: .seconds(3))
        #expect(try await harness.history("s4").filter { $0.action == .suspend }.count == 1)
    }

    @Test("an agent that ends while its freeze waits for confirmation gets the suspend recorded as failed")
    func endOvertakesAPendingFreeze() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("s5", group: "lightweight_agent")
        let leaf = harness.leaf("lightweight_agent", "s5")
        harness.fs.freezeCompletes = false
        await harness.observe("s5", [.processes: 25])
        await harness.keepObserving("s5", [.processes: 25], for: .seconds(4))
        #expect(harness.fs.value(.freeze, at: leaf) == "1")
        await harness.engine.handle(.emptied("s5"))
        harness.engine.waitForCommits()
        let suspends = try await harness.history("s5").filter { $0.action == .suspend }
        #expect(suspends.count == 1)
        #expect(suspends.first?.succeeded == false)
        #expect(suspends.first?.error == "the agent ended before cgroup.events reported frozen 1")
        #expect(try await harness.engine.status(of: "s5").agent.state.isLive == false)
    }

    @Test("the suspend notice goes out before cgroup.freeze, the confirmation after")
    func suspendNoticePrecedesTheFreeze() async throws {
        let fake = FakeCgroupFilesystem()
        fake.seed(EngineHarness.root)
        let hub = EventHub()
        let spy = FreezeSpy(fake, hub: hub)
        let tree = CgroupTree(fs: spy, root: EngineHarness.root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let clock = TestClock()
        let engine = Engine(
            configuration: EngineHarness.quickConfiguration, tree: tree, store: MemoryStore(), hub: hub, clock: { clock.now })
        _ = try await engine.restore()
        _ = try await engine.register(id: "n1", group: "lightweight_agent", command: ["worker"], overrides: [:])
        fake.seed(tree.agentPath(group: "lightweight_agent", agent: "n1"), procs: [ghostPID])
        _ = try await engine.attach(id: "n1", pid: ghostPID)
        for _ in 0...5 {
            await engine.handle(.observed(agent: "n1", at: clock.now, readings: [UsageReading(resource: .processes, usage: 25)]))
            clock.advance(.seconds(1))
        }
        // When cgroup.freeze was written, the notice was out and the confirmation was not.
        // (Records are published by the committer's thread once stored: one of an earlier
        // step may come in between at any moment, and says nothing of the order here.)
        let atFreeze = try #require(spy.eventsAtFreeze.first).filter { $0.kind != .enforcement }
        #expect(spy.eventsAtFreeze.count == 1)
        #expect(atFreeze.last?.kind == .suspendNotice, "\(atFreeze.map(\.kind))")
        #expect(atFreeze.last?.violation?.resource == .processes)
        #expect(!atFreeze.contains { $0.kind == .suspended })
        let kinds = hub.recent(agent: "n1").map(\.kind)
        let notice = try #require(kinds.firstIndex(of: .suspendNotice))
        let confirmed = try #require(kinds.firstIndex(of: .suspended))
        #expect(notice < confirmed)

        // An operator's freeze sends the notice first too.
        _ = try await engine.thaw("n1")
        _ = try await engine.freeze("n1")
        #expect(spy.eventsAtFreeze.count == 2)
        #expect(spy.eventsAtFreeze.last?.last?.kind == .suspendNotice)
        #expect(spy.eventsAtFreeze.last?.last?.message.contains("by request") == true)
    }

    @Test("a freeze not confirmed within 2 s is a failed record, rolled back, without the engine waiting; the ladder suspends again later")
    func suspendThatFails() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("s2", group: "lightweight_agent")
        let leaf = harness.leaf("lightweight_agent", "s2")
        harness.fs.freezeCompletes = false
        await harness.observe("s2", [.processes: 25])
        let asked = ContinuousClock.now
        await harness.keepObserving("s2", [.processes: 25], for: .seconds(4))
        // The suspend is written and waits for its confirmation; the engine did not wait.
        #expect(ContinuousClock.now - asked < .seconds(1))
        #expect(try await harness.history("s2").last?.action == .throttle)
        #expect(harness.fs.value(.freeze, at: leaf) == "1")
        #expect(try await harness.engine.status(of: "s2").agent.state == .running)

        // Two seconds on, still not frozen: failed, and rolled back.
        await harness.keepObserving("s2", [.processes: 5], for: .seconds(2))
        let failed = try #require(try await harness.history("s2").last)
        #expect(failed.action == .suspend)
        #expect(!failed.succeeded)
        #expect(failed.error?.contains("frozen 1") == true, "\(failed.error ?? "")")
        #expect(failed.details.contains("freeze failed"))
        #expect(harness.fs.value(.freeze, at: leaf) == "0", "the freeze is rolled back")
        #expect(try await harness.engine.status(of: "s2").agent.state == .running)
        #expect(try await harness.engine.status(of: "s2").ladder?.suspended == false)

        // The violation clears, comes back, and this time the freeze works.
        harness.fs.freezeCompletes = true
        await harness.keepObserving("s2", [.processes: 5], for: .seconds(2))
        #expect(try await harness.engine.status(of: "s2").ladder?.episodes.isEmpty == true)
        await harness.observe("s2", [.processes: 25])
        await harness.keepObserving("s2", [.processes: 25], for: .seconds(4))
        let records = try await harness.history("s2")
        #expect(records.filter { $0.action == .suspend }.map(\.succeeded) == [false, true])
        #expect(harness.fs.value(.freeze, at: leaf) == "1")
        #expect(try await harness.engine.status(of: "s2").agent.state == .suspended)
    }

    @Test("adopting the daemon's own process or PID 1 is refused, and nothing is made")
    func adoptRefusesItself() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        for pid in [getpid(), 1, 0, -5] {
            await #expect(throws: EngineError.self) { try await harness.engine.adopt(pid: pid, id: "self", group: nil) }
        }
        #expect(try await harness.engine.list().isEmpty)
        #expect(try !harness.fs.exists(harness.leaf("standard_agent", "self")))
    }

    @Test("terminate sends a real SIGTERM and cgroup.kill after the grace period")
    func terminate() async throws {
        let child = try SleepingChild()
        defer { child.stop() }
        let harness = try EngineHarness()
        _ = try await harness.start()
        harness.fs.seed(.anchor, procs: [child.pid])
        let record = try await harness.engine.adopt(pid: child.pid, id: "x1", group: "heavy_computation_agent")
        #expect(record.origin == .adopted && record.command.first == "/usr/bin/sleep", "\(record.command)")
        let leaf = harness.leaf("heavy_computation_agent", "x1")
        #expect(harness.fs.procs(leaf) == [child.pid])
        #expect(harness.watcher.calls.contains(.watch("x1", leaf)))

        // 250 processes against 200: warn, throttle, suspend, terminate.
        await harness.observe("x1", [.processes: 250])
        await harness.keepObserving("x1", [.processes: 250], for: .seconds(6))
        let records = try await harness.history("x1")
        #expect(records.map(\.action) == [.warn, .throttle, .suspend, .terminate])
        let terminate = try #require(records.last)
        #expect(terminate.succeeded)
        #expect(terminate.details.contains("SIGTERM sent to 1 processes"), "\(terminate.details)")
        #expect(child.waitForSignal() == SIGTERM)
        #expect(harness.fs.value(.freeze, at: leaf) == "0", "thawed so the SIGTERM can be handled")
        #expect(harness.events("x1").contains { $0.kind == .terminationNotice })

        // The fake still lists the pid: after the grace, tick kills through cgroup.kill.
        harness.clock.advance(.seconds(4))
        await harness.engine.tick()
        #expect(harness.fs.killed.isEmpty)
        harness.clock.advance(.seconds(1))
        await harness.engine.tick()
        #expect(harness.fs.killed == [child.pid])
        let kill = try #require(try await harness.history("x1").last)
        #expect(kill.action == .terminate && kill.succeeded && kill.details.contains("cgroup.kill"))
        #expect(try await harness.history("x1").count == 5)

        await harness.engine.handle(.emptied("x1"))
        let status = try await harness.engine.status(of: "x1")
        #expect(status.agent.state == .terminated)
        #expect(status.agent.endReason?.contains("processes") == true)
        #expect(harness.fs.value(.procs, at: leaf) == nil, "the leaf is removed")
        #expect(harness.watcher.calls.last == .unwatch("x1"))
    }

    @Test("a scale-down request is recorded, then resolved as met when usage comes down")
    func scaleDownMet() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("d1")
        await harness.observe("d1", [.processes: 120])
        await harness.keepObserving("d1", [.processes: 120], for: .seconds(2))
        var records = try await harness.history("d1")
        #expect(records.map(\.action) == [.warn, .throttle, .scaleDown])
        #expect(records.last?.details.contains("requested processes ≤ 80") == true, "\(records.last?.details ?? "")")
        let request = try #require(harness.events("d1").first { $0.kind == .scaleDownRequest }?.request)
        #expect(request.target == 80 && request.current == 120)
        #expect(request.deadline == TestClock.origin + .seconds(32))

        await harness.keepObserving("d1", [.processes: 40], for: .seconds(4))
        records = try await harness.history("d1")
        #expect(records.map(\.action) == [.warn, .throttle, .scaleDown, .scaleDown])
        let resolved = try #require(records.last)
        #expect(resolved.succeeded && resolved.details.hasPrefix("met"), "\(resolved.details)")
    }

    @Test("a scale-down deadline missed is a failed record, and the agent is suspended")
    func scaleDownMissed() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("d2")
        await harness.observe("d2", [.processes: 120])
        await harness.keepObserving("d2", [.processes: 120], for: .seconds(2))
        await harness.keepObserving("d2", [.processes: 120], for: .seconds(30), every: .seconds(2))
        let records = try await harness.history("d2")
        #expect(records.map(\.action) == [.warn, .throttle, .scaleDown, .scaleDown, .suspend])
        let missed = records[3]
        #expect(!missed.succeeded && missed.error == "deadline missed")
        #expect(missed.details.contains("escalating to suspend"))
        #expect(records[4].succeeded)
        #expect(try await harness.engine.status(of: "d2").agent.state == .suspended)
    }

    @Test("migrate without a handler falls back to suspend: both are recorded")
    func migrateFallsBackToSuspend() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("g1", overrides: [.memory: LimitOverride(action: .migrate)])
        await harness.observe("g1", [.memory: 800_000_000])
        await harness.keepObserving("g1", [.memory: 800_000_000], for: .seconds(2))
        let records = try await harness.history("g1")
        #expect(records.map(\.action) == [.warn, .throttle, .suspend, .migrate], "\(records.map(\.action))")
        let suspend = try #require(records.first { $0.action == .suspend })
        #expect(suspend.succeeded)
        let migrate = try #require(records.last)
        #expect(!migrate.succeeded && migrate.error == "no migrate handler is configured")
        #expect(migrate.details.contains("fell back to suspend: frozen"))
        #expect(Set(records.compactMap(\.id)).count == records.count)
        #expect(harness.fs.value(.freeze, at: harness.leaf("standard_agent", "g1")) == "1")
        #expect(try await harness.engine.status(of: "g1").agent.state == .suspended)
    }

    @Test("a due step asks the watcher for a fresh sample on tick")
    func tickRequestsSamples() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("k1")
        await harness.observe("k1", [.cpu: 32])
        await harness.engine.tick()
        #expect(!harness.watcher.calls.contains(.requestSample("k1")))
        harness.clock.advance(.seconds(2))
        await harness.engine.tick()
        #expect(harness.watcher.calls.filter { $0 == .requestSample("k1") }.count == 1)
        // While the reading is on its way, ticks do not ask again (once a second at most).
        harness.clock.advance(.milliseconds(200))
        await harness.engine.tick()
        #expect(harness.watcher.calls.filter { $0 == .requestSample("k1") }.count == 1)
        harness.clock.advance(.seconds(1))
        await harness.engine.tick()
        #expect(harness.watcher.calls.filter { $0 == .requestSample("k1") }.count == 2)
        // A reading taken after the request arrives: the next due tick asks afresh.
        await harness.observe("k1", [.cpu: 32])
        harness.clock.advance(.milliseconds(200))
        await harness.engine.tick()
        #expect(harness.watcher.calls.filter { $0 == .requestSample("k1") }.count <= 3)
    }
}

/// A fake cgroup tree that notes the agent events published so far each
/// time cgroup.freeze is set to 1 (to check what the agent heard before).
final class FreezeSpy: ForwardingCgroupFilesystem {
    let fake: FakeCgroupFilesystem
    let hub: EventHub
    var base: any CgroupFilesystem { fake }
    private let seen = Mutex<[[CorralEvent]]>([])

    init(_ fake: FakeCgroupFilesystem, hub: EventHub) {
        self.fake = fake
        self.hub = hub
    }

    var eventsAtFreeze: [[CorralEvent]] { seen.withLock { $0 } }

    func write(_ value: String, to file: CgroupFile, of path: CgroupPath) throws(CgroupError) {
        if file == .freeze, value == "1" {
            let events = hub.recent(agent: nil)
            seen.withLock { $0.append(events) }
        }
        try fake.write(value, to: file, of: path)
    }
}

@Suite("The engine's reaction metric")
struct ReactionMetricTests {
    @Test("a reaction is timed as a crossing when the event shows a new violation, as a step when it confirms one already due")
    func reactionsTellCrossingsFromDueSteps() async throws {
        let reactions = RecordedReactions()
        let harness = try EngineHarness(instruments: reactions)
        _ = try await harness.start()
        try await harness.agent("r1")
        // Over its CPU hard limit: the warning at once (a crossing), the throttle when its delay has passed (a step).
        await harness.observe("r1", [.cpu: 32])
        #expect(reactions.seen.withLock { $0 } == ["memory.events crossing"])
        await harness.keepObserving("r1", [.cpu: 32], for: .seconds(2))
        #expect(try await harness.history("r1").map(\.action) == [.warn, .throttle])
        #expect(reactions.seen.withLock { $0 } == ["memory.events crossing", "memory.events step"])
        // A periodic sample is no reaction, however it acts.
        await harness.engine.handle(.observed(agent: "r1", at: harness.clock.now, readings: [], trigger: .sample))
        #expect(reactions.seen.withLock { $0 }.count == 2)
        // Each timing's stages follow one another, from the watcher's wake to the step's end.
        for timing in reactions.timings.withLock({ $0 }) {
            #expect(timing.woke <= timing.read && timing.read <= timing.dequeued)
            #expect(timing.dequeued <= timing.entered && timing.entered <= timing.done)
        }
    }

    @Test func aReactionsStagesAddUpToItsTotalAndReadAsMilliseconds() {
        let woke = ContinuousClock.now
        let timing = ReactionTiming(
            woke: woke, read: woke + .microseconds(3_400), dequeued: woke + .milliseconds(43),
            entered: woke + .milliseconds(45), done: woke + .milliseconds(120))
        #expect(timing.total == .milliseconds(120))
        #expect(timing.stages == "watcher read 3.4 ms, queue 40 ms, engine hop 2.0 ms, step 75 ms")
        // Handed to the engine without the loop's queue: no queue stage.
        let direct = ReactionTiming(woke: woke, read: woke, dequeued: nil, entered: woke, done: woke + .milliseconds(1))
        #expect(direct.stages == "watcher read 0.0 ms, queue 0.0 ms, engine hop 0.0 ms, step 1.0 ms")
    }
}

/// The reactions an engine reports, as "TRIGGER crossing|step".
final class RecordedReactions: EngineInstruments {
    let seen = Mutex<[String]>([])
    let timings = Mutex<[ReactionTiming]>([])
    func recorded(_ record: EnforcementRecord) {}
    func reacted(_ timing: ReactionTiming, to trigger: String, crossing: Bool) {
        seen.withLock { $0.append("\(trigger) \(crossing ? "crossing" : "step")") }
        timings.withLock { $0.append(timing) }
    }
    func committed(in duration: Duration) {}
}
