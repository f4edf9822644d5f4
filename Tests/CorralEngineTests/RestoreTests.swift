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

    /// Starts an engine, walks `id`'s ladder up to a freeze that is written but
    /// never confirmed, and "kills" the daemon there: the pending freeze is
    /// forgotten with it, the ladder's suspend is saved.
    private func daemonKilledMidFreeze(_ id: String) async throws -> (EngineHarness, CgroupPath) {
        let first = try EngineHarness()
        _ = try await first.start()
        try await first.agent(id, group: "lightweight_agent")
        let leaf = first.leaf("lightweight_agent", id)
        first.fs.freezeCompletes = false
        await first.observe(id, [.processes: 25])
        for _ in 0..<20 where first.fs.value(.freeze, at: leaf) != "1" {
            await first.keepObserving(id, [.processes: 25], for: .milliseconds(250))
        }
        first.engine.waitForCommits()
        #expect(first.fs.value(.freeze, at: leaf) == "1")
        #expect(try await first.engine.status(of: id).agent.state == .running)
        #expect(try await first.engine.status(of: id).ladder?.suspended == true)
        first.fs.freezeCompletes = true
        first.clock.advance(.seconds(1))
        return (first, leaf)
    }

    @Test("a freeze the kernel completed while the daemon was down is confirmed at the restart: suspended, its suspend recorded as done")
    func freezeCompletedWhileDownIsConfirmedAtRestart() async throws {
        let (first, leaf) = try await daemonKilledMidFreeze("s6")
        first.fs.completeFreeze(at: leaf)

        let second = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock)
        let report = try await second.start()
        #expect(report.reattached == ["s6"])
        #expect(report.frozenStateRepaired == ["s6"])
        #expect(second.fs.value(.freeze, at: leaf) == "1", "the freeze in force is kept")
        let status = try await second.engine.status(of: "s6")
        #expect(status.agent.state == .suspended)
        #expect(status.ladder?.suspended == true)
        let suspends = try await second.history("s6").filter { $0.action == .suspend }
        #expect(suspends.count == 1)
        #expect(suspends.first?.succeeded == true)
        #expect(suspends.first?.details.contains("found at corrald's restart") == true)

        // A third start finds state and kernel in agreement.
        let third = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock)
        #expect(try await third.start().frozenStateRepaired.isEmpty)
        #expect(try await third.engine.status(of: "s6").agent.state == .suspended)
    }

    @Test("a freeze still unconfirmed at the restart waits for its confirmation again: suspended once the kernel says frozen 1")
    func freezePendingAtRestartIsConfirmedLater() async throws {
        let (first, leaf) = try await daemonKilledMidFreeze("s8")

        let second = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock)
        let report = try await second.start()
        #expect(report.frozenStateRepaired == ["s8"])
        #expect(second.fs.value(.freeze, at: leaf) == "1", "not rolled back while the kernel may still finish it")
        #expect(try await second.engine.status(of: "s8").agent.state == .running)
        #expect(try await second.history("s8").filter { $0.action == .suspend }.isEmpty, "no outcome before the kernel's")

        second.fs.completeFreeze(at: leaf)
        second.clock.advance(.milliseconds(500))
        _ = await second.engine.tick()
        second.engine.waitForCommits()
        #expect(try await second.engine.status(of: "s8").agent.state == .suspended)
        let suspends = try await second.history("s8").filter { $0.action == .suspend }
        #expect(suspends.map(\.succeeded) == [true])
    }

    @Test("a freeze still unconfirmed 2 s after the restart is rolled back and its suspend recorded as failed; the ladder goes on")
    func freezePendingAtRestartIsRolledBackAfterItsDeadline() async throws {
        let (first, leaf) = try await daemonKilledMidFreeze("s9")

        let second = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock)
        _ = try await second.start()
        #expect(second.fs.value(.freeze, at: leaf) == "1")
        second.clock.advance(.milliseconds(2100))
        _ = await second.engine.tick()
        second.engine.waitForCommits()
        #expect(second.fs.value(.freeze, at: leaf) == "0")
        let status = try await second.engine.status(of: "s9")
        #expect(status.agent.state == .running)
        #expect(status.ladder?.suspended == false)
        let suspend = try #require(try await second.history("s9").last)
        #expect(suspend.action == .suspend && !suspend.succeeded)
        #expect(suspend.error?.contains("did not report 'frozen 1' within 2") == true, "\(suspend.error ?? "")")

        // As after any failed suspend, the step is not taken again: nothing
        // freezes the agent behind the records' back.
        await second.keepObserving("s9", [.processes: 25], for: .seconds(4))
        second.engine.waitForCommits()
        #expect(second.fs.value(.freeze, at: leaf) == "0")
        #expect(try await second.history("s9").filter { $0.action == .suspend }.count == 1)
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

    @Test("a cgroup.freeze that cannot be read at a restart is a problem of the report, and the stored state stands")
    func unreadableFreezeIsReported() async throws {
        let first = try EngineHarness()
        _ = try await first.start()
        try await first.agent("live1")
        first.engine.waitForCommits()
        first.fs.inject(.ioError, on: .read, path: first.leaf("standard_agent", "live1"), file: .freeze)
        let second = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock)
        let report = try await second.start()
        #expect(report.reattached == ["live1"])
        #expect(report.problems.contains { $0.hasPrefix("live1: whether it is frozen is unknown") }, "\(report.problems)")
        #expect(try await second.engine.status(of: "live1").agent.state == .running)
    }
}
