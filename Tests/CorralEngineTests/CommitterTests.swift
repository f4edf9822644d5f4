import CorralAPI
import CorralCore
import Foundation
import Synchronization
import Testing

@testable import CorralEngine

/// A store that counts its transactions, can hold the first one until let
/// go, and refuses any transaction touching the agent "bad".
final class CountingStore: StepStore {
    let base = MemoryStore()
    let batches = Mutex<[Int]>([])
    let gate = Mutex(false)
    let holding = Mutex(false)

    func hold() { gate.withLock { $0 = true } }
    func release() { gate.withLock { $0 = false } }

    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        if gate.withLock({ $0 }) {
            holding.withLock { $0 = true }
            while gate.withLock({ $0 }) { usleep(1000) }
        }
        batches.withLock { $0.append(batch.count) }
        if batch.contains(where: { $0.ladder?.agent == "bad" }) { throw EngineError(.invalid, "no agent 'bad'") }
        return try base.commit(batch: batch)
    }
}

/// A store whose disk is full until `heal()`: every transaction fails with a transient error.
final class FullDiskStore: StepStore {
    let base = MemoryStore()
    let full = Mutex(true)

    struct DiskFull: TransientFailure, CustomStringConvertible {
        var isTransient: Bool { true }
        var description: String { "the disk holding /state is full (injected)" }
    }

    func heal() { full.withLock { $0 = false } }

    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        if full.withLock({ $0 }) { throw DiskFull() }
        return try base.commit(batch: batch)
    }
}

@Suite("Group commit off the engine")
struct CommitterTests {
    static func request(_ agent: String, _ index: Int) -> CommitRequest {
        CommitRequest(
            records: [
                EnforcementRecord(
                    violation: Violation(agent: agent, resource: .memory, kind: .soft, current: Double(index), limit: 1),
                    action: .warn, at: Timestamp(milliseconds: Int64(index)), succeeded: true, details: "#\(index)")
            ],
            plans: [], ladder: AgentLadder(agent: agent), agent: nil)
    }

    /// Steps queued while a transaction runs go into the next one together;
    /// each gets its own records back, in order, and drain waits for all.
    @Test func stepsQueuedDuringACommitShareTheNextTransaction() {
        let store = CountingStore()
        let committer = Committer(store: store)
        defer { committer.stop() }
        let done = Mutex<[String]>([])
        store.hold()
        committer.enqueue(Self.request("a", 0)) { result in done.withLock { $0.append((try? result.get())?.first?.details ?? "failed") } }
        while !store.holding.withLock({ $0 }) { usleep(1000) }
        for index in 1...50 {
            committer.enqueue(Self.request("a", index)) { result in
                done.withLock { $0.append((try? result.get())?.first?.details ?? "failed") }
            }
        }
        store.release()
        committer.drain()
        #expect(done.withLock { $0 } == (0...50).map { "#\($0)" })
        #expect(store.batches.withLock { $0 } == [1, 50])
        let ids = (try? store.base.history(agent: "a", since: nil, afterID: nil, limit: 100))?.compactMap(\.id) ?? []
        #expect(ids == Array(1...51))
    }

    /// A failing step fails its batch: the others are committed one by one
    /// and only the failing step gets the error.
    @Test func aFailingStepDoesNotLoseTheOthers() {
        let store = CountingStore()
        let committer = Committer(store: store)
        defer { committer.stop() }
        let outcomes = Mutex<[String: Bool]>([:])
        store.hold()
        committer.enqueue(Self.request("a", 0)) { _ in }
        while !store.holding.withLock({ $0 }) { usleep(1000) }
        for agent in ["b", "bad", "c"] {
            committer.enqueue(Self.request(agent, 1)) { result in
                outcomes.withLock { $0[agent] = (try? result.get()) != nil }
            }
        }
        store.release()
        committer.drain()
        #expect(outcomes.withLock { $0 } == ["b": true, "bad": false, "c": true])
        #expect(store.batches.withLock { $0 } == [1, 3, 1, 1, 1])
        #expect((try? store.base.history(agent: nil, since: nil, afterID: nil, limit: 100))?.map(\.agent) == ["a", "b", "c"])
    }

    /// A full disk: steps wait in memory in order, up to the bound (the oldest
    /// dropped past it, counted, their callers told); once the disk has room,
    /// a retry stores them in order with contiguous ids.
    @Test func aFullDiskKeepsStepsUpToTheBoundAndStoresThemLater() {
        let store = FullDiskStore()
        let changes = Mutex<[StoreBacklog]>([])
        let committer = Committer(store: store, bound: 3) { _, after in changes.withLock { $0.append(after) } }
        defer { committer.stop() }
        let outcomes = Mutex<[Int: String]>([:])
        for index in 0..<5 {
            committer.enqueue(Self.request("a", index)) { result in
                outcomes.withLock {
                    switch result {
                    case .success(let records): $0[index] = "stored \(records.first?.id ?? 0)"
                    case .failure(let error): $0[index] = "\(error)"
                    }
                }
            }
            committer.drain()
        }
        var backlog = committer.backlog
        #expect(backlog.pendingRecords == 3 && backlog.pendingSteps == 3 && backlog.droppedRecords == 2)
        #expect(backlog.error?.contains("full") == true)
        #expect(outcomes.withLock { $0 }.count == 2, "only the two dropped ones heard back")
        #expect(outcomes.withLock { $0[0] }?.contains("dropped: more than 3 were waiting") == true)
        #expect((try? store.base.history(agent: nil, since: nil, afterID: nil, limit: 10))?.isEmpty == true)

        committer.retry()
        committer.drain()
        #expect(committer.backlog.pendingSteps == 3, "still full: still kept")
        store.heal()
        committer.retry()
        committer.drain()
        backlog = committer.backlog
        #expect(backlog.pendingRecords == 0 && backlog.pendingSteps == 0 && backlog.error == nil)
        #expect(backlog.droppedRecords == 2, "the dropped count stays")
        #expect(outcomes.withLock { [$0[2], $0[3], $0[4]] } == ["stored 1", "stored 2", "stored 3"])
        let stored = (try? store.base.history(agent: "a", since: nil, afterID: nil, limit: 10)) ?? []
        #expect(stored.map(\.details) == ["#2", "#3", "#4"])
        #expect(changes.withLock { $0.first?.pendingSteps } == 1 && changes.withLock { $0.last?.pendingSteps } == 0)
    }

    /// A step after a kept one waits behind it, so records stay in order.
    @Test func aStepAfterAKeptOneWaitsBehindIt() {
        let store = FullDiskStore()
        let committer = Committer(store: store)
        defer { committer.stop() }
        committer.enqueue(Self.request("a", 0)) { _ in }
        committer.drain()
        store.heal()
        committer.enqueue(Self.request("a", 1)) { _ in }
        committer.drain()
        let stored = (try? store.base.history(agent: "a", since: nil, afterID: nil, limit: 10)) ?? []
        #expect(stored.map(\.details) == ["#0", "#1"])
        #expect(committer.backlog == StoreBacklog())
    }

    /// A save whose caller waits (an API change) goes in order after the queued and
    /// kept steps; on a full disk it fails at once instead of being kept, and the
    /// kept steps stay kept. Once the disk has room it is stored after them.
    @Test func aWaitedForSaveFailsAtOnceOnAFullDiskAndIsStoredInOrderLater() async throws {
        let store = FullDiskStore()
        let committer = Committer(store: store)
        defer { committer.stop() }
        committer.enqueue(Self.request("a", 0)) { _ in }
        await #expect(throws: FullDiskStore.DiskFull.self) { _ = try await committer.commit(Self.request("a", 1)) }
        #expect(committer.backlog.pendingSteps == 1, "the kept step stays kept; the waited-for one is not kept")
        store.heal()
        let records = try await committer.commit(Self.request("a", 2))
        #expect(records.first?.details == "#2")
        let stored = (try? store.base.history(agent: "a", since: nil, afterID: nil, limit: 10)) ?? []
        #expect(stored.map(\.details) == ["#0", "#2"], "the kept step first, then the save")
        #expect(committer.backlog == StoreBacklog())
    }

    /// After stop, queued steps are still committed, and later ones at once.
    @Test func stopCommitsWhatIsQueued() {
        let store = CountingStore()
        let committer = Committer(store: store)
        for index in 0..<20 { committer.enqueue(Self.request("a", index)) { _ in } }
        committer.stop()
        committer.drain()
        let inline = Mutex(false)
        committer.enqueue(Self.request("a", 20)) { result in inline.withLock { $0 = (try? result.get()) != nil } }
        #expect(inline.withLock { $0 })
        #expect((try? store.base.history(agent: "a", since: nil, afterID: nil, limit: 100))?.count == 21)
    }
}
