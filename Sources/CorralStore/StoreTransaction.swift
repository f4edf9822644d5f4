public import CorralCore
internal import GRDB

/// Reads inside one transaction: everything it returns comes from the same
/// snapshot of the database, whatever is written meanwhile.
///
/// Valid only inside the `read`/`write` closure that received it.
public struct StoreReader {
    let db: Database
    let path: String

    public func agent(id: String) throws -> AgentRecord? {
        try mapping("reading agent '\(id)'") {
            try Row.fetchOne(db, sql: "SELECT \(AgentRow.columns) FROM agent WHERE id = ?", arguments: [id]).map(AgentRow.decode)
        }
    }

    /// Agents in `states` (all when nil) of `group` (all when nil), oldest first.
    public func agents(states: Set<AgentState>? = nil, group: String? = nil) throws -> [AgentRecord] {
        try agents(states: states, group: group, after: nil, order: "created_at, id", limit: nil)
    }

    /// A page of agents in id order: after `after` (from the first when nil),
    /// at most `limit` (all when nil), in `states` (all when nil), none of
    /// `excluding` (the engine's list skips the agents it has newer rows of,
    /// without decoding theirs).
    public func agents(after: String?, limit: Int?, states: Set<AgentState>? = nil, excluding: Set<String> = []) throws
        -> [AgentRecord]
    {
        try agents(states: states, group: nil, after: after, order: "id", limit: limit, excluding: excluding)
    }

    private func agents(
        states: Set<AgentState>?, group: String?, after: String?, order: String, limit: Int?, excluding: Set<String> = []
    ) throws -> [AgentRecord] {
        if let states, states.isEmpty { return [] }
        if let limit, limit <= 0 { return [] }
        var conditions: [String] = []
        var arguments = StatementArguments()
        if let states {
            let sorted = states.map(\.rawValue).sorted()
            conditions.append("state IN (\(sorted.map { _ in "?" }.joined(separator: ", ")))")
            arguments += StatementArguments(sorted)
        }
        if let group {
            conditions.append("group_name = ?")
            arguments += [group]
        }
        if let after {
            conditions.append("id > ?")
            arguments += [after]
        }
        if !excluding.isEmpty {
            // One argument however many (SQLite caps the number of arguments): a JSON array.
            conditions.append("id NOT IN (SELECT value FROM json_each(?))")
            arguments += [try StoreJSON.encode(excluding.sorted())]
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let bound = limit.map { " LIMIT \($0)" } ?? ""
        return try mapping("reading agents") {
            try Row.fetchAll(db, sql: "SELECT \(AgentRow.columns) FROM agent\(filter) ORDER BY \(order)\(bound)", arguments: arguments)
                .map(AgentRow.decode)
        }
    }

    /// Enforcement records in id order (the order they were recorded), at most
    /// `limit` of them (none when `limit` ≤ 0).
    ///
    /// - Parameters:
    ///   - agent: only this agent's records.
    ///   - since: only records with `at` ≥ this time.
    ///   - afterID: only records recorded after this one (a cursor: pass the
    ///     last id seen to page through, or to resume an event stream).
    ///   - newestFirst: the `limit` most recent matches, newest first, instead
    ///     of the oldest ones (for "the last 50 actions").
    public func history(
        agent: String? = nil, since: Timestamp? = nil, afterID: Int64? = nil, limit: Int = 1000, newestFirst: Bool = false
    ) throws -> [EnforcementRecord] {
        guard limit > 0 else { return [] }
        var conditions: [String] = []
        var arguments = StatementArguments()
        if let agent {
            conditions.append("agent = ?")
            arguments += [agent]
        }
        if let since {
            conditions.append("at >= ?")
            arguments += [since.milliseconds]
        }
        if let afterID {
            conditions.append("id > ?")
            arguments += [afterID]
        }
        arguments += [limit]
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let order = newestFirst ? "DESC" : "ASC"
        // Left alone, SQLite answers "since" by walking every record in id
        // order from the first; the time index reads only the recent ones.
        let table = agent == nil && since != nil ? "enforcement INDEXED BY enforcement_by_time" : "enforcement"
        let sql = "SELECT \(HistoryRow.columns) FROM \(table)\(filter) ORDER BY id \(order) LIMIT ?"
        return try mapping("reading enforcement history") {
            var records: [EnforcementRecord] = []
            records.reserveCapacity(min(limit, 4096))
            let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
            while let row = try rows.next() {
                records.append(try HistoryRow.decode(row))
            }
            return records
        }
    }

    /// Degradation plans and recovery stages, oldest first (of `agent` only
    /// when given): at most `limit`, the most recent ones.
    public func degradation(agent: String? = nil, limit: Int = 1000) throws -> [DegradationPlan] {
        guard limit > 0 else { return [] }
        let filter = agent == nil ? "" : " WHERE agent = ?"
        var arguments: StatementArguments = agent.map { [$0] } ?? []
        arguments += [limit]
        return try mapping("reading degradation history") {
            try String.fetchAll(db, sql: "SELECT plan FROM degradation\(filter) ORDER BY id DESC LIMIT ?", arguments: arguments)
                .reversed().map { try StoreJSON.decode(DegradationPlan.self, from: $0) }
        }
    }

    /// Minutes of usage of `agent` (of `resource` only, when given) from `since` on, oldest first.
    public func usageMinutes(agent: String, resource: Resource? = nil, since: Timestamp) throws -> [UsageMinute] {
        var sql = "SELECT agent, resource, minute, mean, peak, samples FROM usage_minute WHERE agent = ? AND minute >= ?"
        var arguments: StatementArguments = [agent, since.milliseconds]
        if let resource {
            sql += " AND resource = ?"
            arguments += [resource.rawValue]
        }
        return try mapping("reading usage history") {
            try Row.fetchAll(db, sql: sql + " ORDER BY resource, minute", arguments: arguments).compactMap { row in
                guard let resource = Resource(rawValue: row[1]) else { return nil }
                return UsageMinute(
                    agent: row[0], resource: resource, minute: Timestamp(milliseconds: row[2]), mean: row[3], peak: row[4], samples: row[5])
            }
        }
    }

    /// The latest recommendations (of `agent` only, when given).
    public func recommendations(agent: String? = nil) throws -> [Recommendation] {
        let filter = agent == nil ? "" : " WHERE agent = ?"
        return try mapping("reading recommendations") {
            try String.fetchAll(db, sql: "SELECT body FROM recommendation\(filter) ORDER BY agent, id", arguments: agent.map { [$0] } ?? [])
                .map { try StoreJSON.decode(Recommendation.self, from: $0) }
        }
    }

    /// The id of the latest enforcement record, nil when there is none.
    /// Denied syscalls, the most recent first (of one agent or all).
    public func denials(agent: String? = nil, limit: Int = 1000) throws -> [SyscallDenial] {
        let filter = agent == nil ? "" : " WHERE agent = ?"
        var arguments: StatementArguments = agent.map { [$0] } ?? []
        arguments += [limit]
        return try mapping("reading denied syscalls") {
            try Row.fetchAll(
                db,
                sql:
                    "SELECT agent, syscall, action, count, first_at, last_at, pid FROM seccomp_denial\(filter) ORDER BY last_at DESC, syscall LIMIT ?",
                arguments: arguments
            ).map { row in
                let agent: String = row[0]
                return SyscallDenial(
                    agent: agent, syscall: row[1], count: row[3], firstAt: Timestamp(milliseconds: row[4]),
                    lastAt: Timestamp(milliseconds: row[5]), action: try enumValue(row[2], "action", of: "a denial of agent '\(agent)'"),
                    pid: row[6])
            }
        }
    }

    /// The highest write-ahead intent whose step is stored (0: none).
    public func settledIntent() throws -> UInt64 {
        try mapping("reading the settled intent") {
            UInt64(try Int64.fetchOne(db, sql: "SELECT settled FROM intent_mark WHERE id = 1") ?? 0)
        }
    }

    public func lastHistoryID() throws -> Int64? {
        try mapping("reading enforcement history") {
            try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM enforcement")
        }
    }

    public func ladder(agent: String) throws -> AgentLadder? {
        try mapping("reading the escalation state of agent '\(agent)'") {
            try String.fetchOne(db, sql: "SELECT state FROM ladder WHERE agent = ?", arguments: [agent])
                .map { try StoreJSON.decode(AgentLadder.self, from: $0) }
        }
    }

    /// Every stored escalation state, by agent id.
    public func ladders() throws -> [String: AgentLadder] {
        try mapping("reading escalation states") {
            var ladders: [String: AgentLadder] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT agent, state FROM ladder") {
                let agent: String = try row.decode(atIndex: 0)
                ladders[agent] = try StoreJSON.decode(AgentLadder.self, from: row.decode(atIndex: 1))
            }
            return ladders
        }
    }

    /// Groups changed by live updates, by name.
    public func groupOverrides() throws -> [String: QuotaGroup] {
        try mapping("reading group overrides") {
            var groups: [String: QuotaGroup] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, definition FROM group_override") {
                let name: String = try row.decode(atIndex: 0)
                groups[name] = try StoreJSON.decode(QuotaGroup.self, from: row.decode(atIndex: 1))
            }
            return groups
        }
    }

    func mapping<T>(_ operation: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw StoreError.explain(error, path: path, operation: operation())
        }
    }
}

@available(*, unavailable)
extension StoreReader: Sendable {}

/// Reads and writes inside one transaction: all its writes commit together
/// when the `write` closure returns, or none do (the closure threw, or the
/// process died before the commit).
///
/// Valid only inside the `write` closure that received it.
public struct StoreWriter {
    let db: Database
    let path: String

    /// Reads that see this transaction's own writes.
    public var reader: StoreReader { StoreReader(db: db, path: path) }

    /// Inserts or updates the agent with `agent.id`. Its ladder, if any, stays.
    public func save(_ agent: AgentRecord) throws {
        try reader.mapping("saving agent '\(agent.id)'") {
            let statement = try db.cachedStatement(
                sql: """
                    INSERT INTO agent (\(AgentRow.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET
                        group_name = excluded.group_name, state = excluded.state, origin = excluded.origin,
                        pid = excluded.pid, command = excluded.command, limits = excluded.limits,
                        overrides = excluded.overrides, cgroup = excluded.cgroup, created_at = excluded.created_at,
                        ended_at = excluded.ended_at, exit_status = excluded.exit_status, end_reason = excluded.end_reason,
                        security = excluded.security, priority = excluded.priority, priority_own = excluded.priority_own
                    """)
            try statement.execute(arguments: AgentRow.arguments(agent))
        }
    }

    /// Removes the agent with its ladder, recommendations and usage history;
    /// its enforcement history stays. Returns whether there was such an agent.
    @discardableResult
    public func delete(agent id: String) throws -> Bool {
        try reader.mapping("deleting agent '\(id)'") {
            try db.execute(sql: "DELETE FROM agent WHERE id = ?", arguments: [id])
            let existed = db.changesCount > 0
            try db.execute(sql: "DELETE FROM recommendation WHERE agent = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM usage_minute WHERE agent = ?", arguments: [id])
            return existed
        }
    }

    /// Records `record` and returns it with its `id`: larger than every id
    /// committed before, and never reused once committed (ids are assigned
    /// in commit order, so a reader paging with `afterID` misses none).
    ///
    /// `record.id` must be nil: a record with an id is already stored, and
    /// appending it again would duplicate it.
    @discardableResult
    public func append(_ record: EnforcementRecord) throws -> EnforcementRecord {
        precondition(record.id == nil, "enforcement record \(record.id ?? 0) is already stored; append it once")
        return try reader.mapping("recording a \(record.action.rawValue) of agent '\(record.agent)'") {
            let statement = try db.cachedStatement(
                sql: "INSERT INTO enforcement (\(HistoryRow.insertColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            try statement.execute(arguments: HistoryRow.arguments(record))
            var stored = record
            stored.id = db.lastInsertedRowID
            return stored
        }
    }

    /// Stores a denial's latest count (one row per agent and syscall).
    public func save(denial: SyscallDenial) throws {
        try reader.mapping("recording a denied syscall of agent '\(denial.agent)'") {
            try db.cachedStatement(
                sql: """
                    INSERT INTO seccomp_denial (agent, syscall, action, count, first_at, last_at, pid) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (agent, syscall) DO UPDATE SET action = excluded.action, count = excluded.count,
                        last_at = excluded.last_at, pid = excluded.pid
                    """
            ).execute(arguments: [
                denial.agent, denial.syscall, denial.action.rawValue, denial.count, denial.firstAt.milliseconds, denial.lastAt.milliseconds,
                denial.pid,
            ])
        }
    }

    /// Records a degradation plan (a level change).
    public func append(plan: DegradationPlan) throws {
        try reader.mapping("recording a degradation plan of agent '\(plan.agent)'") {
            try db.cachedStatement(sql: "INSERT INTO degradation (agent, resource, level, reason, at, plan) VALUES (?, ?, ?, ?, ?, ?)")
                .execute(arguments: [
                    plan.agent, plan.resource.rawValue, plan.level.rawValue, plan.reason.rawValue, plan.at.milliseconds,
                    StoreJSON.encode(plan),
                ])
        }
    }

    /// Records minutes of usage (a minute recorded again replaces the old
    /// row). Minutes of an agent not in the store are dropped: it was removed
    /// while they waited to be written, and nothing would ever delete them.
    public func append(minutes: [UsageMinute]) throws {
        try reader.mapping("recording usage history") {
            let statement = try db.cachedStatement(
                sql: """
                    INSERT OR REPLACE INTO usage_minute (agent, resource, minute, mean, peak, samples)
                    SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM agent WHERE id = ?1)
                    """)
            for minute in minutes {
                try statement.execute(arguments: [
                    minute.agent, minute.resource.rawValue, minute.minute.milliseconds, minute.mean, minute.peak, minute.samples,
                ])
            }
        }
    }

    /// Deletes usage minutes before `time`; returns how many.
    @discardableResult
    public func pruneUsage(before time: Timestamp) throws -> Int {
        try reader.mapping("pruning usage history") {
            try db.execute(sql: "DELETE FROM usage_minute WHERE minute < ?", arguments: [time.milliseconds])
            return db.changesCount
        }
    }

    /// Replaces `agent`'s recommendations (only its own: never another
    /// agent's). An agent not in the store gets none (an analysis that raced
    /// its removal): returns whether it was there.
    @discardableResult
    public func replaceRecommendations(agent: String, with recommendations: [Recommendation]) throws -> Bool {
        try reader.mapping("saving the recommendations of agent '\(agent)'") {
            try db.execute(sql: "DELETE FROM recommendation WHERE agent = ?", arguments: [agent])
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM agent WHERE id = ?)", arguments: [agent]) == true else {
                return false
            }
            let statement = try db.cachedStatement(
                sql: "INSERT INTO recommendation (agent, resource, kind, at, body) VALUES (?, ?, ?, ?, ?)")
            for recommendation in recommendations {
                try statement.execute(arguments: [
                    agent, recommendation.resource.rawValue, recommendation.kind.rawValue, recommendation.at.milliseconds,
                    StoreJSON.encode(recommendation),
                ])
            }
            return true
        }
    }

    /// Deletes enforcement records with `at` before `time`; returns how many.
    @discardableResult
    public func pruneHistory(before time: Timestamp) throws -> Int {
        try reader.mapping("pruning enforcement history") {
            try db.execute(sql: "DELETE FROM enforcement WHERE at < ?", arguments: [time.milliseconds])
            let records = db.changesCount
            try db.execute(sql: "DELETE FROM seccomp_denial WHERE last_at < ?", arguments: [time.milliseconds])
            return records + db.changesCount
        }
    }

    /// Stores the escalation state of `ladder.agent`. The agent must be in
    /// the store when the transaction commits (saved before or after this,
    /// in the same transaction): otherwise the whole transaction fails with
    /// `StoreError.Code.unknownAgent`.
    public func save(ladder: AgentLadder) throws {
        try reader.mapping("saving the escalation state of agent '\(ladder.agent)'") {
            try db.cachedStatement(
                sql: "INSERT INTO ladder (agent, state) VALUES (?, ?) ON CONFLICT(agent) DO UPDATE SET state = excluded.state"
            )
            .execute(arguments: [ladder.agent, StoreJSON.encode(ladder)])
        }
    }

    /// Marks every write-ahead intent up to `sequence` settled (never lowers the mark).
    public func settle(intent sequence: UInt64) throws {
        try reader.mapping("marking intent \(sequence) settled") {
            try db.cachedStatement(
                sql: """
                    INSERT INTO intent_mark (id, settled) VALUES (1, ?)
                    ON CONFLICT(id) DO UPDATE SET settled = max(settled, excluded.settled)
                    """
            )
            .execute(arguments: [Int64(clamping: sequence)])
        }
    }

    /// Returns whether there was a ladder for `agent`.
    @discardableResult
    public func deleteLadder(agent: String) throws -> Bool {
        try reader.mapping("deleting the escalation state of agent '\(agent)'") {
            try db.execute(sql: "DELETE FROM ladder WHERE agent = ?", arguments: [agent])
            return db.changesCount > 0
        }
    }

    /// Stores `group` as changed by a live update; it replaces the
    /// configuration's definition of `group.name` after a restart.
    public func save(group: QuotaGroup) throws {
        try reader.mapping("saving group '\(group.name)'") {
            try db.execute(
                sql:
                    "INSERT INTO group_override (name, definition) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET definition = excluded.definition",
                arguments: [group.name, StoreJSON.encode(group)])
        }
    }

    /// Returns whether there was an override for `name`.
    @discardableResult
    public func deleteGroupOverride(name: String) throws -> Bool {
        try reader.mapping("deleting group override '\(name)'") {
            try db.execute(sql: "DELETE FROM group_override WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }
}

@available(*, unavailable)
extension StoreWriter: Sendable {}

/// The `agent` table's columns and their mapping to `AgentRecord`.
enum AgentRow {
    static let columns =
        "id, group_name, state, origin, pid, command, limits, overrides, cgroup, created_at, ended_at, exit_status, end_reason, security, priority, priority_own"

    static func arguments(_ agent: AgentRecord) throws -> StatementArguments {
        [
            agent.id, agent.group, agent.state.rawValue, agent.origin.rawValue, agent.pid,
            try StoreJSON.encode(agent.command), try limitsJSON.encode(agent.limits), try StoreJSON.encode(agent.overrides),
            agent.cgroup, agent.createdAt.milliseconds, agent.endedAt?.milliseconds, agent.exitStatus, agent.endReason,
            try agent.security.map { try securityJSON.encode($0) }, agent.priority.rawValue, agent.priorityIsOwn,
        ]
    }

    /// An agent's row is written several times (registered, attached, ended…)
    /// and most agents share their group's limits and policy: JSONEncoder took
    /// a tenth of corrald's instructions per `corral run` for these two
    /// columns (`scripts/profile-launch`).
    static let limitsJSON = EncodedJSONMemo<LimitSet>()
    static let securityJSON = EncodedJSONMemo<SecurityPolicy>()

    static func decode(_ row: Row) throws -> AgentRecord {
        let id: String = try row.decode(atIndex: 0)
        return AgentRecord(
            id: id,
            group: try row.decode(atIndex: 1),
            state: try enumValue(row.decode(atIndex: 2), "state", of: "agent '\(id)'"),
            origin: try enumValue(row.decode(atIndex: 3), "origin", of: "agent '\(id)'"),
            pid: try row.decode(Int32?.self, atIndex: 4),
            command: try StoreJSON.decode([String].self, from: row.decode(atIndex: 5)),
            limits: try StoreJSON.decode(LimitSet.self, from: row.decode(atIndex: 6)),
            overrides: try StoreJSON.decode([Resource: LimitOverride].self, from: row.decode(atIndex: 7)),
            cgroup: try row.decode(atIndex: 8),
            createdAt: Timestamp(milliseconds: try row.decode(atIndex: 9)),
            endedAt: try row.decode(Int64?.self, atIndex: 10).map { Timestamp(milliseconds: $0) },
            exitStatus: try row.decode(Int32?.self, atIndex: 11),
            endReason: try row.decode(atIndex: 12),
            security: try row.decode(String?.self, atIndex: 13).map { try StoreJSON.decode(SecurityPolicy.self, from: $0) },
            priority: try priorityValue(row.decode(atIndex: 14), of: "agent '\(id)'"),
            priorityIsOwn: try row.decode(atIndex: 15))
    }
}

/// The `enforcement` table's columns and their mapping to `EnforcementRecord`.
enum HistoryRow {
    static let insertColumns = "agent, resource, kind, current_value, limit_value, action, at, succeeded, error, details"
    static let columns = "id, " + insertColumns

    static func arguments(_ record: EnforcementRecord) -> StatementArguments {
        [
            record.agent, record.resource.rawValue, record.kind.rawValue, record.current.isNaN ? nil : record.current,
            record.limit.isNaN ? nil : record.limit, record.action.rawValue, record.at.milliseconds, record.succeeded,
            record.error, record.details,
        ]
    }

    static func decode(_ row: Row) throws -> EnforcementRecord {
        let id: Int64 = try row.decode(atIndex: 0)
        let what = "enforcement record \(id)"
        let violation = Violation(
            agent: try row.decode(atIndex: 1),
            resource: try enumValue(row.decode(atIndex: 2), "resource", of: what),
            kind: try enumValue(row.decode(atIndex: 3), "kind", of: what),
            current: try row.decode(Double?.self, atIndex: 4) ?? .nan,
            limit: try row.decode(Double?.self, atIndex: 5) ?? .nan)
        return EnforcementRecord(
            id: id, violation: violation, action: try enumValue(row.decode(atIndex: 6), "action", of: what),
            at: Timestamp(milliseconds: try row.decode(atIndex: 7)), succeeded: try row.decode(atIndex: 8),
            error: try row.decode(atIndex: 9), details: try row.decode(atIndex: 10))
    }
}

/// An enum from its stored raw value; a value this binary does not know
/// (written by a newer Corral, or edited by hand) is a readable error.
private func priorityValue(_ raw: Int, of owner: String) throws -> Priority {
    guard let value = Priority(rawValue: raw) else {
        throw DecodingError.dataCorrupted(
            DecodingError.Context(codingPath: [], debugDescription: "\(owner) has priority \(raw), outside 0…10"))
    }
    return value
}

private func enumValue<T: RawRepresentable>(_ raw: String, _ field: String, of owner: String) throws -> T where T.RawValue == String {
    guard let value = T(rawValue: raw) else {
        throw DecodingError.dataCorrupted(
            DecodingError.Context(codingPath: [], debugDescription: "\(owner) has an unknown \(field) '\(raw)'"))
    }
    return value
}
