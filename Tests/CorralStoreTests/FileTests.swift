import CorralCore
import Foundation
import Testing

@testable import CorralStore

@Suite("The database file")
struct FileTests {
    @Test func aNewFileIsMigratedToWALWithForeignKeys() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database)
        defer { try? store.close() }
        #expect(try store.unsafeFetch("PRAGMA journal_mode") == "wal")
        #expect(try store.unsafeFetch("PRAGMA synchronous") == "1")  // NORMAL
        #expect(try store.unsafeFetch("PRAGMA foreign_keys") == "1")
        #expect(try store.unsafeFetch("PRAGMA user_version") == String(CorralStore.schemaVersion))
        #expect(try store.unsafeFetch("PRAGMA application_id") == String(Schema.applicationID))
        #expect(try store.unsafeFetch("SELECT group_concat(identifier) FROM grdb_migrations") == "v1,v2,v3,v4,v5,v6")
        #expect(try store.integrityProblems().isEmpty)
        #expect(FileManager.default.fileExists(atPath: directory.database + "-lock"))
    }

    @Test func anEmptyFileIsANewDatabase() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(FileManager.default.createFile(atPath: directory.database, contents: Data()))
        let store = try CorralStore(path: directory.database)
        try store.save(Sample.agent())
        #expect(try store.agents().count == 1)
        try store.close()
    }

    @Test func everythingIsThereAfterReopening() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ladder, _, _) = Sample.ladderMidEscalation()
        var records: [EnforcementRecord] = []
        do {
            let store = try CorralStore(path: directory.database)
            try store.save(Sample.agent())
            try store.save(Sample.agent("b", state: .exited, createdAt: Sample.t0 + .seconds(1)))
            try store.save(ladder: ladder)
            try store.save(group: Sample.groupWithEscalation)
            for index in 0..<10 { records.append(try store.append(Sample.record(index: index))) }
            try store.close()
        }
        do {
            // Not closed: the WAL is left behind, as after a crash.
            let store = try CorralStore(path: directory.database)
            #expect(try store.agents() == [Sample.agent(), Sample.agent("b", state: .exited, createdAt: Sample.t0 + .seconds(1))])
            #expect(try store.ladders() == [ladder.agent: ladder])
            #expect(try store.groupOverrides() == [Sample.groupWithEscalation.name: Sample.groupWithEscalation])
            #expect(try store.history() == records)
            records.append(try store.append(Sample.record(index: 10)))
        }
        let store = try CorralStore(path: directory.database)
        defer { try? store.close() }
        #expect(try store.history() == records)
        #expect(try store.unsafeFetch("SELECT count(*) FROM grdb_migrations") == "6")
        #expect(try store.integrityProblems().isEmpty)
    }

    @Test func aSecondStoreOnTheSameFileIsRefusedNamingTheHolder() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let first = try CorralStore(path: directory.database)
        let error = #expect(throws: StoreError.self) { try CorralStore(path: directory.database) }
        #expect(error?.code == .locked)
        #expect(error?.message.contains(directory.database) == true)
        #expect(error?.message.contains("in use by another corral serve (pid \(getpid()))") == true)
        #expect(error?.fix != nil)

        try first.close()
        let second = try CorralStore(path: directory.database)
        try second.close()
    }

    /// A lock held for a moment (a child forked by another thread of the
    /// holder's process shares it until it execs) is waited for, not refused.
    @Test func aLockHeldForAMomentIsWaitedFor() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fd = open(directory.database + "-lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        try #require(flock(fd, LOCK_EX | LOCK_NB) == 0)
        let releaser = Thread {
            usleep(100_000)
            close(fd)
        }
        releaser.start()
        let started = ContinuousClock.now
        let store = try CorralStore(path: directory.database)
        try store.close()
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(90))
        #expect(waited < .seconds(5))
    }

    @Test func aClosedStoreSaysSo() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database)
        try store.close()
        let error = #expect(throws: StoreError.self) { try store.agents() }
        #expect(error?.code == .closed)
        #expect(error?.message.contains(directory.database) == true)
    }

    @Test func aNewerSchemaIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database)
        try store.save(Sample.agent())
        try store.unsafeExecute("PRAGMA user_version = 7")
        try store.close()

        let error = #expect(throws: StoreError.self) { try CorralStore(path: directory.database) }
        #expect(error?.code == .newerSchema)
        #expect(
            error?.message
                == "state database \(directory.database) has schema version 7, newer than this corral supports (\(CorralStore.schemaVersion)): it was written by a newer Corral"
        )
        #expect(error?.fix?.contains("newer corral") == true)
        // Refused, not damaged: still readable by the binary that wrote it.
        let header = try #require(FileManager.default.contents(atPath: directory.database))
        #expect(header.prefix(16) == Data("SQLite format 3\0".utf8))
    }

    @Test(arguments: [
        Data(repeating: 0x5A, count: 8192),
        Data("agents: []\nthis is a YAML file, not a database\n".utf8),
        Data("SQLite format 3\0".utf8) + Data(repeating: 0xFF, count: 4000),
    ])
    func aFileThatIsNoDatabaseGivesAClearError(content: Data) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(FileManager.default.createFile(atPath: directory.database, contents: content))
        let error = #expect(throws: StoreError.self) { try CorralStore(path: directory.database) }
        #expect(error?.code == .notADatabase || error?.code == .corrupt)
        #expect(error?.description.contains(directory.database) == true)
        #expect(error?.fix?.contains("move") == true)
        #expect(FileManager.default.contents(atPath: directory.database) == content)
        // The lock is released: a fixed file opens.
        try FileManager.default.removeItem(atPath: directory.database)
        try CorralStore(path: directory.database).close()
    }

    /// Pages after the header overwritten: SQLite reports damage at open, on
    /// a read or in the integrity check — never a crash, never silence.
    @Test func aDamagedDatabaseIsReportedNotCrashedOn() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database)
        for index in 0..<200 { try store.save(Sample.agent("agent-\(index)")) }
        for index in 0..<200 { try store.append(Sample.record(index: index)) }
        try store.close()

        var bytes = try #require(FileManager.default.contents(atPath: directory.database))
        #expect(bytes.count > 16384)
        for offset in stride(from: 4096, to: bytes.count, by: 7) { bytes[offset] ^= 0xA5 }
        try bytes.write(to: URL(fileURLWithPath: directory.database))

        do {
            let damaged = try CorralStore(path: directory.database)
            defer { try? damaged.close() }
            var problems = try damaged.integrityProblems()
            do {
                _ = try damaged.agents()
                _ = try damaged.history(limit: 10_000)
            } catch let error as StoreError {
                #expect(error.code == .corrupt || error.code == .notADatabase)
                problems.append(error.description)
            }
            #expect(!problems.isEmpty)
        } catch let error as StoreError {
            #expect(error.code == .corrupt || error.code == .notADatabase)
            #expect(error.description.contains(directory.database))
        }
    }

    /// Another program's SQLite file (here: legacy journal mode, a foreign
    /// application id) is refused without switching it to WAL or writing to it.
    @Test func anotherProgramsDatabaseIsRefusedAndLeftAlone() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try CorralStore(path: directory.database).close()
        var bytes = try #require(FileManager.default.contents(atPath: directory.database))
        bytes[18] = 1  // file format write version: legacy rollback journal
        bytes[19] = 1  // read version
        bytes.replaceSubrange(68..<72, with: [0x12, 0x34, 0x56, 0x78])  // application_id
        try bytes.write(to: URL(fileURLWithPath: directory.database))

        let error = #expect(throws: StoreError.self) { try CorralStore(path: directory.database) }
        #expect(error?.code == .notCorral, "\(error.map(String.init(describing:)) ?? "no error")")
        #expect(error?.message.contains("application id 12345678") == true)
        #expect(FileManager.default.contents(atPath: directory.database) == bytes)
    }

    /// A full disk (here: SQLite's page limit) fails the transaction whole,
    /// names the directory, and the store goes on once there is room.
    @Test func aFullDiskFailsTheTransactionAndIsNamed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database)
        defer { try? store.close() }
        try store.save(Sample.agent())
        let pages = try #require(try store.unsafeFetch("PRAGMA page_count").flatMap { Int($0) })
        try store.unsafeExecute("PRAGMA max_page_count = \(pages + 2)")

        var appended = 0
        let error = #expect(throws: StoreError.self) {
            while true {
                try store.write { tx in
                    for index in 0..<10 { try tx.append(Sample.record(index: appended + index)) }
                }
                appended += 10
            }
        }
        #expect(error?.code == .diskFull)
        #expect(error?.message.contains("the disk holding \(directory.path) is full") == true)
        #expect(error?.fix != nil)
        #expect(try store.history(limit: 100_000).count == appended)

        try store.unsafeExecute("PRAGMA max_page_count = 1073741823")
        try store.append(Sample.record())
        #expect(try store.history(limit: 100_000).count == appended + 1)
        #expect(try store.integrityProblems().isEmpty)
    }

    @Test func aMissingDirectoryIsNamed() throws {
        let path = "/nonexistent-corral-\(UUID().uuidString)/state.db"
        let error = #expect(throws: StoreError.self) { try CorralStore(path: path) }
        #expect(error?.code == .cannotOpen)
        #expect(error?.message.contains(path) == true)
        #expect(error?.fix?.contains("/nonexistent-corral-") == true)
    }
}

@Suite("WAL checkpoints off the commit path")
struct CheckpointTests {
    func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
    }

    /// Commits only append to the WAL, past SQLite's usual 1,000-page
    /// checkpoint; the store's checkpoint thread copies it back.
    @Test func commitsNeverCheckpointTheCheckpointThreadDoes() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database, checkpointInterval: .seconds(3600))
        defer { try? store.close() }
        let before = size(directory.database)
        #expect(try store.unsafeFetch("PRAGMA wal_autocheckpoint") == "\(Checkpointer.backstopPages)")
        for index in 0..<600 {
            _ = try store.write { try $0.append(Sample.record(index: index)) }
        }
        // Each transaction writes two or three pages to the WAL: past SQLite's
        // default 1,000 (below the store's backstop), yet no page reached the
        // database file.
        #expect(size(directory.database + "-wal") > 1000 * 4096)
        #expect(size(directory.database) == before)

        let result = store.checkpointNow()
        #expect(result.error == nil)
        #expect(result.walFrames > 1000)
        #expect(result.checkpointed == result.walFrames)
        #expect(size(directory.database) > before)
        #expect(try store.history(limit: 10_000).count == 600)
    }

    /// Left alone, the thread checkpoints every interval; closing stops it
    /// and leaves no WAL behind.
    @Test func theThreadCheckpointsByItselfAndStopsAtClose() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database, checkpointInterval: .milliseconds(20))
        let before = size(directory.database)
        for index in 0..<200 {
            _ = try store.write { try $0.append(Sample.record(index: index)) }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while size(directory.database) == before, ContinuousClock.now < deadline { usleep(5000) }
        #expect(size(directory.database) > before)
        try store.close()
        #expect(!FileManager.default.fileExists(atPath: directory.database + "-wal"))
        let reopened = try CorralStore(path: directory.database)
        defer { try? reopened.close() }
        #expect(try reopened.history(limit: 10_000).count == 200)
    }
}
