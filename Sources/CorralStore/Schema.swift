internal import Foundation
internal import GRDB
import Synchronization

/// The database schema and its versions.
///
/// Every migration ends by setting `PRAGMA user_version` to its number, in
/// the same transaction as its changes, so the header says which schema the
/// file has; `application_id` marks the file as Corral's. A file whose
/// `user_version` is above `Schema.version` was written by a newer Corral and
/// is refused rather than misread.
enum Schema {
    /// The schema this binary writes and understands.
    static let version = 6

    /// "CRRL" in the SQLite header (`PRAGMA application_id`).
    static let applicationID: Int32 = 0x4352_524C

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // Times are milliseconds since the Unix epoch; JSON columns hold
            // the CorralCore types' Codable form (see StoreJSON).
            try db.execute(
                sql: """
                    CREATE TABLE agent (
                        id TEXT PRIMARY KEY NOT NULL,
                        group_name TEXT NOT NULL,
                        state TEXT NOT NULL,
                        origin TEXT NOT NULL,
                        pid INTEGER,
                        command TEXT NOT NULL,
                        limits TEXT NOT NULL,
                        overrides TEXT NOT NULL,
                        cgroup TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        ended_at INTEGER,
                        exit_status INTEGER,
                        end_reason TEXT
                    );
                    CREATE INDEX agent_by_state ON agent(state);
                    CREATE INDEX agent_by_group ON agent(group_name, state);
                    CREATE INDEX agent_by_cgroup ON agent(cgroup);

                    -- AUTOINCREMENT: ids are never reused, even after pruning the newest rows,
                    -- so "after id N" stays a valid cursor for clients.
                    -- current_value/limit_value are NULL for NaN (SQLite stores NaN as NULL).
                    CREATE TABLE enforcement (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        agent TEXT NOT NULL,
                        resource TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        current_value REAL,
                        limit_value REAL,
                        action TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        succeeded INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
                        error TEXT,
                        details TEXT NOT NULL
                    );
                    CREATE INDEX enforcement_by_agent ON enforcement(agent, id);
                    CREATE INDEX enforcement_by_time ON enforcement(at);

                    -- One escalation state per agent; it goes with its agent. Checked at
                    -- commit, so a transaction may save a new agent's ladder before the agent.
                    CREATE TABLE ladder (
                        agent TEXT PRIMARY KEY NOT NULL
                            REFERENCES agent(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
                        state TEXT NOT NULL
                    );

                    -- Groups as changed by live updates, replacing the configuration's definition.
                    CREATE TABLE group_override (
                        name TEXT PRIMARY KEY NOT NULL,
                        definition TEXT NOT NULL
                    );

                    PRAGMA application_id = \(applicationID);
                    PRAGMA user_version = 1;
                    """)
        }
        migrator.registerMigration("v2") { db in
            // Degradation plans and recovery stages (issue 4): one row per
            // level change, the plan as JSON.
            try db.execute(
                sql: """
                    CREATE TABLE degradation (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        agent TEXT NOT NULL,
                        resource TEXT NOT NULL,
                        level TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        plan TEXT NOT NULL
                    );
                    CREATE INDEX degradation_by_agent ON degradation(agent, id);
                    PRAGMA user_version = 2;
                    """)
        }
        migrator.registerMigration("v3") { db in
            // Analytics (issue 5): usage downsampled to minutes, and each
            // agent's latest recommendations (replaced per agent, never all).
            try db.execute(
                sql: """
                    CREATE TABLE usage_minute (
                        agent TEXT NOT NULL,
                        resource TEXT NOT NULL,
                        minute INTEGER NOT NULL,
                        mean REAL NOT NULL,
                        peak REAL NOT NULL,
                        samples INTEGER NOT NULL,
                        PRIMARY KEY (agent, resource, minute)
                    ) WITHOUT ROWID;
                    CREATE INDEX usage_minute_by_time ON usage_minute(minute);
                    CREATE TABLE recommendation (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        agent TEXT NOT NULL,
                        resource TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        body TEXT NOT NULL
                    );
                    CREATE INDEX recommendation_by_agent ON recommendation(agent);
                    PRAGMA user_version = 3;
                    """)
        }
        migrator.registerMigration("v4") { db in
            // Agent isolation (issue 12): the policy an agent runs under (JSON,
            // NULL for agents from before), and its denied syscalls, one row
            // per agent and syscall, counted.
            try db.execute(
                sql: """
                    ALTER TABLE agent ADD COLUMN security TEXT;
                    CREATE TABLE seccomp_denial (
                        agent TEXT NOT NULL,
                        syscall TEXT NOT NULL,
                        action TEXT NOT NULL,
                        count INTEGER NOT NULL,
                        first_at INTEGER NOT NULL,
                        last_at INTEGER NOT NULL,
                        pid INTEGER,
                        PRIMARY KEY (agent, syscall)
                    ) WITHOUT ROWID;
                    CREATE INDEX seccomp_denial_by_time ON seccomp_denial(last_at);
                    PRAGMA user_version = 4;
                    """)
        }
        migrator.registerMigration("v5") { db in
            // Priorities (issue 13): the agent's priority in force and whether it is
            // its own; agents from before have the default, their group's.
            try db.execute(
                sql: """
                    ALTER TABLE agent ADD COLUMN priority INTEGER NOT NULL DEFAULT 5;
                    ALTER TABLE agent ADD COLUMN priority_own INTEGER NOT NULL DEFAULT 0;
                    PRAGMA user_version = 5;
                    """)
        }
        migrator.registerMigration("v6") { db in
            // Write-ahead intents (the engine's journal beside this file): the highest
            // one whose step is stored, written in the step's own transaction. One row.
            try db.execute(
                sql: """
                    CREATE TABLE intent_mark (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        settled INTEGER NOT NULL
                    );
                    PRAGMA user_version = 6;
                    """)
        }
        return migrator
    }

    /// Refuses a file that is not Corral's or is newer than this binary,
    /// before anything is written to it (WAL mode included). Runs on every
    /// connection as it opens.
    static func check(_ db: Database, path: String) throws {
        let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        if applicationID == Self.applicationID {
            guard version <= Self.version else {
                throw StoreError(
                    code: .newerSchema, path: path, operation: "opening",
                    message:
                        "state database \(path) has schema version \(version), newer than this corral supports (\(Self.version)): it was written by a newer Corral",
                    fix: "run the newer corral, or move the file aside to start with an empty state")
            }
            return
        }
        let tables = try String.fetchAll(
            db,
            sql: """
                SELECT name FROM sqlite_master
                WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%'
                ORDER BY name
                """)
        guard applicationID == 0, tables.isEmpty else {
            let what =
                applicationID != 0
                ? "application id \(String(UInt32(bitPattern: applicationID), radix: 16))"
                : "tables \(tables.prefix(5).joined(separator: ", "))\(tables.count > 5 ? ", …" : "")"
            throw StoreError(
                code: .notCorral, path: path, operation: "opening",
                message: "state database \(path) is an SQLite database of another program (\(what)), not Corral's",
                fix: "point corral serve at its own state file; it will not modify this one")
        }
    }
}

/// The JSON form of the values stored in JSON columns.
///
/// Keys are the Swift property names, not snake_case: with
/// `keyDecodingStrategy = .convertFromSnakeCase`, JSONDecoder also rewrites
/// the keys of dictionaries keyed by `CodingKeyRepresentable` enums, so
/// `EscalationPolicy.delays` keyed by `scale_down` fails to decode
/// ("scaleDown" is no `EnforcementAction`). Identity keys round-trip every
/// CorralCore type.
enum StoreJSON {
    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "+inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "+inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(type, from: Data(text.utf8))
    }
}

/// The JSON of the last few distinct values encoded, so a value written again
/// (an agent's limits at each save of its row) is not encoded again: the same
/// text, since `StoreJSON` sorts keys. Any thread (the committer's, a reader's).
final class EncodedJSONMemo<Value: Encodable & Equatable & Sendable>: Sendable {
    private let entries = Mutex<[(value: Value, json: String)]>([])
    /// Distinct values kept (the oldest goes first).
    let capacity: Int

    init(capacity: Int = 32) {
        self.capacity = capacity
    }

    func encode(_ value: Value) throws -> String {
        if let json = entries.withLock({ entries in entries.first { $0.value == value }?.json }) { return json }
        let json = try StoreJSON.encode(value)
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeFirst() }
            entries.append((value, json))
        }
        return json
    }

    var count: Int { entries.withLock { $0.count } }
}
