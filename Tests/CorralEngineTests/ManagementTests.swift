import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Live changes: groups, overrides, reported usage")
struct ManagementTests {
    @Test("a live group update rewrites the group totals and the files of its agents without an override")
    func groupUpdate() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("u1")
        try await harness.agent("u2", overrides: [.cpu: LimitOverride(hard: 20)])
        try await harness.agent("l1", group: "lightweight_agent")
        let group = harness.tree.groupPath("standard_agent")
        #expect(harness.fs.value(.memoryMax, at: group) == "4000000000")

        let updated = try await harness.engine.updateGroup(
            "standard_agent", limits: [.cpu: LimitOverride(hard: 40)], totals: [.memory: 3_000_000_000, .processes: 1500])
        #expect(updated.limits[.cpu]?.hard == 40 && updated.totals[.memory] == 3_000_000_000)
        #expect(harness.fs.value(.memoryMax, at: group) == "3000000000")
        #expect(harness.fs.value(.pidsMax, at: group) == "1500")
        #expect(harness.fs.value(.cpuMax, at: harness.leaf("standard_agent", "u1")) == "40000 100000")
        #expect(harness.fs.value(.cpuMax, at: harness.leaf("standard_agent", "u2")) == "20000 100000")
        #expect(harness.fs.value(.cpuMax, at: harness.leaf("lightweight_agent", "l1")) == "10000 100000")
        #expect(try await harness.engine.status(of: "u1").agent.limits[.cpu]?.hard == 40)
        #expect(try await harness.engine.group("standard_agent").limits[.cpu]?.hard == 40)
        #expect(try harness.store.groupOverrides()["standard_agent"]?.limits[.cpu]?.hard == 40)
        harness.engine.waitForCommits()  // the agents' rows are saved in order with the ladder's steps
        #expect(try harness.store.agents().first { $0.id == "u1" }?.limits[.cpu]?.hard == 40)
        #expect(harness.engine.hub.recent(agent: nil).contains { $0.kind == .groupChanged && $0.message.contains("standard_agent") })
        // Each agent whose limits changed hears it on its own stream, with its limits now;
        // one whose override covers the change, and other groups' agents, do not.
        let notices = harness.events("u1").filter { $0.kind == .quotaChanged }
        #expect(notices.count == 1)
        #expect(notices.first?.limits?[.cpu]?.hard == 40)
        #expect(notices.first?.limits == (try await harness.engine.status(of: "u1").agent.limits))
        #expect(!harness.events("u2").contains { $0.kind == .quotaChanged })
        #expect(!harness.events("l1").contains { $0.kind == .quotaChanged })

        // Refused changes write nothing.
        let before = harness.fs.writes.count
        await #expect(throws: EngineError.self) {
            try await harness.engine.updateGroup("standard_agent", limits: [.cpu: LimitOverride(soft: 50, hard: 45)], totals: [:])
        }
        await #expect(throws: EngineError(.notFound, "no group 'nope'")) {
            try await harness.engine.updateGroup("nope", limits: [:], totals: [.memory: 1])
        }
        let files = await #expect(throws: EngineError.self) {
            try await harness.engine.updateGroup("standard_agent", limits: [:], totals: [.files: 3])
        }
        #expect(files?.code == .invalid)
        #expect(harness.fs.writes.count == before)
    }

    @Test("overrides rewrite the agent's files; invalid ones change nothing")
    func overrides() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("o1")
        let leaf = harness.leaf("standard_agent", "o1")
        let record = try await harness.engine.setOverrides(
            "o1", [.memory: LimitOverride(hard: 300_000_000), .files: LimitOverride(hard: 10)])
        #expect(harness.fs.value(.memoryMax, at: leaf) == "300000000")
        #expect(harness.fs.value(.memoryHigh, at: leaf) == "200000000")
        #expect(record.limits[.memory]?.hard == 300_000_000)
        #expect(record.limits[.files] == ResourceLimit(soft: 10, hard: 10, action: .warn))
        #expect(record.overrides[.memory] == LimitOverride(hard: 300_000_000))
        #expect(harness.events("o1").contains { $0.kind == .quotaChanged })

        let invalid = await #expect(throws: EngineError.self) {
            try await harness.engine.setOverrides("o1", [.memory: LimitOverride(soft: 400_000_000, hard: 300_000_000)])
        }
        #expect(invalid?.code == .invalid)
        #expect(harness.fs.value(.memoryMax, at: leaf) == "300000000")
        let unknown = await #expect(throws: EngineError.self) { try await harness.engine.setOverrides("nobody", [:]) }
        #expect(unknown?.code == .notFound)
    }

    @Test("usage reports of resources without a controller create violations; memory cannot be reported")
    func reportedUsage() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("r1", overrides: [.files: LimitOverride(soft: 10, hard: 20, action: .warn)])
        let violations = try await harness.engine.report(usage: [.files: 25, .connections: 3], for: "r1")
        #expect(violations == [Violation(agent: "r1", resource: .files, kind: .hard, current: 25, limit: 20)])
        #expect(try await harness.engine.compliance(of: "r1") == violations)
        let records = try await harness.history("r1")
        #expect(records.map(\.action) == [.warn])
        #expect(records.first?.resource == .files && records.first?.kind == .hard)
        #expect(harness.events("r1").contains { $0.kind == .usageReported })
        let status = try await harness.engine.status(of: "r1")
        #expect(status.usage[.files] == 25)
        #expect(status.violations == violations, "the status shows what compliance shows")

        for usage: [Resource: Double] in [[.memory: 1], [.cpu: 5], [.processes: 2], [.files: -1], [.files: .infinity], [.files: .nan]] {
            let error = await #expect(throws: EngineError.self) { try await harness.engine.report(usage: usage, for: "r1") }
            #expect(error?.code == .invalid)
        }
        let unknown = await #expect(throws: EngineError.self) { try await harness.engine.report(usage: [.files: 1], for: "nobody") }
        #expect(unknown?.code == .notFound)

        #expect(try await harness.engine.report(usage: [.files: 5], for: "r1").isEmpty)
        #expect(try await harness.engine.compliance(of: "r1").isEmpty)
    }

    @Test("finished for a registered agent that never attached ends it and removes its cgroup")
    func finishedBeforeAttach() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        _ = try await harness.engine.register(id: "f1", group: "standard_agent", command: ["worker"], overrides: [:])
        let leaf = harness.leaf("standard_agent", "f1")
        let record = try await harness.engine.finished("f1", exitStatus: 127, reason: "the command was not found", pid: 4242)
        #expect(!record.state.isLive, "state \(record.state)")
        #expect(record.pid == 4242, "the process named at the end, as `corral run` does for a command that ended before it attached")
        #expect(record.exitStatus == 127 && record.endReason == "the command was not found")
        #expect(harness.fs.value(.procs, at: leaf) == nil, "the cgroup is removed")
        // Nothing treats it as live without a cgroup any more: no 500s, conflicts.
        let freeze = await #expect(throws: EngineError.self) { try await harness.engine.freeze("f1") }
        #expect(freeze?.code == .conflict)
        let limits = await #expect(throws: EngineError.self) { try await harness.engine.setOverrides("f1", [:]) }
        #expect(limits?.code == .conflict)
        #expect(try await harness.engine.list(includeEnded: false).isEmpty)
    }

    @Test("operator freeze and thaw go through cgroup.freeze; kill through cgroup.kill")
    func operatorActions() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("op1", pids: [ghostPID, ghostPID + 1])
        let leaf = harness.leaf("standard_agent", "op1")
        #expect(try await harness.engine.freeze("op1").state == .suspended)
        #expect(harness.fs.value(.freeze, at: leaf) == "1")
        #expect(try await harness.engine.thaw("op1").state == .running)
        #expect(harness.fs.value(.freeze, at: leaf) == "0")
        harness.fs.freezeCompletes = false
        let failed = await #expect(throws: EngineError.self) { try await harness.engine.freeze("op1") }
        #expect(failed?.code == .failed)
        #expect(try await harness.engine.status(of: "op1").agent.state == .running)
        _ = try await harness.engine.kill(agent: "op1")
        #expect(harness.fs.killed == [ghostPID, ghostPID + 1])
        await harness.engine.handle(.emptied("op1"))
        let status = try await harness.engine.status(of: "op1")
        #expect(status.agent.state == .terminated && status.agent.endReason == "killed by request")
        let ended = await #expect(throws: EngineError.self) { try await harness.engine.freeze("op1") }
        #expect(ended?.code == .conflict)
    }
}

/// Capacity, admission and priorities in the engine, against the fake cgroupfs.
@Suite("Capacity, admission and priorities")
struct CapacityEngineTests {
    @Test("admission: refuse answers a conflict naming the group total, and creates nothing")
    func refuseNamesTheShortfall() async throws {
        var configuration = EngineHarness.quickConfiguration
        configuration.admission = .refuse
        configuration.groups["lightweight_agent"]?.totals[.memory] = 250_000_000  // 2 agents at 100 MB hard
        let harness = try EngineHarness(configuration: configuration)
        _ = try await harness.start()
        try await harness.agent("l1", group: "lightweight_agent")
        try await harness.agent("l2", group: "lightweight_agent")
        await #expect(throws: EngineError.self) { try await harness.agent("l3", group: "lightweight_agent") }
        do {
            _ = try await harness.engine.register(id: "l3", group: "lightweight_agent", command: ["w"], overrides: [:])
        } catch let error as EngineError {
            #expect(error.code == .conflict)
            #expect(
                error.message
                    == "agent 'l3' not admitted (admission: refuse): memory: 200 MB committed + 100 MB would exceed group lightweight_agent's total of 250 MB"
            )
        }
        #expect(harness.fs.value(.procs, at: harness.leaf("lightweight_agent", "l3")) == nil, "no cgroup was left")
        // A smaller agent still fits.
        try await harness.agent("l4", group: "lightweight_agent", overrides: [.memory: LimitOverride(soft: 10_000_000, hard: 50_000_000)])
        let capacity = await harness.engine.capacity()
        let light = capacity[.memory]?.groups.first { $0.group == "lightweight_agent" }
        #expect(light?.agents == 3 && light?.committedHard == 250_000_000)
    }

    @Test("admission: allow starts the agent and says it is over capacity")
    func allowWarns() async throws {
        var configuration = EngineHarness.quickConfiguration
        configuration.groups["lightweight_agent"]?.totals[.memory] = 150_000_000
        let harness = try EngineHarness(configuration: configuration)
        _ = try await harness.start()
        try await harness.agent("l1", group: "lightweight_agent")
        try await harness.agent("l2", group: "lightweight_agent")
        let warning = harness.events("l2").first { $0.kind == .daemon }
        #expect(warning?.message.contains("admitted over capacity (admission: allow)") == true, "\(harness.events("l2"))")
        #expect(harness.events("l1").allSatisfy { $0.kind != .daemon })
    }

    @Test("priorities: leaves get weights and protection, groups claim it, and it follows agents coming and going")
    func prioritiesFollowAgents() async throws {
        var configuration = EngineHarness.quickConfiguration
        configuration.agents["judge"] = AgentOverride(priority: Priority(rawValue: 10))
        let harness = try EngineHarness(configuration: configuration)
        _ = try await harness.start()
        let judge = try await harness.agent("judge")
        #expect(judge.priority == Priority(rawValue: 10) && judge.priorityIsOwn)
        let plain = try await harness.agent("plain")
        #expect(plain.priority == .standard && !plain.priorityIsOwn)
        let group = harness.tree.groupPath("standard_agent")
        #expect(harness.fs.value(.cpuWeight, at: harness.leaf("standard_agent", "judge")) == "3200")
        #expect(harness.fs.value(.memoryLow, at: harness.leaf("standard_agent", "judge")) == "200000000")
        // The default priority writes nothing: the kernel's defaults stand.
        #expect(harness.written(.cpuWeight, at: harness.leaf("standard_agent", "plain")).isEmpty)
        #expect(harness.fs.value(.memoryLow, at: group) == "200000000")
        _ = try await harness.engine.setPriority("plain", 8)
        #expect(harness.fs.value(.memoryLow, at: group) == "320000000")
        await harness.engine.handle(.emptied("judge"))
        #expect(harness.fs.value(.memoryLow, at: group) == "120000000")
        await #expect(throws: EngineError.self) { try await harness.engine.setPriority("plain", 42) }
        #expect(harness.fs.value(.cpuWeight, at: harness.leaf("standard_agent", "plain")) == "800")
    }
}

/// The host ladder carried out by the engine against the fake cgroupfs.
@Suite("Host pressure in the engine")
struct HostPressureEngineTests {
    static let allocatable = 1_000_000_000.0

    static func reading(_ share: Double, at second: Int64) -> HostReading {
        HostReading(
            at: Timestamp(milliseconds: 1_000_000 + second * 1000), memoryUsed: share * allocatable, memoryAllocatable: allocatable,
            memory: nil, cpu: nil, io: nil)
    }

    @Test("lowest priority first: throttled, then frozen, each recorded as host_pressure; recovery thaws and restores in reverse")
    func stepsAndRecovery() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        for (id, priority) in [("p3", 3), ("p1", 1), ("p9", 9), ("p2", 2)] {
            try await harness.agent(id, overrides: [.memory: LimitOverride(soft: 50_000_000, hard: 100_000_000)])
            _ = try await harness.engine.setPriority(id, priority)
        }
        let p1 = harness.leaf("standard_agent", "p1")
        var second: Int64 = 0
        func feed(_ share: Double) async {
            await harness.engine.observeHost(Self.reading(share, at: second))
            second += 1
        }
        await feed(0.80)
        for share in [0.86, 0.88, 0.90, 0.92] { await feed(share) }
        // p1 throttled then frozen, p2 throttled then frozen; p9 (protected) untouched.
        #expect(harness.written(.memoryHigh, at: p1).last == "1048576")
        #expect(harness.fs.value(.cpuMax, at: p1) == "7500 100000")
        #expect(harness.fs.value(.freeze, at: p1) == "1")
        #expect(harness.fs.value(.freeze, at: harness.leaf("standard_agent", "p2")) == "1")
        #expect(harness.fs.value(.freeze, at: harness.leaf("standard_agent", "p3")) == "0")
        let status = try await harness.engine.status(of: "p1")
        #expect(status.agent.state == .suspended)
        let records = try await harness.history().filter { $0.kind == .hostPressure }
        #expect(records.map { "\($0.agent) \($0.action.rawValue)" } == ["p1 throttle", "p1 suspend", "p2 throttle", "p2 suspend"])
        #expect(records.allSatisfy { $0.succeeded })
        #expect(records[1].details.hasPrefix("frozen in") && records[1].details.contains("priority 1"))
        let capacity = await harness.engine.capacity()
        #expect(capacity.hostPressure?.phase == .escalating && capacity.hostPressure?.steps.count == 4)

        // Calm for the quiet period: both fit under the critical watermark (100 MB of room
        // each), thawed latest first in one step.
        for _ in 0..<10 { await feed(0.5) }
        #expect(harness.fs.value(.freeze, at: p1) == "1")
        await feed(0.5)
        #expect(harness.fs.value(.freeze, at: harness.leaf("standard_agent", "p2")) == "0")
        #expect(harness.fs.value(.freeze, at: p1) == "0")
        let thawed = harness.engine.hub.recent(agent: nil).filter { $0.kind == .thawed }.compactMap(\.agent)
        #expect(thawed == ["p2", "p1"])
        #expect(harness.fs.value(.memoryHigh, at: p1) == "50000000" && harness.fs.value(.cpuMax, at: p1) == "30000 100000")
        #expect(try await harness.engine.status(of: "p1").agent.state == .running)
        let told = harness.engine.hub.recent(agent: nil).filter { $0.kind == .hostPressure }.map(\.message)
        #expect(told.first?.hasPrefix("host pressure: memory 86% of the allocatable and rising") == true, "\(told)")
        #expect(told.last == "host pressure passed: every step is undone")
        #expect(await harness.engine.capacity().hostPressure?.phase == .calm)
    }

    @Test("a restarted daemon still holds, then undoes, the host steps in force")
    func restartKeepsSteps() async throws {
        let fs = FakeCgroupFilesystem()
        let store = MemoryStore()
        let first = try EngineHarness(fs: fs, store: store)
        _ = try await first.start()
        try await first.agent("low", overrides: [.memory: LimitOverride(soft: 50_000_000, hard: 100_000_000)])
        _ = try await first.engine.setPriority("low", 1)
        let leaf = first.leaf("standard_agent", "low")
        await first.engine.observeHost(Self.reading(0.97, at: 0))
        await first.engine.observeHost(Self.reading(0.97, at: 1))
        #expect(fs.value(.freeze, at: leaf) == "1" && fs.value(.memoryHigh, at: leaf) == "1048576")
        first.engine.waitForCommits()

        let second = try EngineHarness(fs: fs, store: store)
        #expect(try await second.start().limitsRestored.isEmpty, "a clamp whose step is saved is kept")
        let restored = await second.engine.capacity().hostPressure
        #expect(restored?.phase == .holding && restored?.steps.map(\.stage) == [.throttled, .frozen])
        for second_ in 2..<13 { await second.engine.observeHost(Self.reading(0.5, at: Int64(second_))) }
        #expect(fs.value(.freeze, at: leaf) == "0" && fs.value(.memoryHigh, at: leaf) == "50000000")
        #expect(try await second.engine.status(of: "low").agent.state == .running)
        #expect(await second.engine.capacity().hostPressure?.phase == .calm)
    }

    @Test("a host clamp written but never saved (the daemon killed in between) is put back to the configured limits at the restart")
    func unsavedClampIsReleasedAtRestart() async throws {
        let fs = FakeCgroupFilesystem()
        let store = MemoryStore()
        let first = try EngineHarness(fs: fs, store: store)
        _ = try await first.start()
        try await first.agent("low", overrides: [.memory: LimitOverride(soft: 50_000_000, hard: 100_000_000)])
        try await first.agent("kept", overrides: [.memory: LimitOverride(soft: 50_000_000, hard: 100_000_000)])
        first.engine.waitForCommits()
        let leaf = first.leaf("standard_agent", "low")
        // What `hostStep` writes before its record and ladder are committed, and nothing after.
        var changes: [String] = []
        try first.tree.clampForHost(leaf, memoryUsage: 0, cpuLimit: 30, share: 0.25, changed: &changes)
        fs.set(.pidsMax, "3", at: leaf)
        #expect(fs.value(.memoryHigh, at: leaf) == "1048576" && fs.value(.cpuMax, at: leaf) == "7500 100000")
        // Within the kernel's page rounding of the configured memory.high: equal.
        fs.set(.memoryHigh, "49999872", at: first.leaf("standard_agent", "kept"))

        let second = try EngineHarness(fs: fs, store: store)
        let report = try await second.start()
        #expect(
            report.limitsRestored == ["low: memory.high 1048576 → 50000000, cpu.max 7500 100000 → 30000 100000, pids.max 3 → 100"],
            "\(report.limitsRestored)")
        #expect(fs.value(.memoryHigh, at: leaf) == "50000000" && fs.value(.cpuMax, at: leaf) == "30000 100000")
        #expect(fs.value(.pidsMax, at: leaf) == "100")
        #expect(report.problems.isEmpty, "\(report.problems)")
        let said = second.engine.hub.recent(agent: nil).map(\.message).joined(separator: "\n")
        #expect(said.contains("limits that differed from the stored state put back for 1 (low: memory.high 1048576 → 50000000"), "\(said)")
        let third = try EngineHarness(fs: fs, store: store)
        #expect(try await third.start().limitsRestored.isEmpty, "state and kernel agree now")
    }

    @Test("a host throttle that cannot read the limit in force fails and loosens nothing; a freeze not taken back says so")
    func failuresAreRecordedNotGuessed() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("p1", overrides: [.memory: LimitOverride(soft: 50_000_000, hard: 100_000_000)])
        _ = try await harness.engine.setPriority("p1", 1)
        let p1 = harness.leaf("standard_agent", "p1")
        let highBefore = harness.written(.memoryHigh, at: p1)
        let cpuBefore = harness.written(.cpuMax, at: p1)
        // memory.high unreadable: no guess of "max" (which would let the host throttle loosen
        // what the agent's own ladder set), so nothing is written and the step fails.
        harness.fs.inject(.ioError, on: .read, path: p1, file: .memoryHigh)
        await harness.engine.observeHost(Self.reading(0.80, at: 0))
        await harness.engine.observeHost(Self.reading(0.86, at: 1))
        let first = try #require(try await harness.history().first { $0.kind == .hostPressure })
        #expect(first.action == .throttle && !first.succeeded)
        #expect(first.error?.contains("memory.high") == true, "\(first.error ?? "")")
        #expect(harness.written(.memoryHigh, at: p1) == highBefore && harness.written(.cpuMax, at: p1) == cpuBefore)

        // The freeze cannot be written, nor set back: the record says both.
        harness.fs.inject(.ioError, on: .write, path: p1, file: .freeze, times: 2)
        for second in 2..<6 { await harness.engine.observeHost(Self.reading(0.97, at: Int64(second))) }
        let suspend = try #require(try await harness.history().first { $0.kind == .hostPressure && $0.action == .suspend })
        #expect(!suspend.succeeded)
        #expect(suspend.error?.contains("could not be set back to 0") == true, "\(suspend.error ?? "")")
    }

    @Test("an agent that follows its stream is told to degrade first; with the ladder off nothing happens")
    func degradeFirstAndOff() async throws {
        var configuration = EngineHarness.quickConfiguration
        configuration.hostPressure.enabled = false
        let off = try EngineHarness(configuration: configuration)
        _ = try await off.start()
        try await off.agent("a")
        for second in 0..<5 { await off.engine.observeHost(Self.reading(0.99, at: Int64(second))) }
        #expect(try await off.history().isEmpty)

        let harness = try EngineHarness()
        _ = try await harness.start()
        try await harness.agent("listener")
        let stream = harness.engine.hub.subscribe(agent: "listener", isListener: true)
        await harness.engine.observeHost(Self.reading(0.97, at: 0))
        let records = try await harness.history("listener")
        #expect(records.map(\.action) == [.warn] && records.first?.succeeded == true)
        #expect(records.first?.details.contains("degradation emergency sent to 1 listener(s)") == true)
        #expect(harness.events("listener").contains { $0.kind == .degradationStrategy && $0.plan?.level == .emergency })
        withExtendedLifetime(stream) {}
    }
}

/// `admission: queue` in the engine.
@Suite("Admission queue")
struct AdmissionQueueTests {
    @Test("a start that does not fit waits with its position, highest priority first, and starts when capacity frees")
    func queueThenStart() async throws {
        var configuration = EngineHarness.quickConfiguration
        configuration.admission = .queue
        configuration.groups["lightweight_agent"]?.totals[.memory] = 250_000_000
        let harness = try EngineHarness(configuration: configuration)
        _ = try await harness.start()
        try await harness.agent("l1", group: "lightweight_agent")
        try await harness.agent("l2", group: "lightweight_agent")
        let third = try await harness.engine.register(id: "l3", group: "lightweight_agent", command: ["w"], overrides: [:])
        #expect(third.state == .queued && third.queuePosition == 1 && third.cgroup.isEmpty)
        let urgent = try await harness.engine.register(id: "l4", group: "lightweight_agent", command: ["w"], overrides: [:], priority: 9)
        #expect(urgent.state == .queued && urgent.queuePosition == 1)
        let listed = try await harness.engine.list(includeEnded: false).filter { $0.state == .queued }
        // Listed in id order, each with its place in the queue.
        #expect(listed.map(\.id) == ["l3", "l4"] && listed.map(\.queuePosition) == [2, 1])
        #expect(harness.fs.value(.procs, at: harness.leaf("lightweight_agent", "l3")) == nil, "no cgroup while queued")
        await #expect(throws: EngineError.self) { _ = try await harness.engine.kill(agent: "l3") }
        await #expect(throws: EngineError.self) {
            _ = try await harness.engine.register(id: "l3", group: "lightweight_agent", command: ["w"], overrides: [:])
        }
        // l1 ends: l4 (priority 9) starts; l3 waits (the group's total has room for one more).
        await harness.engine.handle(.emptied("l1"))
        let started = try await harness.engine.status(of: "l4").agent
        #expect(started.state == .starting && !started.cgroup.isEmpty && started.queuePosition == nil)
        #expect(try await harness.engine.status(of: "l3").agent.queuePosition == 1)
        // Removing a queued agent takes it out of the queue.
        try await harness.engine.remove("l3", force: false)
        #expect(try await harness.engine.list(includeEnded: false).allSatisfy { $0.state != .queued })
        #expect(harness.events("l4").contains { $0.kind == .agentQueued })
    }

    @Test("a queued launch admitted while its row cannot be stored runs and is watched; the row is kept, not recorded as lost")
    func admittedLaunchWithAFullStore() async throws {
        var configuration = EngineHarness.quickConfiguration
        configuration.admission = .queue
        configuration.groups["lightweight_agent"]?.totals[.memory] = 150_000_000
        let memory = MemoryStore()
        let dying = DyingStore(memory)
        let harness = try EngineHarness(configuration: configuration, store: memory, storeWrapper: { _ in dying })
        _ = try await harness.start()
        try await harness.agent("l1", group: "lightweight_agent")
        let queued = try await harness.engine.launch(
            LaunchRequest(id: "q1", group: "lightweight_agent", command: ["/bin/sleep", "30"]))
        #expect(queued.state == .queued)
        dying.die()  // a full disk: nothing can be stored from now on
        await harness.engine.handle(.emptied("l1"))
        let status = try await harness.engine.status(of: "q1").agent
        let pid = try #require(status.pid, "started once admitted: \(status)")
        defer {
            kill(pid, SIGKILL)
            var exit: Int32 = 0
            waitpid(pid, &exit, 0)
        }
        #expect(status.state == .running, "\(status)")
        #expect(try memory.agent(id: "q1")?.state != .lost, "not recorded as lost")
        harness.engine.waitForCommits()  // the row's save is the committer's, and said from there
        let said = harness.engine.hub.recent(agent: "q1").map(\.message)
        #expect(said.contains { $0.hasPrefix("could not record the start of q1") }, "\(said)")
        #expect(!said.contains { $0.contains("could not start once admitted") }, "\(said)")
    }

    @Test("the agents list pages in id order: the table's live state over the stored row, ended ones only with all, queued ones in place")
    func listPages() async throws {
        var configuration = EngineHarness.quickConfiguration
        configuration.admission = .queue
        configuration.groups["lightweight_agent"]?.totals[.memory] = 250_000_000
        let harness = try EngineHarness(configuration: configuration)
        _ = try await harness.start()
        // Rows only the store has (an earlier daemon's ended agents).
        for id in ["a0", "c0", "e0"] {
            try harness.store.save(
                AgentRecord(
                    id: id, group: "standard_agent", state: .exited, origin: .launched, pid: nil, command: ["old"],
                    limits: LimitSet(), cgroup: "", createdAt: harness.clock.now))
        }
        for id in ["b1", "d1", "f1"] { try await harness.agent(id) }
        try await harness.agent("l1", group: "lightweight_agent")
        try await harness.agent("l2", group: "lightweight_agent")
        await harness.engine.handle(.emptied("d1"))
        _ = try await harness.engine.register(id: "c9", group: "lightweight_agent", command: ["w"], overrides: [:])
        // A stale stored row of a running agent: the table's state is the one listed.
        var stale = try await harness.engine.status(of: "b1").agent
        stale.state = .exited
        try harness.store.save(stale)

        func pages(includeEnded: Bool, limit: Int) async throws -> [[String]] {
            var result: [[String]] = []
            var after: String?
            repeat {
                let page = try await harness.engine.list(includeEnded: includeEnded, after: after, limit: limit)
                result.append(page.agents.map(\.id))
                after = page.next
                #expect(page.next == nil || page.next == page.agents.last?.id)
            } while after != nil
            return result
        }
        let all = try await harness.engine.list().map(\.id)
        #expect(all == ["a0", "b1", "c0", "c9", "d1", "e0", "f1", "l1", "l2"])
        #expect(try await pages(includeEnded: true, limit: 2) == [["a0", "b1"], ["c0", "c9"], ["d1", "e0"], ["f1", "l1"], ["l2"]])
        #expect(try await pages(includeEnded: true, limit: 9) == [all])
        #expect(try await pages(includeEnded: false, limit: 2) == [["b1", "c9"], ["f1", "l1"], ["l2"]])
        let one = try await harness.engine.list(includeEnded: true, after: "c0", limit: 1)
        #expect(one.agents.map(\.id) == ["c9"] && one.agents.first?.queuePosition == 1 && one.next == "c9")
        #expect(try await harness.engine.list(includeEnded: true, after: "l2", limit: 5).agents.isEmpty)
        #expect(try await harness.engine.list(includeEnded: true, after: "a0", limit: 1).agents.first?.state == .running)
        #expect(try await harness.engine.list(includeEnded: true, after: "c9", limit: 1).agents.first?.state == .exited)
    }
}
