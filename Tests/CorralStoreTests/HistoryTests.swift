import CorralCore
import Foundation
import Testing

@testable import CorralStore

@Suite("Enforcement history")
struct HistoryTests {
    /// 30 records, alternating agents a, b, c, one second apart.
    static func filled() throws -> (CorralStore, [EnforcementRecord]) {
        let store = try CorralStore.inMemory()
        var stored: [EnforcementRecord] = []
        for index in 0..<30 {
            let agent = ["a", "b", "c"][index % 3]
            stored.append(try store.append(Sample.record(agent: agent, at: Sample.t0 + .seconds(Int64(index)), index: index)))
        }
        return (store, stored)
    }

    @Test func historyIsInIdOrderAndIdsIncrease() throws {
        let (store, stored) = try Self.filled()
        let ids = stored.map { $0.id! }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
        #expect(try store.history() == stored)
        #expect(try store.history(newestFirst: true) == stored.reversed())
        #expect(try store.read { try $0.lastHistoryID() } == ids.last)
    }

    @Test func historyFiltersByAgentSinceAfterIDAndLimit() throws {
        let (store, stored) = try Self.filled()
        #expect(try store.history(agent: "b") == stored.filter { $0.agent == "b" })
        #expect(try store.history(agent: "nobody").isEmpty)

        let since = Sample.t0 + .seconds(20)
        #expect(try store.history(since: since) == stored.filter { $0.at >= since })
        #expect(try store.history(agent: "a", since: since) == stored.filter { $0.agent == "a" && $0.at >= since })

        let cursor = stored[9].id!
        #expect(try store.history(afterID: cursor) == Array(stored[10...]))
        #expect(try store.history(afterID: stored.last!.id!).isEmpty)

        #expect(try store.history(limit: 5) == Array(stored[..<5]))
        #expect(try store.history(limit: 0).isEmpty)
        #expect(try store.history(limit: -1).isEmpty)
        #expect(try store.history(agent: "c", limit: 2, newestFirst: true) == Array(stored.filter { $0.agent == "c" }.reversed().prefix(2)))
    }

    @Test func pagingWithAfterIDVisitsEveryRecordOnce() throws {
        let (store, stored) = try Self.filled()
        var seen: [EnforcementRecord] = []
        var cursor: Int64? = nil
        while true {
            let page = try store.history(afterID: cursor, limit: 7)
            guard let last = page.last else { break }
            seen += page
            cursor = last.id
        }
        #expect(seen == stored)
    }

    @Test func prunedIdsAreNeverReused() throws {
        let (store, stored) = try Self.filled()
        #expect(try store.pruneHistory(before: Sample.t0 + .seconds(100)) == 30)
        #expect(try store.history().isEmpty)
        let next = try store.append(Sample.record())
        #expect(next.id! > stored.last!.id!)
    }

    @Test func concurrentAppendsGetUniqueIncreasingIds() async throws {
        let store = try CorralStore.inMemory()
        let tasks = 8
        let perTask = 250
        let idsByTask = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var ids: [Int64] = []
                    for index in 0..<perTask {
                        ids.append(try store.append(Sample.record(agent: "agent-\(task)", index: index)).id!)
                    }
                    return ids
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for ids in idsByTask { #expect(ids == ids.sorted() && Set(ids).count == ids.count) }
        let all = idsByTask.flatMap { $0 }
        #expect(Set(all) == Set(1...Int64(tasks * perTask)))
        let history = try store.history(limit: tasks * perTask + 1)
        #expect(history.map { $0.id! } == (1...Int64(tasks * perTask)).map { $0 })
        for task in 0..<tasks {
            #expect(try store.history(agent: "agent-\(task)").map(\.details) == (0..<perTask).map { Sample.record(index: $0).details })
        }
    }

    /// The engine's step: record the action, advance the ladder, change the
    /// agent, all or nothing.
    @Test func aFailedTransactionLeavesNothingBehind() throws {
        struct Abort: Error {}
        let store = try CorralStore.inMemory()
        let agent = Sample.agent()
        try store.save(agent)
        #expect(throws: Abort.self) {
            try store.write { tx in
                try tx.append(Sample.record())
                try tx.save(ladder: Sample.ladderMidEscalation().0)
                var suspended = agent
                suspended.state = .suspended
                try tx.save(suspended)
                #expect(try tx.reader.agent(id: agent.id)?.state == .suspended)
                throw Abort()
            }
        }
        #expect(try store.history().isEmpty)
        #expect(try store.ladders().isEmpty)
        #expect(try store.agent(id: agent.id) == agent)

        let record = try store.write { tx in
            let record = try tx.append(Sample.record())
            try tx.save(ladder: Sample.ladderMidEscalation().0)
            return record
        }
        // The rolled-back record never existed: no reader saw id 1, so it is free.
        #expect(record.id == 1)
        #expect(try store.history() == [record])
    }

    /// Prints figures; asserts nothing about time.
    @Test func appendingAndReadingTenThousandRecords() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try CorralStore(path: directory.database)
        defer { try? store.close() }
        let clock = ContinuousClock()
        let count = 10_000
        let agents = 20

        let appendEach = clock.measure {
            for index in 0..<count {
                _ = try? store.append(
                    Sample.record(agent: "agent-\(index % agents)", at: Sample.t0 + .milliseconds(Int64(index)), index: index))
            }
        }
        #expect(try store.read { try $0.lastHistoryID() } == Int64(count))

        let appendBatch = try clock.measure {
            try store.write { tx in
                for index in 0..<count {
                    try tx.append(
                        Sample.record(agent: "agent-\(index % agents)", at: Sample.t0 + .milliseconds(Int64(index)), index: index))
                }
            }
        }

        var perAgent: [EnforcementRecord] = []
        let readPerAgent = try clock.measure {
            for agent in 0..<agents {
                perAgent = try store.history(agent: "agent-\(agent)", limit: count)
            }
        }
        #expect(perAgent.count == 2 * count / agents)
        var page: [EnforcementRecord] = []
        let readLatest = try clock.measure { page = try store.history(agent: "agent-7", limit: 50, newestFirst: true) }
        #expect(page.count == 50)
        let readAll = try clock.measure { page = try store.history(limit: 2 * count) }
        #expect(page.count == 2 * count)
        let recent = Sample.t0 + .milliseconds(Int64(count - 100))
        let readSince = try clock.measure { page = try store.history(since: recent) }
        #expect(page.count == 200)

        func perRecord(_ duration: Duration, _ records: Int) -> String {
            let microseconds = Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
            return String(format: "%.1f µs/record", microseconds / Double(records))
        }
        print(
            """
            CorralStore figures (file-backed, WAL, synchronous=NORMAL):
              append \(count) records, one transaction each: \(appendEach) (\(perRecord(appendEach, count)))
              append \(count) records in one transaction:    \(appendBatch) (\(perRecord(appendBatch, count)))
              history of each of \(agents) agents (\(perAgent.count) records each): \(readPerAgent) (\(perRecord(readPerAgent, 2 * count)))
              latest 50 of one agent, newest first: \(readLatest)
              whole history (\(2 * count) records): \(readAll) (\(perRecord(readAll, 2 * count)))
              the last 200 by time (since:): \(readSince)
            """)
    }
}
