public import CorralCore
import CorralThreads

/// What one step of the engine stores together: its records, its degradation
/// plans, the agent's ladder and the agent (nil: unchanged).
public struct CommitRequest: Sendable {
    public var records: [EnforcementRecord]
    public var plans: [DegradationPlan]
    public var ladder: AgentLadder?
    public var agent: AgentRecord?

    public init(records: [EnforcementRecord], plans: [DegradationPlan], ladder: AgentLadder?, agent: AgentRecord?) {
        self.records = records
        self.plans = plans
        self.ladder = ladder
        self.agent = agent
    }
}

/// Commits the engine's steps on a thread of its own, so that the engine
/// goes on with the next observation while SQLite writes (a commit costs
/// milliseconds under emulation, and an agent crossing its limit should not
/// wait behind another one's commit). What queues up while a transaction runs
/// goes into the next one together — a group commit: each step's writes stay
/// in one transaction, and a burst of steps costs one WAL append, not one per
/// step. `done` runs after the commit, in order (the engine publishes the
/// records then); a batch that fails is retried step by step, so one bad step
/// (an error) does not lose the others.
///
/// Readers that must see every step so far call `drain()` first: the engine
/// does so before any other use of the store.
final class Committer: Sendable {
    struct Pending: Sendable {
        var request: CommitRequest
        var done: @Sendable (Result<[EnforcementRecord], any Error>) -> Void
    }

    private let thread: WorkerThread<Pending>

    init(store: any StepStore, instruments: (any EngineInstruments)? = nil) {
        thread = WorkerThread(name: "corral-commit") { batch in Self.commit(batch, to: store, instruments: instruments) }
    }

    private static func commit(_ batch: [Pending], to store: any StepStore, instruments: (any EngineInstruments)?) {
        do {
            let started = ContinuousClock.now
            let stored = try store.commit(batch: batch.map(\.request))
            instruments?.committed(in: ContinuousClock.now - started)
            for (pending, records) in zip(batch, stored) { pending.done(.success(records)) }
        } catch {
            // One step's failure (say, a ladder whose agent is gone) fails
            // the whole transaction: commit the steps one by one instead.
            for pending in batch {
                let request = pending.request
                pending.done(Result { try store.commit(batch: [request])[0] })
            }
        }
    }

    /// Queues a step's writes; `done` gets the stored records (with ids) or
    /// the error, on the committer's thread. After `stop`, commits at once.
    func enqueue(_ request: CommitRequest, done: @escaping @Sendable (Result<[EnforcementRecord], any Error>) -> Void) {
        thread.enqueue(Pending(request: request, done: done))
    }

    /// Returns once every step queued so far is committed and its `done` ran.
    func drain() { thread.drain() }

    /// Commits what is queued, then ends the thread.
    func stop() { thread.stop() }
}
