public import CorralCore
import Synchronization

/// What a step is about to do to an agent, written down before it does it: a
/// write-ahead intent. The engine's steps act on the kernel at once and store
/// their records afterwards, off the engine (the committer); a daemon killed
/// between the two would leave an effect in the kernel with no record (a
/// SIGTERM sent, a cgroup.kill written, a pids.max lowered). So a step that
/// carries out commands appends its intent to the journal first, and its
/// commit marks the intent settled in the same transaction (`CommitRequest.intent`).
/// At a restart, the intents past the stored mark are replayed against the
/// kernel (`Reconciler`): each command carried out again where that is
/// idempotent (a limit written, a freeze asked, SIGTERM sent), its record
/// stored with the step's time, its ladder the step's.
///
/// Survives a kill -9 of the daemon (an appended line is in the kernel's page
/// cache once `write` returns), not a power cut: like the store's WAL, the
/// journal is not synced.
///
/// A new agent's start is written down the same way (`Work.start`): its
/// cgroup holds a process before its row is stored.
public struct ActionIntent: Codable, Equatable, Sendable {
    /// What the step does.
    public enum Work: Codable, Equatable, Sendable {
        /// The ladder's commands of one step, in order.
        case commands([LadderCommand])
        /// cgroup.kill after a termination's grace, for this violation.
        case kill(Violation)
        /// A new agent's row (its pid not yet known), written before its
        /// process enters its cgroup: a daemon killed before the row is
        /// stored finds a populated cgroup and takes the agent in with this
        /// row (its command, its own limits) rather than the group's
        /// defaults. Not replayed and never marked settled: the journal
        /// keeps it until the row is stored (`Engine.clearSettledIntents`).
        case start(AgentRecord)
    }

    /// Increasing across restarts (the next one follows the stored mark).
    public var sequence: UInt64
    public var agent: String
    /// The step's time: its records carry it.
    public var at: Timestamp
    public var work: Work
    /// The agent's ladder after the step's advance (what its commit would store).
    public var ladder: AgentLadder

    public init(sequence: UInt64, agent: String, at: Timestamp, work: Work, ladder: AgentLadder) {
        self.sequence = sequence
        self.agent = agent
        self.at = at
        self.work = work
        self.ladder = ladder
    }
}

/// Where intents are written before their actions: an append-only file next
/// to the database in the daemon (`IntentLog`), memory in tests. Appends come
/// from the engine alone; `clear` too, once every intent is settled.
public protocol IntentJournal: Sendable {
    func append(_ intent: ActionIntent) throws
    /// Every intent appended since the last `clear`, in order. A line that
    /// cannot be read is skipped and named in `problems`.
    func read() throws -> (intents: [ActionIntent], problems: [String])
    func clear() throws
}

/// An `IntentJournal` in memory: tests restart an engine on the same one.
public final class MemoryIntentJournal: IntentJournal {
    private let state = Mutex<[ActionIntent]>([])
    private let full = Atomic<Bool>(false)

    public init() {}

    public struct Full: Error, CustomStringConvertible {
        public var description: String { "No space left on device" }
    }

    /// Appends fail while set (a full disk).
    public var failing: Bool {
        get { full.load(ordering: .relaxed) }
        set { full.store(newValue, ordering: .relaxed) }
    }

    public func append(_ intent: ActionIntent) throws {
        if failing { throw Full() }
        state.withLock { $0.append(intent) }
    }

    public func read() throws -> (intents: [ActionIntent], problems: [String]) { (state.withLock { $0 }, []) }

    public func clear() throws { state.withLock { $0.removeAll() } }
}
