public import CorralCore
import Synchronization

/// Where the engine's steps are stored: each step's records, plans, ladder
/// and agent row; several steps in one transaction (group commit), all or
/// nothing; the stored records of each, with their ids, in order. All the
/// committer needs (its tests' fakes implement this one call).
public protocol StepStore: Sendable {
    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]]
}

/// Where the engine keeps what must outlive it. The daemon uses SQLite
/// (CorralStore); `corral run` without a daemon keeps it in memory.
public protocol EngineStore: StepStore {
    func save(_ agent: AgentRecord) throws
    func agents() throws -> [AgentRecord]
    /// Agents in id order: those after `after` (all when nil), at most `limit`
    /// (all when nil), only live ones (starting, running, suspended) when `liveOnly`.
    /// …none of `excluding`.
    func agents(after: String?, limit: Int?, liveOnly: Bool, excluding: Set<String>) throws -> [AgentRecord]
    /// One agent's row, nil when there is none.
    func agent(id: String) throws -> AgentRecord?
    func delete(agent: String) throws
    func history(agent: String?, since: Timestamp?, afterID: Int64?, limit: Int) throws -> [EnforcementRecord]
    /// Degradation plans and recovery stages, oldest first (the latest `limit`).
    func degradation(agent: String?, limit: Int) throws -> [DegradationPlan]
    /// Minutes of usage (analytics), pruned before `pruneBefore` in the same transaction.
    func record(minutes: [UsageMinute], pruneBefore: Timestamp?) throws
    func usageMinutes(agent: String, since: Timestamp) throws -> [UsageMinute]
    /// Replaces `agent`'s recommendations (no other agent's).
    func replaceRecommendations(agent: String, with recommendations: [Recommendation]) throws
    func recommendations(agent: String?) throws -> [Recommendation]
    func ladders() throws -> [AgentLadder]
    func deleteLadder(agent: String) throws
    func save(group: QuotaGroup) throws
    func groupOverrides() throws -> [String: QuotaGroup]
    /// Stores a denial's latest tally (one per agent and syscall).
    func save(denial: SyscallDenial) throws
    /// Denied syscalls, the most recent first.
    func denials(agent: String?, limit: Int) throws -> [SyscallDenial]
    /// The highest intent whose step is stored (`CommitRequest.intent`); 0 when none.
    func settledIntent() throws -> UInt64
}

extension EngineStore {
    /// From `agents()`, in memory: for stores whose whole table is small (fakes, wrappers).
    public func agents(after: String?, limit: Int?, liveOnly: Bool, excluding: Set<String>) throws -> [AgentRecord] {
        let page = try agents().filter { agent in
            (after.map { agent.id > $0 } ?? true) && (!liveOnly || agent.state.isLive) && !excluding.contains(agent.id)
        }
        .sorted { $0.id < $1.id }
        return limit.map { Array(page.prefix($0)) } ?? page
    }

    /// From `agents()`, in memory (as above).
    public func agent(id: String) throws -> AgentRecord? { try agents().first { $0.id == id } }
}

extension StepStore {
    /// One step: records, plans, the ladder and the agent in one transaction
    /// (after a crash either all of them are there or none is); the records with ids.
    public func commit(records: [EnforcementRecord], plans: [DegradationPlan] = [], ladder: AgentLadder?, agent: AgentRecord?) throws
        -> [EnforcementRecord]
    {
        try commit(batch: [CommitRequest(records: records, plans: plans, ladder: ladder, agent: agent)])[0]
    }
}

/// A store that hands every call to `base`: a wrapper (a fault injector, a
/// timer) declares only the calls it changes.
public protocol ForwardingEngineStore: EngineStore {
    var base: any EngineStore { get }
}

extension ForwardingEngineStore {
    public func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] { try base.commit(batch: batch) }
    public func save(_ agent: AgentRecord) throws { try base.save(agent) }
    public func agents() throws -> [AgentRecord] { try base.agents() }
    public func agents(after: String?, limit: Int?, liveOnly: Bool, excluding: Set<String>) throws -> [AgentRecord] {
        try base.agents(after: after, limit: limit, liveOnly: liveOnly, excluding: excluding)
    }
    public func agent(id: String) throws -> AgentRecord? { try base.agent(id: id) }
    public func delete(agent: String) throws { try base.delete(agent: agent) }
    public func history(agent: String?, since: Timestamp?, afterID: Int64?, limit: Int) throws -> [EnforcementRecord] {
        try base.history(agent: agent, since: since, afterID: afterID, limit: limit)
    }
    public func degradation(agent: String?, limit: Int) throws -> [DegradationPlan] { try base.degradation(agent: agent, limit: limit) }
    public func record(minutes: [UsageMinute], pruneBefore: Timestamp?) throws {
        try base.record(minutes: minutes, pruneBefore: pruneBefore)
    }
    public func usageMinutes(agent: String, since: Timestamp) throws -> [UsageMinute] {
        try base.usageMinutes(agent: agent, since: since)
    }
    public func replaceRecommendations(agent: String, with recommendations: [Recommendation]) throws {
        try base.replaceRecommendations(agent: agent, with: recommendations)
    }
    public func recommendations(agent: String?) throws -> [Recommendation] { try base.recommendations(agent: agent) }
    public func ladders() throws -> [AgentLadder] { try base.ladders() }
    public func deleteLadder(agent: String) throws { try base.deleteLadder(agent: agent) }
    public func save(group: QuotaGroup) throws { try base.save(group: group) }
    public func groupOverrides() throws -> [String: QuotaGroup] { try base.groupOverrides() }
    public func save(denial: SyscallDenial) throws { try base.save(denial: denial) }
    public func denials(agent: String?, limit: Int) throws -> [SyscallDenial] { try base.denials(agent: agent, limit: limit) }
    public func settledIntent() throws -> UInt64 { try base.settledIntent() }
}

/// An `EngineStore` in memory (for `corral run` and tests).
public final class MemoryStore: EngineStore {
    struct State {
        var agents: [String: AgentRecord] = [:]
        var records: [EnforcementRecord] = []
        var plans: [DegradationPlan] = []
        var minutes: [UsageMinute] = []
        var recommendations: [String: [Recommendation]] = [:]
        var ladders: [String: AgentLadder] = [:]
        var groups: [String: QuotaGroup] = [:]
        var denials: [String: SyscallDenial] = [:]
        var nextID: Int64 = 1
        var settledIntent: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func save(_ agent: AgentRecord) throws { state.withLock { $0.agents[agent.id] = agent } }

    public func agents() throws -> [AgentRecord] { state.withLock { $0.agents.values.sorted { $0.id < $1.id } } }
    public func agent(id: String) throws -> AgentRecord? { state.withLock { $0.agents[id] } }

    /// Like the SQLite store: the agent, its recommendations and usage minutes go; its history stays.
    public func delete(agent: String) throws {
        state.withLock { state in
            state.agents.removeValue(forKey: agent)
            state.recommendations.removeValue(forKey: agent)
            state.minutes.removeAll { $0.agent == agent }
        }
    }

    /// Each commit is atomic already (under the lock): a batch is its steps in turn.
    public func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        state.withLock { state in
            batch.map { request in
                state.plans += request.plans
                var stored: [EnforcementRecord] = []
                for var record in request.records {
                    record.id = state.nextID
                    state.nextID += 1
                    state.records.append(record)
                    stored.append(record)
                }
                if let ladder = request.ladder { state.ladders[ladder.agent] = ladder }
                if let agent = request.agent { state.agents[agent.id] = agent }
                if request.forgetsLadder, let id = request.agent?.id { state.ladders[id] = nil }
                if let intent = request.intent { state.settledIntent = max(state.settledIntent, intent) }
                return stored
            }
        }
    }

    public func history(agent: String?, since: Timestamp?, afterID: Int64?, limit: Int) throws -> [EnforcementRecord] {
        state.withLock { state in
            Array(
                state.records.filter { record in
                    (agent == nil || record.agent == agent) && (since.map { record.at >= $0 } ?? true)
                        && (afterID.map { (record.id ?? 0) > $0 } ?? true)
                }
                .prefix(limit))
        }
    }

    public func degradation(agent: String?, limit: Int) throws -> [DegradationPlan] {
        state.withLock { state in Array(state.plans.filter { agent == nil || $0.agent == agent }.suffix(max(limit, 0))) }
    }

    public func record(minutes: [UsageMinute], pruneBefore: Timestamp?) throws {
        state.withLock { state in
            for minute in minutes {
                state.minutes.removeAll { $0.agent == minute.agent && $0.resource == minute.resource && $0.minute == minute.minute }
                state.minutes.append(minute)
            }
            if let pruneBefore { state.minutes.removeAll { $0.minute < pruneBefore } }
        }
    }

    public func usageMinutes(agent: String, since: Timestamp) throws -> [UsageMinute] {
        state.withLock { state in
            state.minutes.filter { $0.agent == agent && $0.minute >= since }.sorted { ($0.resource, $0.minute) < ($1.resource, $1.minute) }
        }
    }

    public func replaceRecommendations(agent: String, with recommendations: [Recommendation]) throws {
        state.withLock { $0.recommendations[agent] = recommendations }
    }

    public func recommendations(agent: String?) throws -> [Recommendation] {
        state.withLock { state in
            agent.map { state.recommendations[$0] ?? [] } ?? state.recommendations.keys.sorted().flatMap { state.recommendations[$0] ?? [] }
        }
    }

    public func ladders() throws -> [AgentLadder] { state.withLock { Array($0.ladders.values) } }

    public func deleteLadder(agent: String) throws { state.withLock { _ = $0.ladders.removeValue(forKey: agent) } }

    public func save(group: QuotaGroup) throws { state.withLock { $0.groups[group.name] = group } }

    public func groupOverrides() throws -> [String: QuotaGroup] { state.withLock { $0.groups } }

    public func save(denial: SyscallDenial) throws {
        state.withLock { $0.denials[denial.agent + "\u{0}" + denial.syscall] = denial }
    }

    public func denials(agent: String?, limit: Int) throws -> [SyscallDenial] {
        state.withLock { state in
            Array(
                state.denials.values.filter { agent == nil || $0.agent == agent }
                    .sorted { ($0.lastAt, $1.syscall) > ($1.lastAt, $0.syscall) }.prefix(max(limit, 0)))
        }
    }

    public func settledIntent() throws -> UInt64 { state.withLock { $0.settledIntent } }
}
