import CorralAPI
import CorralCgroup
import CorralCore
import CorralTestSupport
import Foundation
import Synchronization
import Testing

@testable import CorralEngine

/// A memory store whose next commits can be made to fail (a full disk, a
/// busy database), to see what the engine does with a write it could not make.
final class FailingStore: ForwardingEngineStore {
    let memory = MemoryStore()
    var base: any EngineStore { memory }
    private let failures = Mutex(0)
    private let transient = Mutex(false)

    /// The next `count` transactions throw; `transient`: as a full disk does
    /// (the engine keeps the step), otherwise as a wrong write (it is said and lost).
    func failCommits(_ count: Int, transient: Bool = false) {
        failures.withLock { $0 = count }
        self.transient.withLock { $0 = transient }
    }

    struct Refused: TransientFailure, CustomStringConvertible {
        var isTransient: Bool
        var description: String { "disk full (injected)" }
    }

    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        let refuse = failures.withLock { left in
            guard left > 0 else { return false }
            left -= 1
            return true
        }
        if refuse { throw Refused(isTransient: transient.withLock { $0 }) }
        return try memory.commit(batch: batch)
    }
}

@Suite("Writes the store refused")
struct StoreFailureTests {
    /// An engine on a fake tree and a failing store, with `agent` running.
    static func engine(with agent: String) async throws -> (Engine, FailingStore, EventHub, TestClock) {
        let fake = FakeCgroupFilesystem()
        fake.seed(EngineHarness.root)
        let tree = CgroupTree(fs: fake, root: EngineHarness.root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let store = FailingStore()
        let clock = TestClock()
        let hub = EventHub()
        let engine = Engine(configuration: EngineHarness.quickConfiguration, tree: tree, store: store, hub: hub, clock: { clock.now })
        _ = try await engine.restore()
        _ = try await engine.register(id: agent, group: "standard_agent", command: ["worker"], overrides: [:])
        fake.seed(tree.agentPath(group: "standard_agent", agent: agent), procs: [ghostPID])
        _ = try await engine.attach(id: agent, pid: ghostPID)
        return (engine, store, hub, clock)
    }

    /// An agent's end that could not be stored is said at once and stored by
    /// a later tick: the exit record is never lost (it once was, silently).
    @Test func anExitRecordTheStoreRefusedIsStoredLater() async throws {
        let (engine, store, hub, _) = try await Self.engine(with: "x1")

        // The end's commit and the committer's retry of it alone; then the tick's first
        // retry, through the committer too (its batch, then the row alone).
        store.failCommits(4)
        await engine.handle(.emptied("x1"))
        engine.waitForCommits()
        #expect(try store.memory.agents().first { $0.id == "x1" }?.state == .running, "not stored yet")
        let said = hub.recent(agent: "x1").filter { $0.kind == .daemon }.map(\.message)
        #expect(said.contains { $0.contains("could not record the end of x1") && $0.contains("disk full") }, "\(said)")
        // The engine itself knows it ended, whatever the store says.
        #expect(try await engine.status(of: "x1").agent.state == .exited)

        await engine.tick()  // refused again: kept
        engine.waitForCommits()
        #expect(try store.memory.agents().first { $0.id == "x1" }?.state == .running)
        await engine.tick()
        engine.waitForCommits()
        let stored = try #require(try store.memory.agents().first { $0.id == "x1" })
        #expect(stored.state == .exited)
        #expect(stored.endedAt != nil)
        // Said once, not on every retry.
        #expect(hub.recent(agent: "x1").filter { $0.message.contains("could not record") }.count == 1)
    }

    /// A step whose commit fails is said; the next step commits as usual.
    @Test func aStepTheStoreRefusedIsSaid() async throws {
        let (engine, store, hub, clock) = try await Self.engine(with: "w1")

        // The committer retries a failed batch step by step: two refusals fail this step.
        store.failCommits(2)
        await engine.handle(.observed(agent: "w1", at: clock.now, readings: [UsageReading(resource: .memory, usage: 300_000_000)]))
        engine.waitForCommits()
        #expect(try store.memory.history(agent: "w1", since: nil, afterID: nil, limit: 10).isEmpty)
        let said = hub.recent(agent: "w1").filter { $0.kind == .daemon }.map(\.message)
        #expect(said.contains { $0.contains("could not store 1 enforcement records") }, "\(said)")

        // Past the hard limit: a more severe kind is warned about again.
        clock.advance(.seconds(1))
        await engine.handle(.observed(agent: "w1", at: clock.now, readings: [UsageReading(resource: .memory, usage: 600_000_000)]))
        engine.waitForCommits()
        let later = try store.memory.history(agent: "w1", since: nil, afterID: nil, limit: 10)
        #expect(!later.isEmpty, "the next step's records are stored")
    }

    /// A full disk: the ladder acts, the step waits in memory, the engine says so
    /// (with the health figures), and a tick once there is room stores it.
    @Test func aFullDiskDelaysRecordsButLosesNone() async throws {
        let (engine, store, hub, clock) = try await Self.engine(with: "f1")
        store.failCommits(1000, transient: true)
        await engine.handle(.observed(agent: "f1", at: clock.now, readings: [UsageReading(resource: .memory, usage: 300_000_000)]))
        engine.waitForCommits()
        #expect(try store.memory.history(agent: "f1", since: nil, afterID: nil, limit: 10).isEmpty)
        #expect(engine.storeBacklog.pendingRecords == 1)
        #expect(engine.storeBacklog.error?.contains("disk full") == true)
        let said = hub.recent(agent: nil).filter { $0.kind == .daemon }.map(\.message)
        #expect(said.contains { $0.contains("state database cannot be written") && $0.contains("1 records kept in memory") }, "\(said)")
        #expect(!said.contains { $0.contains("could not store") }, "nothing lost, so nothing said lost")

        clock.advance(.seconds(1))
        await engine.handle(.observed(agent: "f1", at: clock.now, readings: [UsageReading(resource: .memory, usage: 600_000_000)]))
        engine.waitForCommits()
        let waiting = engine.storeBacklog.pendingRecords
        #expect(waiting >= 2, "the next step waits behind the first")

        store.failCommits(0)
        await engine.tick()
        engine.waitForCommits()
        let stored = try store.memory.history(agent: "f1", since: nil, afterID: nil, limit: 10)
        #expect(stored.count == waiting)
        #expect(stored.compactMap(\.id) == Array(1...Int64(waiting)))
        #expect(engine.storeBacklog == StoreBacklog())
        #expect(hub.recent(agent: nil).contains { $0.message.contains("state database is writable again") })
    }
}

/// A store whose transactions wait while held (a slow disk, a long checkpoint).
final class HeldStore: ForwardingEngineStore {
    let memory = MemoryStore()
    var base: any EngineStore { memory }
    let held = Mutex(false)
    let waiting = Mutex(false)

    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        while held.withLock({ $0 }) {
            waiting.withLock { $0 = true }
            usleep(1000)
        }
        return try memory.commit(batch: batch)
    }
}

@Suite("An API change waiting for the store")
struct WaitedSaveTests {
    /// The save of an API change waits for the store suspended, through the
    /// committer: the engine answers meanwhile (it once held its thread in the
    /// transaction), and the change is stored, in order, once the store moves.
    @Test func theEngineAnswersWhileAnAPISaveWaits() async throws {
        let fake = FakeCgroupFilesystem()
        fake.seed(EngineHarness.root)
        let tree = CgroupTree(fs: fake, root: EngineHarness.root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let store = HeldStore()
        let engine = Engine(configuration: EngineHarness.quickConfiguration, tree: tree, store: store)
        _ = try await engine.restore()
        _ = try await engine.register(id: "p1", group: "standard_agent", command: ["worker"], overrides: [:])

        store.held.withLock { $0 = true }
        let saving = Task { try await engine.setPriority("p1", 7) }
        while !store.waiting.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        // Asked while the save waits; the answer is noted without awaiting it (a held engine
        // would hold this test too).
        let answer = Mutex<Int?>(nil)
        let asking = Task {
            let status = try await engine.status(of: "p1")
            answer.withLock { $0 = status.agent.priority.rawValue }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while answer.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(answer.withLock { $0 } == 7, "the engine answered, with the new priority in its table, while the save waited")
        #expect(try store.memory.agents().first { $0.id == "p1" }?.priority.rawValue != 7, "not stored while the store is held")
        store.held.withLock { $0 = false }
        let saved = try await saving.value
        try await asking.value
        #expect(saved.priority.rawValue == 7)
        #expect(try store.memory.agents().first { $0.id == "p1" }?.priority.rawValue == 7)
    }
}

/// A held store whose next commits can also fail.
final class HeldFailingStore: ForwardingEngineStore {
    let memory = MemoryStore()
    var base: any EngineStore { memory }
    let held = Mutex(false)
    let waiting = Mutex(false)
    let failures = Mutex(0)

    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        while held.withLock({ $0 }) {
            waiting.withLock { $0 = true }
            usleep(1000)
        }
        if failures.withLock({ left in
            defer { left = max(0, left - 1) }
            return left > 0
        }) {
            throw FailingStore.Refused(isTransient: false)
        }
        return try memory.commit(batch: batch)
    }
}

@Suite("The newest row wins")
struct NewestRowTests {
    /// A row that failed and waits for a retry is older than a save queued after
    /// it: a retry taken while that save waits must not write the older row over
    /// the newer one.
    @Test func anOlderUnsavedRowIsNotWrittenOverANewerSave() async throws {
        let store = HeldFailingStore()
        let writer = StoreWriter(store: store, events: EventPublisher(hub: EventHub(), clock: { Timestamp(milliseconds: 0) }))
        var older = AgentRecord(
            id: "r1", group: "standard_agent", state: .running, origin: .registered, pid: 7, command: ["w"], limits: LimitSet(),
            cgroup: "/x", createdAt: Timestamp(milliseconds: 0))
        older.priority = Priority(rawValue: 3)!
        store.failures.withLock { $0 = 2 }  // the batch and the row alone
        writer.save(older, what: "the test's row")
        writer.drain()
        #expect(writer.unsavedCount == 1, "kept for a retry")

        var newer = older
        newer.priority = Priority(rawValue: 7)!
        store.held.withLock { $0 = true }
        let saving = Task { try await writer.saveOrThrow(newer) }
        while !store.waiting.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
        writer.retryUnsaved()  // a tick while the newer save waits
        store.held.withLock { $0 = false }
        try await saving.value
        writer.drain()
        #expect(try store.memory.agent(id: "r1")?.priority.rawValue == 7, "the newer row stays")
        #expect(writer.unsavedCount == 0)
    }
}
