import CorralCore
import Foundation
import Testing

@testable import CorralStore

/// The analytics tables in SQLite: usage minutes (one row per agent,
/// resource and minute; replaced when written again; pruned by retention)
/// and recommendations (replaced per agent, never another's), and what
/// removing an agent takes with it.
@Suite("Analytics in the store")
struct AnalyticsStoreTests {
    static func minute(_ agent: String, _ resource: Resource, _ index: Int, mean: Double = 100) -> UsageMinute {
        UsageMinute(
            agent: agent, resource: resource, minute: Sample.t0 + .seconds(Int64(index) * 60), mean: mean, peak: mean * 1.5, samples: 60)
    }

    static func recommendation(_ agent: String, _ resource: Resource, _ kind: Recommendation.Kind) -> Recommendation {
        Recommendation(
            agent: agent, resource: resource, kind: kind, current: QuotaGroup.standard.limits[resource]!,
            suggested: kind == .decreaseQuota ? ResourceLimit(soft: 8_388_608, hard: 20_971_520, action: .throttle) : nil,
            group: kind == .changeGroup ? "lightweight_agent" : nil, target: 9_000_000, pattern: .steady, confidence: 0.83,
            rationale: "steady at 4% of its hard limit", at: Sample.t0)
    }

    @Test func minutesAreInsertedReplacedAndPrunedByRetention() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var store: CorralStore? = try CorralStore(path: directory.database)
        try store!.save(Sample.agent("a"))
        try store!.save(Sample.agent("b"))
        try store!.write { transaction in
            try transaction.append(minutes: (0..<10).map { Self.minute("a", .memory, $0) } + (0..<10).map { Self.minute("a", .cpu, $0) })
            try transaction.append(minutes: (0..<10).map { Self.minute("b", .memory, $0) })
        }
        let all = try store!.usageMinutes(agent: "a", since: Sample.t0)
        #expect(all.count == 20)
        #expect(all.map(\.resource) == Array(repeating: .cpu, count: 10) + Array(repeating: .memory, count: 10), "by resource, then minute")
        #expect(try store!.usageMinutes(agent: "a", resource: .memory, since: Sample.t0) == (0..<10).map { Self.minute("a", .memory, $0) })
        #expect(try store!.usageMinutes(agent: "a", resource: .memory, since: Sample.t0 + .seconds(420)).count == 3)

        // A minute written again replaces its row (a restart re-folding the same minute).
        try store!.write { try $0.append(minutes: [Self.minute("a", .memory, 3, mean: 999)]) }
        let memory = try store!.usageMinutes(agent: "a", resource: .memory, since: Sample.t0)
        #expect(memory.count == 10)
        #expect(memory[3] == Self.minute("a", .memory, 3, mean: 999))

        // Minutes of an agent not in the store are dropped.
        try store!.write { try $0.append(minutes: [Self.minute("ghost", .memory, 0)]) }
        #expect(try store!.usageMinutes(agent: "ghost", since: Sample.t0).isEmpty)

        // Retention: everything before minute 6 goes, of every agent, in the same transaction as new minutes.
        let pruned = try store!.write { transaction -> Int in
            try transaction.append(minutes: [Self.minute("b", .memory, 10)])
            return try transaction.pruneUsage(before: Sample.t0 + .seconds(360))
        }
        #expect(pruned == 6 * 3)
        #expect(try store!.usageMinutes(agent: "a", since: Sample.t0).count == 8)
        #expect(
            try store!.usageMinutes(agent: "b", since: Sample.t0).map(\.minute) == (6...10).map { Sample.t0 + .seconds(Int64($0) * 60) })

        // On disk: the same after reopening.
        try store!.close()
        store = nil
        let reopened = try CorralStore(path: directory.database)
        defer { try? reopened.close() }
        #expect(try reopened.usageMinutes(agent: "a", since: Sample.t0).count == 8)
        #expect(try reopened.usageMinutes(agent: "a", resource: .memory, since: Sample.t0).first == Self.minute("a", .memory, 6))
    }

    @Test func storingOneAgentsRecommendationsNeverTouchesAnothers() throws {
        let store = try CorralStore.inMemory()
        try store.save(Sample.agent("a"))
        try store.save(Sample.agent("b"))
        let first = [Self.recommendation("a", .memory, .decreaseQuota), Self.recommendation("a", .memory, .changeGroup)]
        let other = [Self.recommendation("b", .cpu, .optimizeCode)]
        #expect(try store.write { try $0.replaceRecommendations(agent: "a", with: first) })
        #expect(try store.write { try $0.replaceRecommendations(agent: "b", with: other) })
        #expect(try store.recommendations(agent: "a") == first, "every field round-trips")
        #expect(try store.recommendations() == first + other, "by agent, in the order stored")

        // A's next run replaces a's only.
        let second = [Self.recommendation("a", .processes, .optimizeCode)]
        try store.write { try $0.replaceRecommendations(agent: "a", with: second) }
        #expect(try store.recommendations(agent: "a") == second)
        #expect(try store.recommendations(agent: "b") == other)
        // A run that finds nothing for a clears a's, still not b's.
        try store.write { try $0.replaceRecommendations(agent: "a", with: []) }
        #expect(try store.recommendations() == other)

        // An agent not in the store (removed while its analysis ran) gets none.
        #expect(
            try !store.write { try $0.replaceRecommendations(agent: "ghost", with: [Self.recommendation("ghost", .memory, .optimizeCode)]) }
        )
        #expect(try store.recommendations(agent: "ghost").isEmpty)
    }

    @Test func removingAnAgentRemovesItsRecommendationsAndMinutesNotItsHistory() throws {
        let store = try CorralStore.inMemory()
        for id in ["a", "b"] {
            try store.save(Sample.agent(id))
            try store.write { transaction in
                try transaction.replaceRecommendations(agent: id, with: [Self.recommendation(id, .memory, .decreaseQuota)])
                try transaction.append(minutes: [Self.minute(id, .memory, 0), Self.minute(id, .memory, 1)])
            }
            try store.append(Sample.record(agent: id))
        }
        #expect(try store.delete(agent: "a"))
        #expect(try store.recommendations().map(\.agent) == ["b"])
        #expect(try store.usageMinutes(agent: "a", since: Sample.t0).isEmpty)
        #expect(try store.usageMinutes(agent: "b", since: Sample.t0).count == 2)
        #expect(try store.history(agent: "a").count == 1, "the enforcement history stays")
        #expect(try store.integrityProblems().isEmpty)
    }
}
