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
