import CorralCgroup
import CorralCore
import CorralEngine
import CorralStore
import CorralWatcher

/// The engine's store, in SQLite.
struct SQLiteEngineStore: EngineStore {
    let store: CorralStore

    func save(_ agent: AgentRecord) throws { try store.save(agent) }
    func agents() throws -> [AgentRecord] { try store.agents() }
    func delete(agent: String) throws { _ = try store.delete(agent: agent) }

    func commit(records: [EnforcementRecord], ladder: AgentLadder?, agent: AgentRecord?) throws -> [EnforcementRecord] {
        try store.write { transaction in
            let stored = try records.map { try transaction.append($0) }
            if let ladder { try transaction.save(ladder: ladder) }
            if let agent { try transaction.save(agent) }
            return stored
        }
    }

    func history(agent: String?, since: Timestamp?, afterID: Int64?, limit: Int) throws -> [EnforcementRecord] {
        try store.history(agent: agent, since: since, afterID: afterID, limit: limit)
    }

    func ladders() throws -> [AgentLadder] { Array(try store.ladders().values) }
    func deleteLadder(agent: String) throws { _ = try store.deleteLadder(agent: agent) }
    func save(group: QuotaGroup) throws { try store.save(group: group) }
    func groupOverrides() throws -> [String: QuotaGroup] { try store.groupOverrides() }
}
