import CorralAPI
import CorralCore
import Synchronization

/// The engine's one way to its store. It owns the two threads that write off
/// the engine — the group committer (the ladder's steps, in order) and the
/// background worker (usage minutes, analysis) — and the agent rows that
/// could not be stored yet, which it retries until they are (an exit record
/// is never lost to a full disk or a busy database).
final class StoreWriter: Sendable {
    /// The store as is: for work that does not depend on the steps' commits
    /// (usage minutes, recommendations).
    let store: any EngineStore
    private let committer: Committer
    private let background = BackgroundWorker(name: "corral-bg")
    private let events: EventPublisher
    /// Agent rows whose commit failed, newest per agent.
    private let unsaved = Mutex<[String: AgentRecord]>([:])
    /// The highest intent whose step the committer has stored.
    private let lastSettled = Atomic<UInt64>(0)
    /// Unsaved rows handed to the committer by `retryUnsaved` and not answered yet.
    private let retryingRows = Atomic<Int>(0)
    /// Steps carrying an agent row, handed to the committer and not answered yet
    /// (kept ones included): the intent journal keeps its start intents meanwhile.
    private let rowsQueued = Atomic<Int>(0)

    init(store: any EngineStore, events: EventPublisher, instruments: (any EngineInstruments)? = nil, bound: Int = 10_000) {
        self.store = store
        self.committer = Committer(store: store, instruments: instruments, bound: bound) { before, after in
            if let text = EventText.storeBacklog(before: before, after: after, bound: bound) {
                events.publish(.daemon, agent: nil, text)
            }
        }
        self.events = events
    }

    /// Steps kept in memory because the database could not be written.
    var backlog: StoreBacklog { committer.backlog }

    deinit {
        background.stop()
        committer.stop()
    }

    /// The store once the steps queued before the call are committed: what is
    /// read there follows the steps, in order. The task suspends meanwhile (no
    /// thread waits). Rows are written through the committer (`save`,
    /// `saveOrThrow`, `commitNow`), never directly, so none overtakes a step.
    func settledStore() async -> any EngineStore {
        committer.retry()
        await committer.drained()
        return store
    }

    /// Blocks until every queued step is stored and its records published
    /// (tests; never on the engine).
    func drain() { committer.drain() }

    /// The highest intent whose step is stored (a later step's mark covers
    /// one that failed for good): the journal may be cleared up to it.
    var settledIntent: UInt64 { lastSettled.load(ordering: .acquiring) }

    /// Commits one step off the engine; its records are published once stored.
    func commit(_ request: CommitRequest, agent id: String) {
        let events = events
        let count = request.records.count
        let intent = request.intent
        supersede(request.agent)
        enqueue(request) { [self] result in
            switch result {
            case .success(let stored):
                if let intent { _ = lastSettled.max(intent, ordering: .releasing) }
                for record in stored {
                    events.publish(.enforcement, agent: id, EventText.enforcement(record), record: record)
                }
            case .failure(let error):
                events.publish(.daemon, agent: id, EventText.notStored(records: count, error))
                if let agent = request.agent { remember(agent) }
            }
        }
    }

    /// Stores records with the agent's ladder and row after the queued steps and
    /// publishes them with `message` once stored. While the database cannot be
    /// written they are kept with the committer's steps, in order; another
    /// failure is published and the row kept for `retryUnsaved`.
    func commitNow(
        records: [EnforcementRecord], ladder: AgentLadder?, agent: AgentRecord, intent: UInt64? = nil,
        message: @escaping @Sendable (EnforcementRecord) -> String
    ) {
        keep(CommitRequest(records: records, plans: [], ladder: ladder, agent: agent, intent: intent), message: message)
    }

    /// Hands a step to the committer, which keeps it until the database can be written.
    private func keep(_ request: CommitRequest, message: @escaping @Sendable (EnforcementRecord) -> String) {
        let events = events
        let id = request.agent?.id
        supersede(request.agent)
        enqueue(request) { [self] result in
            switch result {
            case .success(let stored):
                if let intent = request.intent { _ = lastSettled.max(intent, ordering: .releasing) }
                for record in stored { events.publish(.enforcement, agent: id, message(record), record: record) }
            case .failure(let error):
                events.publish(.daemon, agent: id, EventText.notStored(records: request.records.count, error))
                if let agent = request.agent { remember(agent) }
            }
        }
    }

    /// Saves an agent's row as a step of the committer, in order after the
    /// queued ones, without waiting (the engine goes on). While the database
    /// cannot be written the step is kept with the others; another failure is
    /// published and the row kept for `retryUnsaved`. `forgetLadder`: the agent
    /// ended, and its ladder's row goes in the same transaction.
    func save(_ agent: AgentRecord, what: String, forgetLadder: Bool = false) {
        var request = CommitRequest(records: [], plans: [], ladder: nil, agent: agent)
        request.forgetsLadder = forgetLadder
        supersede(agent)
        enqueue(request) { [self] result in
            switch result {
            case .success: forget(agent)
            case .failure(let error):
                keep(agent, what: what, error: error)
            }
        }
    }

    /// Saves a started agent's row in order after the queued steps, without
    /// waiting; a failure is said and the row kept for `retryUnsaved` (a running
    /// agent is never recorded as lost for want of its row).
    func saveStarted(_ agent: AgentRecord, what: String) {
        supersede(agent)
        enqueue(CommitRequest(records: [], plans: [], ladder: nil, agent: agent), keepsOnFailure: false) { [self] result in
            switch result {
            case .success: forget(agent)
            case .failure(let error): keep(agent, what: what, error: error)
            }
        }
    }

    /// Saves an agent's row in order after the queued steps; the caller (an API
    /// request) waits, suspended, and hears of a failure (a full disk at once).
    /// The engine's table has the change already, so a row that failed is kept
    /// for `retryUnsaved` too.
    func saveOrThrow(_ agent: AgentRecord, ladder: AgentLadder? = nil) async throws {
        supersede(agent)
        rowsQueued.add(1, ordering: .relaxed)
        _ = try await committer.commit(CommitRequest(records: [], plans: [], ladder: ladder, agent: agent)) { [self] result in
            if case .success = result { forget(agent) } else { remember(agent) }
            rowsQueued.subtract(1, ordering: .releasing)
        }
    }

    /// `saveOrThrow` off the engine, for a new agent's first row: the task
    /// waits (suspended) for the steps queued before, then writes. Only for an
    /// agent not yet in the engine's table, so no step of its own can be queued meanwhile.
    func saveNew(_ agent: AgentRecord) async throws {
        _ = try await settledStore().commit(records: [], ladder: nil, agent: agent)
    }

    /// A row that could not be stored: said, and kept for `retryUnsaved`.
    func keep(_ agent: AgentRecord, what: String, error: any Error) {
        events.publish(.daemon, agent: agent.id, EventText.notRecorded(agent.id, what, error))
        remember(agent)
    }

    private func remember(_ agent: AgentRecord) { unsaved.withLock { $0[agent.id] = agent } }

    /// A newer row of the agent is on its way to the committer: an older one kept
    /// for `retryUnsaved` must not be written after it (the newest row wins).
    private func supersede(_ agent: AgentRecord?) {
        guard let agent else { return }
        unsaved.withLock { _ = $0.removeValue(forKey: agent.id) }
    }

    /// `agent`'s row is stored: no older one stays kept. (Rows are remembered and
    /// forgotten in the committer's callbacks, in the order they were queued, so
    /// what is kept then is older.)
    private func forget(_ agent: AgentRecord) { unsaved.withLock { _ = $0.removeValue(forKey: agent.id) } }

    /// Tries again to store the steps and rows that failed (from the engine's
    /// tick), through the committer: no wait on the engine. A row still failing
    /// stays kept and is tried on a later tick (said once, when it first failed).
    func retryUnsaved() {
        committer.retry()
        let pending = unsaved.withLock { $0 }
        guard !pending.isEmpty,
            retryingRows.compareExchange(expected: 0, desired: pending.count, ordering: .acquiringAndReleasing).exchanged
        else { return }
        for (id, agent) in pending.sorted(by: { $0.key < $1.key }) {
            enqueue(CommitRequest(records: [], plans: [], ladder: nil, agent: agent), keepsOnFailure: false) { [self] result in
                if case .success = result {
                    unsaved.withLock { rows in
                        if rows[id] == agent { rows[id] = nil }
                    }
                }
                retryingRows.subtract(1, ordering: .releasing)
            }
        }
    }

    /// Agent rows waiting to be stored: kept for a retry, or queued to the committer.
    var unsavedCount: Int { unsaved.withLock { $0.count } + rowsQueued.load(ordering: .acquiring) }

    /// Every request goes to the committer through here, counted while it carries a row.
    private func enqueue(
        _ request: CommitRequest, keepsOnFailure: Bool = true,
        done: @escaping @Sendable (Result<[EnforcementRecord], any Error>) -> Void
    ) {
        let carriesRow = request.agent != nil
        if carriesRow { rowsQueued.add(1, ordering: .relaxed) }
        committer.enqueue(request, keepsOnFailure: keepsOnFailure) { [self] result in
            done(result)
            if carriesRow { rowsQueued.subtract(1, ordering: .releasing) }
        }
    }

    /// Runs `job` on the background thread, in order with the others.
    func later(_ job: @escaping @Sendable () -> Void) { background.async(job) }

    /// Waits until every queued step is committed and every background job
    /// queued so far has run.
    func settle() async {
        await committer.drained()
        let background = background
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in background.async { done.resume() } }
    }
}
