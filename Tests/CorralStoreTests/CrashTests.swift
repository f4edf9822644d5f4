import CorralCore
import Foundation
import Testing

@testable import CorralStore

#if canImport(Glibc)
    import Glibc
#endif

/// `kill -9` of a process in the middle of writing, then a restart: the
/// database opens, passes SQLite's integrity check, and holds every committed
/// transaction whole — no lost, partial or duplicated record, and the agent
/// and ladder written with each record agree with the history.
@Suite("kill -9 while writing")
struct CrashTests {
    static let agents = 4

    @Test func aKilledWriterLeavesAConsistentDatabase() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.database
        let progress = directory.path + "/progress"
        var rounds: [String] = []

        for round in 0..<4 {
            let killAfter = [300, 40, 700, 150][round] + Int.random(in: 0..<100)
            // The child is this test binary again (swift-testing's exit tests);
            // a thread of its own SIGKILLs it while it writes.
            await #expect(processExitsWith: .signal(SIGKILL)) {
                [database = database as String, progress = progress as String, killAfter = killAfter as Int] in
                try CrashWriter.run(database: database, progress: progress, killAfterMilliseconds: killAfter)
            }
            let committed = try Self.lastCommitted(progress)
            let total = try Self.verify(database: database, committed: committed)
            rounds.append("killed after \(killAfter) ms: \(committed) acknowledged, \(total) stored")
        }
        print("CorralStore crash test: " + rounds.joined(separator: "; "))
    }

    /// The last id the writer printed after its commit returned.
    static func lastCommitted(_ progress: String) throws -> Int64 {
        let text = (try? String(contentsOfFile: progress, encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        let complete = text.hasSuffix("\n") ? lines : lines.dropLast()
        return complete.last.flatMap { Int64($0.dropFirst("committed ".count)) } ?? 0
    }

    /// Checks the database the writer left; returns how many records it holds.
    static func verify(database: String, committed: Int64) throws -> Int64 {
        let store = try CorralStore(path: database)
        defer { try? store.close() }
        #expect(try store.integrityProblems() == [])
        return try store.read { reader in
            let history = try reader.history(limit: Int.max)
            let total = Int64(history.count)
            // Every acknowledged commit is there; at most the one transaction
            // in flight when the kill came committed beyond it.
            #expect(total >= committed)
            #expect(total <= committed + CrashWriter.largestTransaction)
            // Ids 1…total, each record whole and exactly as written.
            #expect(history.map { $0.id! } == (0..<total).map { $0 + 1 })
            for record in history where record != CrashWriter.record(record.id!, id: true) {
                Issue.record("record \(record.id!) is not what was written: \(record)")
            }
            // The agent and the ladder saved in each record's transaction agree with it.
            for index in 0..<agents {
                let id = "agent-\(index)"
                let records = history.filter { $0.agent == id }
                let agent = try #require(try reader.agent(id: id))
                #expect((agent.pid ?? 0) == Int32(records.count))
                #expect(agent.endReason == records.last.map { "last record \($0.id!)" })
                #expect(try reader.ladder(agent: id)?.usage[.memory] == records.last.map { Double($0.id!) })
            }
            return total
        }
    }
}

/// The child process of the crash test: writes the engine's kind of
/// transaction (records, their agents, their ladders) in a loop until a
/// thread of its own sends it SIGKILL.
enum CrashWriter {
    static let largestTransaction: Int64 = 25

    static func record(_ id: Int64, id assigned: Bool = false) -> EnforcementRecord {
        EnforcementRecord(
            id: assigned ? id : nil,
            violation: Violation(
                agent: "agent-\(id % Int64(CrashTests.agents))", resource: .memory, kind: .hard, current: Double(id),
                limit: 500_000_000),
            action: .throttle, at: Sample.t0 + .milliseconds(id), succeeded: id % 5 != 0, error: id % 5 == 0 ? "EBUSY" : nil,
            details: "record \(id): " + String(repeating: "memory.high 500000000 → 425000000; ", count: 4))
    }

    static func run(database: String, progress: String, killAfterMilliseconds: Int) throws {
        let store = try CorralStore(path: database)
        let output = open(progress, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw StoreError(code: .io, path: progress, operation: "opening", message: "cannot open \(progress)") }

        var last = try store.read { try $0.lastHistoryID() } ?? 0
        var agents: [String: AgentRecord] = [:]
        var ladders: [String: AgentLadder] = [:]
        for index in 0..<CrashTests.agents {
            let id = "agent-\(index)"
            var fresh = Sample.agent(id)
            fresh.pid = nil
            agents[id] = try store.agent(id: id) ?? fresh
            ladders[id] = try store.ladder(agent: id) ?? AgentLadder(agent: id)
        }
        try store.write { tx in
            for agent in agents.values { try tx.save(agent) }
        }

        Thread.detachNewThread {
            usleep(UInt32(killAfterMilliseconds) * 1000)
            kill(getpid(), SIGKILL)
        }
        var transaction = 0
        while true {
            transaction += 1
            let size = transaction % 7 == 0 ? Int64(largestTransaction) : 1
            try store.write { tx in
                for id in (last + 1)...(last + size) {
                    let stored = try tx.append(record(id))
                    precondition(stored.id == id, "expected id \(id), got \(stored.id ?? -1)")
                    let agentID = stored.agent
                    agents[agentID]!.pid = (agents[agentID]!.pid ?? 0) + 1
                    agents[agentID]!.endReason = "last record \(id)"
                    ladders[agentID]!.observe([stored.violation], usage: [.memory: Double(id)], at: stored.at)
                    try tx.save(agents[agentID]!)
                    try tx.save(ladder: ladders[agentID]!)
                }
            }
            last += size
            let line = "committed \(last)\n"
            let written = line.withCString { write(output, $0, strlen($0)) }
            precondition(written == line.utf8.count, "cannot write progress")
        }
    }
}
