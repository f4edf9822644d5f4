public import CorralCore
internal import GRDB

/// Corral's durable state: agents, enforcement history, escalation ladders
/// and group overrides, in one SQLite database in WAL mode.
///
/// Every write is a transaction; group the writes that belong together (the
/// action recorded, the ladder that fired it, the agent's new state) in one
/// `write` so a crash leaves all of them or none:
///
///     let recorded = try store.write { tx in
///         let record = try tx.append(record)
///         try tx.save(ladder: ladder)
///         try tx.save(agent)
///         return record
///     }
///
/// Calls block the calling thread for the time of one SQLite transaction
/// (about 0.1 ms). WAL checkpoints run on a thread of their own, never in a
/// commit (see `Checkpointer`).
/// Readers do not wait for the writer: a reader sees the last committed state.
///
/// Durability: `synchronous = NORMAL` with WAL. A commit is in the WAL file
/// (the kernel's page cache) when `write` returns, so it survives a crash or
/// `kill -9` of the daemon; the WAL is fsynced at checkpoints, so a power loss
/// or kernel panic may lose the last transactions before it, never the
/// database's consistency. That is the trade we want: an enforcement action
/// happens every few seconds per agent at worst, FULL would fsync on every
/// one of them (0.2 ms on a fast SSD, 10 ms and more on spinning or network
/// disks, while the engine waits), and a
/// power loss ends every agent too — after one, the daemon reconciles with an
/// empty cgroup tree and marks the agents lost whatever the last records said.
public final class CorralStore: Sendable {
    /// The database file (":memory:" for `inMemory()`).
    public let path: String
    /// The schema version this binary writes (`PRAGMA user_version`).
    public static let schemaVersion = Schema.version

    private let database: any DatabaseWriter
    private let lock: FileLock?
    private let checkpointer: Checkpointer?

    /// Opens (creating when missing) the database at `path`, after taking the
    /// `<path>-lock` file so no other `corral serve` uses it, and migrates it
    /// to this binary's schema. The directory must exist.
    ///
    /// Throws `StoreError`: `.locked` (another daemon), `.notADatabase`,
    /// `.notCorral`, `.newerSchema`, `.corrupt`, `.permissionDenied`, …
    /// A file that is not Corral's is never modified (only the lock file is
    /// created beside it).
    ///
    /// `checkpointInterval`: how often a thread of the store copies the WAL
    /// back into the database file (see `Checkpointer`), off the commit path.
    public convenience init(path: String, checkpointInterval: Duration = .seconds(1)) throws {
        let lock = try FileLock(databasePath: path)
        let pool: DatabasePool
        let checkpointer: Checkpointer
        do {
            var configuration = Self.configuration(path: path)
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Checkpointer.backstopPages)")
            }
            pool = try DatabasePool(path: path, configuration: configuration)
            try Schema.migrator.migrate(pool)
            checkpointer = try Checkpointer(path: path, interval: checkpointInterval)
        } catch {
            lock.release()
            throw StoreError.explain(error, path: path, operation: "opening")
        }
        self.init(path: path, database: pool, lock: lock, checkpointer: checkpointer)
    }

    /// A private database in memory, for tests.
    public static func inMemory() throws -> CorralStore {
        let path = ":memory:"
        do {
            let queue = try DatabaseQueue(configuration: configuration(path: path))
            try Schema.migrator.migrate(queue)
            return CorralStore(path: path, database: queue, lock: nil, checkpointer: nil)
        } catch {
            throw StoreError.explain(error, path: path, operation: "opening")
        }
    }

    private init(path: String, database: any DatabaseWriter, lock: FileLock?, checkpointer: Checkpointer?) {
        self.path = path
        self.database = database
        self.lock = lock
        self.checkpointer = checkpointer
    }

    deinit {
        // Nothing is left to tell: the connection goes with the object anyway.
        do { try checkpointer?.stop() } catch {}
    }

    private static func configuration(path: String) -> Configuration {
        var configuration = Configuration()
        configuration.label = "corral-state"
        configuration.foreignKeysEnabled = true
        // Only a sqlite3 shell writing to the file can make us wait: the lock
        // file keeps other daemons out, and WAL readers never block the writer.
        configuration.busyMode = .timeout(5)
        // Before GRDB switches the file to WAL: never touch another program's database.
        configuration.prepareDatabase { db in try Schema.check(db, path: path) }
        return configuration
    }

    /// Closes the database and releases the lock file. Any later call throws
    /// `StoreError.Code.closed`. Dropping the last reference closes too.
    public func close() throws {
        defer { lock?.release() }
        let checkpointerStopped = Result { try checkpointer?.stop() }
        try perform("closing") { try database.close() }
        try perform("closing the checkpoint connection") { try checkpointerStopped.get() }
    }

    /// Copies the WAL into the database file now, on the checkpoint thread,
    /// and returns the WAL's frame count and how many of them are copied.
    /// (It happens every `checkpointInterval` anyway.)
    @discardableResult
    public func checkpointNow() -> (walFrames: Int, checkpointed: Int, error: String?) {
        guard let checkpointer else { return (0, 0, nil) }
        checkpointer.checkpointNow()
        let progress = checkpointer.progress
        return (progress.walFrames, progress.checkpointedFrames, progress.lastError)
    }

    // MARK: - Transactions

    /// Runs `body` in one write transaction: all of its writes commit when it
    /// returns, none when it throws (the error is rethrown as is) or the
    /// process dies first. Writes are serialized. Do not call the store from
    /// inside `body`: use the writer.
    @discardableResult
    public func write<T>(_ body: (StoreWriter) throws -> T) throws -> T {
        try write("writing", body)
    }

    /// `write`, with `operation` naming what failed at commit (a full disk,
    /// a ladder without its agent).
    private func write<T>(_ operation: @autoclosure () -> String, _ body: (StoreWriter) throws -> T) throws -> T {
        do {
            return try database.write { db in try body(StoreWriter(db: db, path: path)) }
        } catch {
            throw StoreError.explain(error, path: path, operation: operation())
        }
    }

    /// Runs `body` on one consistent snapshot: the agents, ladders and history
    /// it reads belong together (for reconciliation at start-up).
    public func read<T>(_ body: (StoreReader) throws -> T) throws -> T {
        try perform("reading") {
            try database.read { db in try body(StoreReader(db: db, path: path)) }
        }
    }

    // MARK: - Agents

    /// Inserts or updates the agent with `agent.id`.
    public func save(_ agent: AgentRecord) throws {
        try write("saving agent '\(agent.id)'") { try $0.save(agent) }
    }

    public func agent(id: String) throws -> AgentRecord? {
        try read { try $0.agent(id: id) }
    }

    /// Agents in `states` (all when nil) of `group` (all when nil), oldest first.
    public func agents(states: Set<AgentState>? = nil, group: String? = nil) throws -> [AgentRecord] {
        try read { try $0.agents(states: states, group: group) }
    }

    /// A page of agents in id order: after `after` (from the first when nil),
    /// at most `limit` (all when nil), in `states` (all when nil).
    public func agents(after: String?, limit: Int?, states: Set<AgentState>? = nil, excluding: Set<String> = []) throws
        -> [AgentRecord]
    {
        try read { try $0.agents(after: after, limit: limit, states: states, excluding: excluding) }
    }

    /// Removes the agent with its ladder, recommendations and usage history;
    /// its enforcement history stays.
    @discardableResult
    public func delete(agent id: String) throws -> Bool {
        try write("deleting agent '\(id)'") { try $0.delete(agent: id) }
    }

    // MARK: - Enforcement history

    /// Records `record` (whose `id` must be nil) and returns it with its id.
    @discardableResult
    public func append(_ record: EnforcementRecord) throws -> EnforcementRecord {
        try write("recording a \(record.action.rawValue) of agent '\(record.agent)'") { try $0.append(record) }
    }

    /// See `StoreReader.history(agent:since:afterID:limit:newestFirst:)`.
    public func history(
        agent: String? = nil, since: Timestamp? = nil, afterID: Int64? = nil, limit: Int = 1000, newestFirst: Bool = false
    ) throws -> [EnforcementRecord] {
        try read { try $0.history(agent: agent, since: since, afterID: afterID, limit: limit, newestFirst: newestFirst) }
    }

    /// Deletes enforcement records older than `time`; returns how many.
    @discardableResult
    public func degradation(agent: String? = nil, limit: Int = 1000) throws -> [DegradationPlan] {
        try read { try $0.degradation(agent: agent, limit: limit) }
    }

    public func usageMinutes(agent: String, resource: Resource? = nil, since: Timestamp) throws -> [UsageMinute] {
        try read { try $0.usageMinutes(agent: agent, resource: resource, since: since) }
    }

    public func recommendations(agent: String? = nil) throws -> [Recommendation] {
        try read { try $0.recommendations(agent: agent) }
    }

    public func save(denial: SyscallDenial) throws {
        try write { try $0.save(denial: denial) }
    }

    public func denials(agent: String? = nil, limit: Int = 1000) throws -> [SyscallDenial] {
        try read { try $0.denials(agent: agent, limit: limit) }
    }

    public func pruneHistory(before time: Timestamp) throws -> Int {
        try write("pruning enforcement history") { try $0.pruneHistory(before: time) }
    }

    // MARK: - Escalation ladders

    public func save(ladder: AgentLadder) throws {
        try write("saving the escalation state of agent '\(ladder.agent)'") { try $0.save(ladder: ladder) }
    }

    public func ladder(agent: String) throws -> AgentLadder? {
        try read { try $0.ladder(agent: agent) }
    }

    /// Every stored ladder, by agent id.
    public func ladders() throws -> [String: AgentLadder] {
        try read { try $0.ladders() }
    }

    @discardableResult
    public func deleteLadder(agent: String) throws -> Bool {
        try write("deleting the escalation state of agent '\(agent)'") { try $0.deleteLadder(agent: agent) }
    }

    /// The highest write-ahead intent whose step is stored (0: none).
    public func settledIntent() throws -> UInt64 {
        try read { try $0.settledIntent() }
    }

    // MARK: - Group overrides

    /// Stores a group as changed by a live update.
    public func save(group: QuotaGroup) throws {
        try write("saving group '\(group.name)'") { try $0.save(group: group) }
    }

    /// Groups changed by live updates, by name.
    public func groupOverrides() throws -> [String: QuotaGroup] {
        try read { try $0.groupOverrides() }
    }

    @discardableResult
    public func deleteGroupOverride(name: String) throws -> Bool {
        try write("deleting group override '\(name)'") { try $0.deleteGroupOverride(name: name) }
    }

    // MARK: - Maintenance

    /// Problems SQLite finds in the file (`integrity_check`) and rows whose
    /// foreign key points nowhere; empty when the database is sound.
    public func integrityProblems() throws -> [String] {
        try perform("checking integrity") {
            try database.read { db in
                let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
                let keys = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").map { row in
                    "row \(row[1] ?? "?") of \(row[0] ?? "?") refers to a missing \(row[2] ?? "?")"
                }
                return integrity + keys
            }
        }
    }

    /// Runs raw SQL, for tests that need to damage or age a database.
    func unsafeExecute(_ sql: String) throws {
        try perform("executing SQL") { try database.writeWithoutTransaction { try $0.execute(sql: sql) } }
    }

    /// One value of a PRAGMA or query on the writer's connection, for tests.
    func unsafeFetch(_ sql: String) throws -> String? {
        try perform("executing SQL") { try database.writeWithoutTransaction { try String.fetchOne($0, sql: sql) } }
    }

    private func perform<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw StoreError.explain(error, path: path, operation: operation)
        }
    }
}
