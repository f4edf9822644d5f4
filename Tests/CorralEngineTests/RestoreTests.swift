import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralTestSupport
import Testing

@Suite("Restart: restore reconciles the store with the cgroup tree")
struct RestoreTests {
    @Test("live agents come back with their ladders, vanished ones are lost, strangers discovered, empty leaves removed")
    func restoreAfterRestart() async throws {
        let first = try EngineHarness()
        _ = try await first.start()
        try await first.agent("live1")
        try await first.agent("gone1", pids: [ghostPID + 2])
        try await first.agent("ended1", pids: [ghostPID + 3])
        // live1 climbs its ladder: memory warned, cpu warned and throttled.
        await first.observe("live1", [.memory: 300_000_000, .cpu: 32])
        await first.keepObserving("live1", [.memory: 300_000_000, .cpu: 32], for: .seconds(2))
        await first.observe("ended1", [.memory: 300_000_000])
        let before = try await first.history()
        #expect(
            before.map { "\($0.agent) \($0.resource.rawValue) \($0.action.rawValue)" } == [
                "live1 memory warn", "live1 cpu warn", "live1 cpu throttle", "ended1 memory warn",
            ])
        #expect(before.compactMap(\.id) == [1, 2, 3, 4])

        // While nobody watches: ended1's processes exit, gone1's cgroup is removed,
        // a stranger starts in a leaf of its own, an empty leaf and an invalid name appear.
        let fs = first.fs
        try fs.write("1", to: .kill, of: first.leaf("standard_agent", "ended1"))
        try fs.write("1", to: .kill, of: first.leaf("standard_agent", "gone1"))
        try fs.removeDirectory(first.leaf("standard_agent", "gone1"))
        fs.seed(first.leaf("standard_agent", "stranger"), procs: [ghostPID + 4])
        fs.seed(first.leaf("standard_agent", "empty1"))
        fs.seed(first.leaf("lightweight_agent", "empty2"))
        fs.seed(first.leaf("standard_agent", ".hidden"), procs: [ghostPID + 5])
        first.clock.advance(.seconds(1))

        let second = try EngineHarness(fs: fs, store: first.store, clock: first.clock)
        let report = try await second.start()
        #expect(report.reattached == ["live1"])
        #expect(report.ended == ["ended1", "gone1"])
        #expect(report.discovered == ["stranger"])
        #expect(report.removedOrphans == ["lightweight_agent/empty2", "standard_agent/empty1"])

        let live = try await second.engine.status(of: "live1")
        #expect(live.agent.state == .running)
        #expect(live.ladder?.episodes[.cpu]?.fired == [.warn, .throttle])
        #expect(live.ladder?.episodes[.memory]?.fired == [.warn])
        #expect(live.ladder?.throttled[.cpu] == 0.9)
        let agents = Dictionary(uniqueKeysWithValues: try await second.engine.list().map { ($0.id, $0) })
        #expect(agents["ended1"]?.state == .lost && agents["ended1"]?.endReason?.contains("ended while") == true)
        #expect(agents["gone1"]?.state == .lost && agents["gone1"]?.endReason?.contains("disappeared") == true)
        #expect(agents["stranger"]?.origin == .discovered && agents["stranger"]?.state == .running)
        #expect(agents["stranger"]?.pid == ghostPID + 4)
        #expect(agents["stranger"]?.limits == CorralConfiguration.builtIn.groups["standard_agent"]?.limits)
        #expect(
            Set(second.watcher.calls) == [
                .watch("live1", second.leaf("standard_agent", "live1")), .watch("stranger", second.leaf("standard_agent", "stranger")),
            ])

        // No orphan cgroups; the invalid name is not Corral's and stays.
        #expect(try fs.children(of: second.tree.groupPath("standard_agent")) == [".hidden", "live1", "stranger"])
        #expect(try fs.children(of: second.tree.groupPath("lightweight_agent")).isEmpty)

        // No record lost or duplicated.
        #expect(try await second.history() == before)

        // The ladder continues: cpu fires nothing again; memory going hard climbs on to its throttle.
        await second.observe("live1", [.memory: 600_000_000, .cpu: 32])
        await second.keepObserving("live1", [.memory: 600_000_000, .cpu: 32], for: .seconds(2))
        let after = try await second.history()
        #expect(Array(after.prefix(4)) == before)
        let added = after.dropFirst(4)
        #expect(added.allSatisfy { $0.agent == "live1" && $0.resource == .memory }, "\(added.map(\.details))")
        #expect(added.last?.action == .throttle)
        #expect(after.compactMap(\.id) == Array(1...Int64(after.count)))
        let fired = try await second.engine.status(of: "live1").ladder?.episodes[.memory]?.fired
        #expect(fired?.contains(.throttle) == true)

        // A third start finds everything in place.
        let third = try EngineHarness(fs: fs, store: first.store, clock: first.clock)
        let again = try await third.start()
        #expect(again.reattached.sorted() == ["live1", "stranger"])
        #expect(again.ended.isEmpty && again.discovered.isEmpty && again.removedOrphans.isEmpty)
        #expect(try await third.history() == after)
        #expect(try await third.engine.status(of: "live1").ladder?.episodes[.memory]?.fired == fired)
    }

    @Test("a freeze the daemon died before seeing confirmed is rolled back at the restart and its suspend recorded as failed")
    func unconfirmedFreezeIsRolledBackAtRestart() async throws {
        let first = try EngineHarness()
        _ = try await first.start()
        try await first.agent("s6", group: "lightweight_agent")
        let leaf = first.leaf("lightweight_agent", "s6")
        first.fs.freezeCompletes = false
        await first.observe("s6", [.processes: 25])
        // Up the ladder until its freeze is written (and waits for a confirmation that never comes).
        for _ in 0..<20 where first.fs.value(.freeze, at: leaf) != "1" {
            await first.keepObserving("s6", [.processes: 25], for: .milliseconds(250))
        }
        first.engine.waitForCommits()
        #expect(first.fs.value(.freeze, at: leaf) == "1")
        #expect(try await first.engine.status(of: "s6").agent.state == .running)
        // The daemon is killed here: the pending freeze is forgotten with it.
        first.fs.freezeCompletes = true
        first.clock.advance(.seconds(1))

        let second = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock)
        let report = try await second.start()
        #expect(report.reattached == ["s6"])
        #expect(report.frozenStateRepaired == ["s6"])
        #expect(second.fs.value(.freeze, at: leaf) == "0")
        let status = try await second.engine.status(of: "s6")
        #expect(status.agent.state == .running)
        #expect(status.ladder?.suspended == false)
        let suspend = try #require(try await second.history("s6").last)
        #expect(suspend.action == .suspend && !suspend.succeeded)
        #expect(suspend.error == "corrald stopped before cgroup.events reported frozen 1; the freeze was rolled back at its restart")

        // The ladder goes on from where it was, as after any failed suspend: the
        // step is not taken again, so nothing freezes the agent behind the records' back.
        await second.observe("s6", [.processes: 25])
        await second.keepObserving("s6", [.processes: 25], for: .seconds(4))
        second.engine.waitForCommits()
        #expect(second.fs.value(.freeze, at: leaf) == "0")
        #expect(try await second.history("s6").filter { $0.action == .suspend }.count == 1)

        // A third start finds state and kernel in agreement.
        let third = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock)
        #expect(try await third.start().frozenStateRepaired.isEmpty)
    }

    @Test("a thaw whose save the daemon's death lost leaves the agent running after the restart")
    func lostThawSaveIsRepairedAtRestart() async throws {
        let first = try EngineHarness()
        _ = try await first.start()
        try await first.agent("s7", group: "lightweight_agent")
        let leaf = first.leaf("lightweight_agent", "s7")
        await first.observe("s7", [.processes: 25])
        await first.keepObserving("s7", [.processes: 25], for: .seconds(4))
        first.engine.waitForCommits()
        #expect(try await first.engine.status(of: "s7").agent.state == .suspended)
        let records = try await first.history("s7").count
        // Thawed in the kernel, then killed before the new state was saved.
        try first.fs.write("0", to: .freeze, of: leaf)
        first.clock.advance(.seconds(1))

        let second = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock)
        let report = try await second.start()
        #expect(report.frozenStateRepaired == ["s7"])
        let status = try await second.engine.status(of: "s7")
        #expect(status.agent.state == .running)
        #expect(status.ladder?.suspended == false)
        #expect(second.fs.value(.freeze, at: leaf) == "0")
        #expect(try await second.history("s7").count == records, "no record made up for a thaw")
    }
}
