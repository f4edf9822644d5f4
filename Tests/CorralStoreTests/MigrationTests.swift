import CorralCore
import Foundation
import Testing

@testable import CorralStore

/// Databases written by earlier releases opened by this one: schema version 4 (commit
/// 78f64b3) and version 5, the previous release (commit 10e07c6), each made by
/// Fixtures/schema-vN/make-fixture.swift there. Migrated in place to the current schema, every
/// row still there and readable, the new columns and tables at their defaults.
@Suite("A database of an earlier release")
struct MigrationTests {
    static func fixture(_ version: Int) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/schema-v\(version)/corral.db").path
    }
    static let t0 = Timestamp(iso8601: "2026-11-29T09:50:00.123Z")!

    @Test(arguments: [4, 5])
    func isMigratedWithEveryRowKept(version: Int) throws {
        let original = try #require(FileManager.default.contents(atPath: Self.fixture(version)), "the fixture \(Self.fixture(version))")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try original.write(to: URL(fileURLWithPath: directory.database))

        let store = try CorralStore(path: directory.database)
        defer { try? store.close() }
        #expect(try store.unsafeFetch("PRAGMA user_version") == String(CorralStore.schemaVersion))
        #expect(try store.unsafeFetch("SELECT group_concat(identifier) FROM grdb_migrations") == "v1,v2,v3,v4,v5,v6")
        #expect(try store.settledIntent() == 0, "no intent settled yet")
        #expect(try store.integrityProblems().isEmpty)

        let agents = try store.agents().sorted { $0.id < $1.id }
        #expect(agents.map(\.id) == ["batch-7", "crawler-1"])
        let crawler = try #require(agents.last)
        #expect(crawler.state == .running && crawler.pid == 4242)
        #expect(crawler.command == ["/usr/bin/python3", "-m", "crawler", "--url=https://example.org/ä"])
        #expect(crawler.limits[.memory]?.hard == 64_000_000)
        #expect(crawler.priority == .standard && !crawler.priorityIsOwn, "the new columns at their defaults")
        #expect(agents.first?.state == .terminated && agents.first?.endReason == "terminated by the ladder")

        let history = try store.history(agent: nil, since: nil, afterID: nil, limit: 10).sorted { ($0.id ?? 0) < ($1.id ?? 0) }
        #expect(history.compactMap(\.id) == [1, 2, 3])
        #expect(history.map(\.action) == [.warn, .throttle, .terminate])
        #expect(history.map(\.details) == (0..<3).map { "made by the v\(version) release (#\($0))" })

        let ladder = try #require(try store.ladder(agent: "crawler-1"))
        #expect(ladder.agent == "crawler-1")
        #expect(try store.usageMinutes(agent: "crawler-1", since: Self.t0).count == 3)
        #expect(try store.denials(agent: "crawler-1").map(\.syscall) == ["ptrace"])
        #expect(try store.groupOverrides()["standard_agent"]?.description == "changed live under v\(version)")

        // Writable as a current database.
        var updated = crawler
        updated.priority = Priority(rawValue: 8)!
        updated.priorityIsOwn = true
        try store.save(updated)
        #expect(try store.agent(id: "crawler-1")?.priority.rawValue == 8)
        // The fixture itself is untouched (the test worked on a copy).
        #expect(FileManager.default.contents(atPath: Self.fixture(version)) == original)
    }
}
