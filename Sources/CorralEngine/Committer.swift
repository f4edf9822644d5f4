public import CorralCore
import CorralThreads
import Synchronization

/// What one step of the engine stores together: its records, its degradation
/// plans, the agent's ladder and the agent (nil: unchanged). `forgetsLadder`:
/// the agent ended, its ladder's row goes (after the rest of the step).
public struct CommitRequest: Sendable {
    public var records: [EnforcementRecord]
    public var plans: [DegradationPlan]
    public var ladder: AgentLadder?
    public var agent: AgentRecord?
    public var forgetsLadder = false
    /// The intent this step carried out (`ActionIntent.sequence`): stored as
    /// settled in the same transaction, so a restart does not replay it.
    public var intent: UInt64?

    public init(
        records: [EnforcementRecord], plans: [DegradationPlan], ladder: AgentLadder?, agent: AgentRecord?, intent: UInt64? = nil
    ) {
        self.records = records
        self.plans = plans
        self.ladder = ladder
        self.agent = agent
        self.intent = intent
    }
}

/// The committer's state for the health report: steps kept because the
/// database could not be written (a full disk, an I/O error, a lock).
public struct StoreBacklog: Equatable, Sendable {
    /// Records waiting in memory, in the steps kept.
    public var pendingRecords = 0
    /// Steps kept (each with its ladder and agent row).
    public var pendingSteps = 0
    /// Records given up since the daemon started: the oldest, when more than
    /// the bound were waiting.
    public var droppedRecords = 0
    /// Why the last commit failed; nil once one succeeded.
    public var error: String?

    public init() {}
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
/// When the database cannot be written at all (the disk is full, an I/O
/// error, another process' lock), steps are kept in memory in order — up to
/// `bound` records; past it the oldest steps are dropped and counted — and
/// committed first on the next try (`retry`, from the engine's tick, or the
/// next step). Enforcement goes on meanwhile: only the writing waits.
///
/// Readers that must see every step so far call `drain()` first: the engine
/// does so before any other use of the store.
final class Committer: Sendable {
    struct Pending: Sendable {
        var request: CommitRequest
        /// False for a save whose caller waits for it (an API change): while the
        /// database cannot be written it fails at once instead of being kept.
        var keepsOnFailure = true
        var done: @Sendable (Result<[EnforcementRecord], any Error>) -> Void
    }

    /// What the committer's thread handles: a step, or a nudge to try the kept ones again.
    enum Item: Sendable {
        case step(Pending)
        case retry
    }

    /// The kept steps; written only on the committer's thread, read by `backlog`.
    private struct Kept {
        var steps: [Pending] = []
        var state = StoreBacklog()
    }

    private final class Shared: Sendable {
        let kept = Mutex(Kept())
    }

    private let shared = Shared()
    private let thread: WorkerThread<Item>
    /// At most this many records wait in memory.
    let bound: Int

    init(
        store: any StepStore, instruments: (any EngineInstruments)? = nil, bound: Int = 10_000,
        changed: @escaping @Sendable (StoreBacklog, StoreBacklog) -> Void = { _, _ in }
    ) {
        self.bound = bound
        let shared = shared
        thread = WorkerThread(name: "corral-commit") { items in
            Self.commit(items, to: store, kept: shared.kept, bound: bound, instruments: instruments, changed: changed)
        }
    }

    /// Whether a failure says the database cannot be written now but may later
    /// (as opposed to one step that is wrong, which is not kept).
    static func isTransient(_ error: any Error) -> Bool { (error as? any TransientFailure)?.isTransient ?? false }

    private static func commit(
        _ items: [Item], to store: any StepStore, kept: borrowing Mutex<Kept>, bound: Int, instruments: (any EngineInstruments)?,
        changed: @Sendable (StoreBacklog, StoreBacklog) -> Void
    ) {
        let (before, waiting) = kept.withLock { kept in
            defer { kept.steps.removeAll() }
            return (kept.state, kept.steps)
        }
        let batch =
            waiting
            + items.compactMap { item -> Pending? in
                if case .step(let pending) = item { return pending }
                return nil
            }
        guard !batch.isEmpty else { return }
        var keep: [Pending] = []
        var lastError: String?
        do {
            let started = ContinuousClock.now
            let stored = try store.commit(batch: batch.map(\.request))
            instruments?.committed(in: ContinuousClock.now - started)
            for (pending, records) in zip(batch, stored) { pending.done(.success(records)) }
        } catch  where isTransient(error) {
            for pending in batch where !pending.keepsOnFailure { pending.done(.failure(error)) }
            keep = batch.filter(\.keepsOnFailure)
            lastError = "\(error)"
        } catch {
            // One step's failure (say, a ladder whose agent is gone) fails
            // the whole transaction: commit the steps one by one instead. Once
            // one cannot be written for want of space, it and all after it are
            // kept, in order.
            var transient: (any Error)?
            for pending in batch {
                if let transient {
                    if pending.keepsOnFailure { keep.append(pending) } else { pending.done(.failure(transient)) }
                    continue
                }
                do {
                    pending.done(.success(try store.commit(batch: [pending.request])[0]))
                } catch  where isTransient(error) {
                    transient = error
                    if pending.keepsOnFailure { keep.append(pending) } else { pending.done(.failure(error)) }
                    lastError = "\(error)"
                } catch {
                    pending.done(.failure(error))
                }
            }
        }
        // Past the bound, the oldest steps go (their callers hear of it).
        var records = keep.reduce(0) { $0 + $1.request.records.count }
        var dropped = 0
        while records > bound, let oldest = keep.first {
            keep.removeFirst()
            records -= oldest.request.records.count
            dropped += oldest.request.records.count
            oldest.done(.failure(DroppedError(records: oldest.request.records.count, bound: bound)))
        }
        let after = kept.withLock { kept in
            kept.steps = keep
            kept.state.pendingSteps = keep.count
            kept.state.pendingRecords = records
            kept.state.droppedRecords += dropped
            kept.state.error = keep.isEmpty ? nil : lastError ?? kept.state.error
            return kept.state
        }
        if after != before { changed(before, after) }
    }

    /// Records dropped from memory because more than the bound waited for a writable database.
    struct DroppedError: Error, CustomStringConvertible {
        var records: Int
        var bound: Int
        var description: String {
            "\(records) records dropped: more than \(bound) were waiting in memory for the database to be writable again"
        }
    }

    /// Queues a step's writes; `done` gets the stored records (with ids) or
    /// the error, on the committer's thread. After `stop`, commits at once.
    func enqueue(
        _ request: CommitRequest, keepsOnFailure: Bool = true, done: @escaping @Sendable (Result<[EnforcementRecord], any Error>) -> Void
    ) {
        thread.enqueue(.step(Pending(request: request, keepsOnFailure: keepsOnFailure, done: done)))
    }

    /// Commits `request` in order after the queued steps (and the kept ones) and
    /// returns its records; the task waits suspended, no thread does. While the
    /// database cannot be written it throws at once rather than being kept.
    /// `then` runs on the committer's thread first, in order with the other steps' callbacks.
    func commit(
        _ request: CommitRequest, then: @escaping @Sendable (Result<[EnforcementRecord], any Error>) -> Void = { _ in }
    ) async throws -> [EnforcementRecord] {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(request, keepsOnFailure: false) { result in
                then(result)
                continuation.resume(with: result)
            }
        }
    }

    /// Tries the kept steps again (nothing when none are kept).
    func retry() {
        if shared.kept.withLock({ !$0.steps.isEmpty }) { thread.enqueue(.retry) }
    }

    /// The kept steps, for the health report.
    var backlog: StoreBacklog { shared.kept.withLock { $0.state } }

    /// Returns once every step queued so far is committed (or kept) and its `done` ran.
    func drain() { thread.drain() }

    /// `drain` for a task: suspends instead of blocking its thread.
    func drained() async { await thread.drained() }

    /// Commits what is queued, then ends the thread.
    func stop() { thread.stop() }
}
