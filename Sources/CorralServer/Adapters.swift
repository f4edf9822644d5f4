import CorralAPI
import CorralCgroup
public import CorralCore
public import CorralEngine
public import CorralStore
import CorralWatcher

/// The engine's write-ahead intents, in a file beside the database.
public struct FileIntentJournal: IntentJournal {
    let log: IntentLog

    public init(log: IntentLog) {
        self.log = log
    }

    public func append(_ intent: ActionIntent) throws { try log.append(intent) }
    public func read() throws -> (intents: [ActionIntent], problems: [String]) {
        let (intents, problems) = try log.entries(ActionIntent.self)
        return (intents, problems)
    }
    public func clear() throws { try log.clear() }
}

/// The engine's store, in SQLite.
public struct SQLiteEngineStore: EngineStore {
    let store: CorralStore

    public init(store: CorralStore) {
        self.store = store
    }

    public func save(_ agent: AgentRecord) throws { try store.save(agent) }
    public func agents() throws -> [AgentRecord] { try store.agents() }
    public func agents(after: String?, limit: Int?, liveOnly: Bool, excluding: Set<String>) throws -> [AgentRecord] {
        try store.agents(after: after, limit: limit, states: liveOnly ? [.starting, .running, .suspended] : nil, excluding: excluding)
    }
    public func agent(id: String) throws -> AgentRecord? { try store.agent(id: id) }
    public func delete(agent: String) throws { _ = try store.delete(agent: agent) }

    public func commit(batch: [CommitRequest]) throws -> [[EnforcementRecord]] {
        try store.write { transaction in
            try batch.map { request in
                let stored = try request.records.map { try transaction.append($0) }
                for plan in request.plans { try transaction.append(plan: plan) }
                if let ladder = request.ladder { try transaction.save(ladder: ladder) }
                if let agent = request.agent { try transaction.save(agent) }
                if request.forgetsLadder, let id = request.agent?.id { _ = try transaction.deleteLadder(agent: id) }
                if let intent = request.intent { try transaction.settle(intent: intent) }
                return stored
            }
        }
    }

    public func history(agent: String?, since: Timestamp?, afterID: Int64?, limit: Int) throws -> [EnforcementRecord] {
        try store.history(agent: agent, since: since, afterID: afterID, limit: limit)
    }

    public func degradation(agent: String?, limit: Int) throws -> [DegradationPlan] { try store.degradation(agent: agent, limit: limit) }
    public func record(minutes: [UsageMinute], pruneBefore: Timestamp?) throws {
        try store.write { transaction in
            try transaction.append(minutes: minutes)
            if let pruneBefore { try transaction.pruneUsage(before: pruneBefore) }
        }
    }

    public func usageMinutes(agent: String, since: Timestamp) throws -> [UsageMinute] {
        try store.usageMinutes(agent: agent, since: since)
    }

    public func replaceRecommendations(agent: String, with recommendations: [Recommendation]) throws {
        try store.write { try $0.replaceRecommendations(agent: agent, with: recommendations) }
    }

    public func recommendations(agent: String?) throws -> [Recommendation] { try store.recommendations(agent: agent) }

    public func ladders() throws -> [AgentLadder] { Array(try store.ladders().values) }
    public func deleteLadder(agent: String) throws { _ = try store.deleteLadder(agent: agent) }
    public func save(group: QuotaGroup) throws { try store.save(group: group) }
    public func groupOverrides() throws -> [String: QuotaGroup] { try store.groupOverrides() }
    public func save(denial: SyscallDenial) throws { try store.save(denial: denial) }
    public func denials(agent: String?, limit: Int) throws -> [SyscallDenial] { try store.denials(agent: agent, limit: limit) }
    public func settledIntent() throws -> UInt64 { try store.settledIntent() }
}
