import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A store that stops taking commits when the daemon "dies": every step from then on is
/// carried out on the (fake) kernel but never stored, as when corrald is killed between an
/// action and its commit.
final class DyingStore: ForwardingEngineStore {
    let memory: MemoryStore
    var base: any EngineStore { memory }
    private let dead = Atomic<Bool>(false)

    init(_ memory: MemoryStore, dead: Bool = false) {
        self.memory = memory
        self.dead.store(dead, ordering: .relaxed)
    }

    func die() { dead.store(true, ordering: .relaxed) }

    struct Killed: Error, CustomStringConvertible {
        var description: String { "corrald was killed (injected)" }
    }

    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        if dead.load(ordering: .relaxed) { throw Killed() }
        return try memory.commit(batch: batch)
    }
}

@Suite("Restart: actions carried out but never stored are replayed from the intent journal")
struct IntentReplayTests {
    /// Whether the journal holds an intent with a command like `matches`.
    static func journalHas(_ journal: MemoryIntentJournal, _ matches: (LadderCommand) -> Bool) -> Bool {
        ((try? journal.read().intents) ?? []).contains { intent in
            if case .commands(let commands) = intent.work { return commands.contains(where: matches) }
            return false
        }
    }

    static func isTerminate(_ command: LadderCommand) -> Bool {
        if case .terminate = command { return true }
        return false
    }

    /// Walks a real process's ladder to its suspend (stored), then "kills" the daemon: the
    /// terminate that follows sends SIGTERM and is never stored.
    static func terminateNeverStored(_ child: SleepingChild) async throws -> (EngineHarness, MemoryStore, MemoryIntentJournal) {
        let memory = MemoryStore()
        let dying = DyingStore(memory)
        let journal = MemoryIntentJournal()
        let first = try EngineHarness(store: memory, intents: journal, storeWrapper: { _ in dying })
        _ = try await first.start()
        first.fs.seed(.anchor, procs: [child.pid])
        _ = try await first.engine.adopt(pid: child.pid, id: "x1", group: "heavy_computation_agent")
        await first.observe("x1", [.processes: 250])
        for _ in 0..<20 where try await first.history("x1").count < 3 {
            await first.keepObserving("x1", [.processes: 250], for: .seconds(1))
        }
        #expect(try await first.history("x1").map(\.action) == [.warn, .throttle, .suspend])
        first.engine.waitForCommits()
        dying.die()
        for _ in 0..<20 where !journalHas(journal, isTerminate) {
            await first.keepObserving("x1", [.processes: 250], for: .seconds(1))
        }
        #expect(journalHas(journal, isTerminate), "the terminate's intent was written")
        first.engine.waitForCommits()
        #expect(try memory.history(agent: "x1", since: nil, afterID: nil, limit: 100).map(\.action) == [.warn, .throttle, .suspend])
        first.clock.advance(.seconds(1))
        return (first, memory, journal)
    }

    @Test(
        "a terminate carried out but never stored: its record at the restart with the step's time, SIGTERM again, the kill after its grace")
    func terminateReplayedOnALiveAgent() async throws {
        let child = try SleepingChild()
        defer { child.stop() }
        let (first, memory, journal) = try await Self.terminateNeverStored(child)
        let intent = try #require(try journal.read().intents.last)

        let second = try EngineHarness(fs: first.fs, store: memory, clock: first.clock, intents: journal)
        let report = try await second.start()
        #expect(report.replayed == ["x1"] && report.reattached == ["x1"])
        #expect(try journal.read().intents.isEmpty, "the journal starts empty once the replay is stored")
        let records = try await second.history("x1")
        #expect(records.map(\.action) == [.warn, .throttle, .suspend, .terminate])
        #expect(records.compactMap(\.id) == [1, 2, 3, 4])
        let terminate = try #require(records.last)
        #expect(terminate.at == intent.at, "the step's time, not the restart's")
        // The child got SIGTERM from the first daemon and is a zombie (nobody reaps an adopted
        // process): the signal reaches it again.
        #expect(terminate.succeeded && terminate.details.contains("SIGTERM sent to 1 processes"), "\(terminate.details)")
        #expect(terminate.details.contains("replayed at corrald's restart"))
        #expect(try await second.engine.status(of: "x1").ladder?.terminating == true)

        // The grace counts from the step: the tick kills once it has passed.
        second.clock.advance(.seconds(5))
        await second.engine.tick()
        #expect(second.fs.killed == [child.pid])
        let kill = try #require(try await second.history("x1").last)
        #expect(kill.action == .terminate && kill.details.contains("cgroup.kill") && !kill.details.contains("replayed"))

        // A third start replays nothing: no record twice.
        let stored = try await second.history()
        let third = try EngineHarness(fs: first.fs, store: memory, clock: first.clock, intents: journal)
        #expect(try await third.start().replayed.isEmpty)
        #expect(try await third.history() == stored)
    }

    @Test("a terminate whose agent ended while the daemon was down: recorded as done, the agent terminated by the ladder")
    func terminateReplayedOnAnEndedAgent() async throws {
        let child = try SleepingChild()
        defer { child.stop() }
        let (first, memory, journal) = try await Self.terminateNeverStored(child)
        try first.fs.write("1", to: .kill, of: first.leaf("heavy_computation_agent", "x1"))

        let second = try EngineHarness(fs: first.fs, store: memory, clock: first.clock, intents: journal)
        let report = try await second.start()
        #expect(report.ended == ["x1"] && report.replayed == ["x1"])
        let records = try await second.history("x1")
        #expect(records.map(\.action) == [.warn, .throttle, .suspend, .terminate])
        let terminate = try #require(records.last)
        #expect(terminate.succeeded && terminate.details.contains("the agent had ended by its restart"), "\(terminate.details)")
        let agent = try #require(try await second.engine.list().first { $0.id == "x1" })
        #expect(agent.state == .terminated && agent.endReason?.contains("processes") == true, "\(agent)")
        #expect(try memory.ladders().isEmpty, "its ladder went with it")
    }

    @Test(
        "a throttle never stored is written again at the restart; a restart killed before storing its replay replays it once more, not twice"
    )
    func throttleReplayedOnce() async throws {
        let memory = MemoryStore()
        let dying = DyingStore(memory)
        let journal = MemoryIntentJournal()
        let first = try EngineHarness(store: memory, intents: journal, storeWrapper: { _ in dying })
        _ = try await first.start()
        try await first.agent("t1")
        let leaf = first.leaf("standard_agent", "t1")
        let original = try #require(first.fs.value(.cpuMax, at: leaf))
        await first.observe("t1", [.cpu: 32])
        first.engine.waitForCommits()
        #expect(try await first.history("t1").map(\.action) == [.warn])
        dying.die()
        let isThrottle: (LadderCommand) -> Bool = { if case .throttle = $0 { true } else { false } }
        for _ in 0..<20 where !Self.journalHas(journal, isThrottle) {
            await first.keepObserving("t1", [.cpu: 32], for: .seconds(1))
        }
        let throttled = try #require(first.fs.value(.cpuMax, at: leaf))
        #expect(throttled != original)
        // Killed between the intent and the write: the kernel still has the old limit.
        try first.fs.write(original, to: .cpuMax, of: leaf)
        first.engine.waitForCommits()
        first.clock.advance(.seconds(1))

        // A restart killed before it stored its replay: nothing stored, the journal kept.
        let failed = try EngineHarness(
            fs: first.fs, store: memory, clock: first.clock, intents: journal, storeWrapper: { DyingStore($0, dead: true) })
        await #expect(throws: DyingStore.Killed.self) { try await failed.start() }
        #expect(try journal.read().intents.count == 1, "the throttle's (the warning wrote none)")

        let second = try EngineHarness(fs: first.fs, store: memory, clock: first.clock, intents: journal)
        #expect(try await second.start().replayed == ["t1"])
        #expect(second.fs.value(.cpuMax, at: leaf) == throttled, "the throttle is in the kernel again")
        let records = try await second.history("t1")
        #expect(records.map(\.action) == [.warn, .throttle], "each action once: \(records.map(\.details))")
        #expect(records.compactMap(\.id) == [1, 2])
        #expect(records.last?.succeeded == true && records.last?.details.contains("replayed") == true)
        #expect(try await second.engine.status(of: "t1").ladder?.episodes[.cpu]?.fired == [.warn, .throttle])
    }

    @Test("a journal that cannot be written does not stop enforcement: the action is carried out and stored, the trouble said once")
    func journalFullDoesNotStopEnforcement() async throws {
        let journal = MemoryIntentJournal()
        journal.failing = true
        let harness = try EngineHarness(intents: journal)
        _ = try await harness.start()
        try await harness.agent("f1")
        await harness.observe("f1", [.processes: 250])
        await harness.keepObserving("f1", [.processes: 250], for: .seconds(3))
        #expect(try await harness.history("f1").map(\.action).starts(with: [.warn, .throttle]))
        let said = harness.engine.hub.recent(agent: nil).filter { $0.message.contains("intent journal cannot be written") }
        #expect(said.count == 1, "\(said.map(\.message))")
        journal.failing = false
        let again = { harness.engine.hub.recent(agent: nil).contains { $0.message == "the intent journal is written again" } }
        // The next step that acts on the kernel (the cpu throttle) writes its intent.
        for _ in 0..<10 where !again() { await harness.keepObserving("f1", [.processes: 250, .cpu: 32], for: .seconds(1)) }
        #expect(again())
        #expect(try await harness.history("f1").contains { $0.resource == .cpu && $0.action == .throttle })
    }

    @Test(
        "an agent started just before the daemon died, its row never stored: taken in at the restart with its own command and limits, not the group's"
    )
    func startNeverStored() async throws {
        let memory = MemoryStore()
        let dying = DyingStore(memory)
        let journal = MemoryIntentJournal()
        // An earlier agent of the same id, ended: its row is not the new one's.
        try memory.save(
            AgentRecord(
                id: "s1", group: "heavy_computation_agent", state: .exited, origin: .launched, pid: nil, command: ["/bin/old"],
                limits: LimitSet(), cgroup: "", createdAt: Timestamp(milliseconds: 1000)))
        let first = try EngineHarness(store: memory, intents: journal, storeWrapper: { _ in dying })
        _ = try await first.start()
        dying.die()
        let request = LaunchRequest(
            id: "s1", group: "heavy_computation_agent", command: ["/bin/sleep", "30"], limits: [.processes: LimitOverride(soft: 4, hard: 8)]
        )
        let launched = try await first.engine.launch(request)
        let pid = try #require(launched.pid)
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        #expect(try memory.agent(id: "s1")?.command == ["/bin/old"], "the new row was never stored")
        let leaf = first.leaf("heavy_computation_agent", "s1")
        if first.fs.value(.procs, at: leaf)?.isEmpty != false { first.fs.seed(leaf, procs: [pid]) }

        let second = try EngineHarness(fs: first.fs, store: memory, clock: first.clock, intents: journal)
        let report = try await second.start()
        #expect(report.startsRecovered == ["s1"] && report.reattached == ["s1"] && report.discovered.isEmpty, "\(report)")
        let agent = try #require(try memory.agent(id: "s1"))
        #expect(agent.origin == .launched && agent.state == .running && agent.pid == pid)
        #expect(agent.command == ["/bin/sleep", "30"])
        #expect(agent.limits[.processes]?.hard == 8 && agent.overrides[.processes]?.hard == 8, "its own limit, not the group's 200")
        #expect(try journal.read().intents.isEmpty, "the journal starts empty once the restart is stored")

        // Once stored, a third start finds the row: nothing taken from a journal again.
        let third = try EngineHarness(fs: first.fs, store: memory, clock: first.clock, intents: journal)
        let again = try await third.start()
        #expect(again.startsRecovered.isEmpty && again.reattached == ["s1"])
    }

    @Test("a populated cgroup nobody started (no row, no start intent) is still discovered with its group's limits")
    func unknownCgroupIsDiscovered() async throws {
        let journal = MemoryIntentJournal()
        let first = try EngineHarness(intents: journal)
        _ = try await first.start()
        first.fs.seed(first.leaf("standard_agent", "manual"), procs: [ghostPID])
        let second = try EngineHarness(fs: first.fs, store: first.store, clock: first.clock, intents: journal)
        let report = try await second.start()
        #expect(report.discovered == ["manual"] && report.startsRecovered.isEmpty)
        #expect(try first.store.agent(id: "manual")?.origin == .discovered)
    }

    @Test("start intents do not hold the journal back: with only starts in it, the tick empties it once no start is halfway")
    func startsAloneAreCleared() async throws {
        let child = try SleepingChild()
        defer { child.stop() }
        let journal = MemoryIntentJournal()
        let harness = try EngineHarness(intents: journal)
        _ = try await harness.start()
        for index in 0..<40 {
            harness.fs.seed(.anchor, procs: [child.pid])  // where the fake finds the process to move
            _ = try await harness.engine.adopt(pid: child.pid, id: "a\(index)", group: "lightweight_agent")
        }
        #expect(try journal.read().intents.count == 40)
        await harness.engine.tick()
        #expect(try journal.read().intents.isEmpty, "emptied: every row is stored and no launch is halfway")
    }

    /// A start intent stays while its row waits in the committer (a restart would need it).
    @Test func aStartIsKeptWhileItsRowWaits() async throws {
        let child = try SleepingChild()
        defer { child.stop() }
        let journal = MemoryIntentJournal()
        let gate = StoreGate()
        let harness = try EngineHarness(intents: journal, storeWrapper: { HeldWrapper(base: $0, gate: gate) })
        _ = try await harness.start()
        for index in 0..<40 {
            harness.fs.seed(.anchor, procs: [child.pid])
            _ = try await harness.engine.adopt(pid: child.pid, id: "a\(index)", group: "lightweight_agent")
        }
        gate.held.withLock { $0 = true }
        harness.fs.seed(.anchor, procs: [child.pid])
        let late = Task { try await harness.engine.adopt(pid: child.pid, id: "late", group: "lightweight_agent") }
        while !gate.waiting.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
        await harness.engine.tick()
        #expect(try journal.read().intents.contains { $0.agent == "late" }, "kept: its row is not stored yet")
        gate.held.withLock { $0 = false }
        _ = try await late.value
        await harness.engine.tick()
        #expect(try journal.read().intents.isEmpty, "emptied once the row is stored")
    }
}

/// Holds a store's transactions while `held`; `waiting` says one is held.
final class StoreGate: Sendable {
    let held = Mutex(false)
    let waiting = Mutex(false)
}

/// The harness's memory store, its transactions held at the gate.
final class HeldWrapper: ForwardingEngineStore {
    let base: any EngineStore
    let gate: StoreGate

    init(base: any EngineStore, gate: StoreGate) {
        self.base = base
        self.gate = gate
    }

    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        while gate.held.withLock({ $0 }) {
            gate.waiting.withLock { $0 = true }
            usleep(1000)
        }
        return try base.commit(batch: batch)
    }
}
