public import CorralCore
import Synchronization

/// Where the engine keeps what must outlive it. The daemon uses SQLite
/// (CorralStore); `corral run` without a daemon keeps it in memory.
public protocol EngineStore: Sendable {
    func save(_ agent: AgentRecord) throws
    func agents() throws -> [AgentRecord]
    func delete(agent: String) throws
    /// Records actions, the ladder and the agent in one transaction: after a
    /// crash either all of them are there or none is. Returns the records with ids.
    /// Degradation plans are part of the same transaction.
    func commit(records: [EnforcementRecord], plans: [DegradationPlan], ladder: AgentLadder?, agent: AgentRecord?) throws
        -> [EnforcementRecord]
    /// Several steps' writes in one transaction (group commit); the stored
    /// records of each, in order. All or nothing.
    func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]]
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
}

extension EngineStore {
    /// One commit per step: for stores without transactions of their own
    /// (in memory, each commit is atomic already).
    public func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        try batch.map { try commit(records: $0.records, plans: $0.plans, ladder: $0.ladder, agent: $0.agent) }
    }

    public func commit(records: [EnforcementRecord], ladder: AgentLadder?, agent: AgentRecord?) throws -> [EnforcementRecord] {
        try commit(records: records, plans: [], ladder: ladder, agent: agent)
    }
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
        var nextID: Int64 = 1
    }

    private let state = Mutex(State())

    public init() {}

    public func save(_ agent: AgentRecord) throws { state.withLock { $0.agents[agent.id] = agent } }

    public func agents() throws -> [AgentRecord] { state.withLock { $0.agents.values.sorted { $0.id < $1.id } } }

    /// Like the SQLite store: the agent, its recommendations and usage minutes go; its history stays.
    public func delete(agent: String) throws {
        state.withLock { state in
            state.agents.removeValue(forKey: agent)
            state.recommendations.removeValue(forKey: agent)
            state.minutes.removeAll { $0.agent == agent }
        }
    }

    public func commit(records: [EnforcementRecord], plans: [DegradationPlan], ladder: AgentLadder?, agent: AgentRecord?) throws
        -> [EnforcementRecord]
    {
        state.withLock { state in
            state.plans += plans
            var stored: [EnforcementRecord] = []
            for var record in records {
                record.id = state.nextID
                state.nextID += 1
                state.records.append(record)
                stored.append(record)
            }
            if let ladder { state.ladders[ladder.agent] = ladder }
            if let agent { state.agents[agent.id] = agent }
            return stored
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
}
