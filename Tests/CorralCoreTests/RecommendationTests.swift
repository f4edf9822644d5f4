import CorralCore
import CorralTestSupport
import Foundation
import Testing

@Suite("Recommendations: the seed's rules and percentile sizing")
struct RecommendationTests {
    static let now = Timestamp(milliseconds: 1_800_000_000_000)
    static let groups = QuotaGroup.seedGroups
    static let mb = 1_000_000.0

    static func memory(_ values: [Double], events: Int = 0) -> ResourceUsage {
        ResourceUsage(resource: .memory, values: values, interval: .seconds(1), hardLimitEvents: events)
    }

    static func recommend(_ group: QuotaGroup, _ usage: [ResourceUsage]) -> [Recommendation] {
        Recommender.recommend(agent: "a1", group: group.name, limits: group.limits, usage: usage, groups: groups, at: now)
    }

    @Test func decayingHistogramPercentiles() {
        var uniform = DecayingHistogram(first: 1)
        for value in 1...100 { uniform.add(Double(value), weight: 1) }
        #expect(abs(uniform.percentile(0.9) - 90) / 90 < 0.06, "bucket ratio 1.05: within 5%")
        #expect(DecayingHistogram().percentile(0.9) == 0)
        // Newer samples weigh more: an hour at 100 then an hour at 10, half-life 10 min.
        let old = [Double](repeating: 100, count: 3600) + [Double](repeating: 10, count: 3600)
        let decayed = DecayingHistogram.of(old, interval: .seconds(1), halfLife: .seconds(600), first: 1)
        #expect(decayed.percentile(0.9) < 11)
        let flat = DecayingHistogram.of(old, interval: .seconds(1), halfLife: .seconds(1_000_000), first: 1)
        #expect(flat.percentile(0.9) > 95)
    }

    @Test func aGrowingAgentGetsAnIncrease() {
        var random = SeededGenerator(seed: 1)
        let values = (0..<3600).map { 150 * Self.mb + Double($0) / 3600 * 150 * Self.mb + 3 * Self.mb * random.gaussian() }
        let found = Self.recommend(QuotaGroup.standard, [Self.memory(values)])
        let increase = found.first { $0.kind == .increaseQuota }
        #expect(increase?.pattern == .growing)
        #expect((increase?.suggested?.soft ?? 0) > 200 * Self.mb, "above the current soft limit")
        #expect((increase?.suggested?.hard ?? 0) >= (increase?.suggested?.soft ?? 1))
        #expect(increase?.rationale.contains("growing") == true)
        #expect(!found.contains { $0.kind == .decreaseQuota })
    }

    @Test func anIdleAgentGetsADecreaseAndASmallerGroup() {
        var random = SeededGenerator(seed: 2)
        let values = (0..<3600).map { _ in 20 * Self.mb + 0.5 * Self.mb * random.gaussian() }
        let found = Self.recommend(QuotaGroup.standard, [Self.memory(values)])
        let decrease = found.first { $0.kind == .decreaseQuota }
        let soft = decrease?.suggested?.soft ?? 0
        #expect(soft > 20 * Self.mb && soft < 30 * Self.mb, "P90 + 15%, rounded up to a MiB: \(soft)")
        #expect(soft.truncatingRemainder(dividingBy: 1_048_576) == 0)
        #expect(decrease?.suggested?.hard == (soft * 2.5 / 1_048_576).rounded(.up) * 1_048_576, "the group's hard/soft ratio kept")
        #expect(found.first { $0.kind == .changeGroup }?.group == "lightweight_agent")
    }

    @Test func aBurstyAgentIsToldToOptimize() {
        var random = SeededGenerator(seed: 3)
        let values = SeriesGenerator.series(.bursty, count: 3600, using: &random).map { $0 * 0.2 * Self.mb }
        let found = Self.recommend(QuotaGroup.heavyComputation, [Self.memory(values)])
        #expect(found.contains { $0.kind == .optimizeCode && $0.pattern == .bursty })
    }

    @Test func hardLimitEventsBumpTheQuota() {
        var random = SeededGenerator(seed: 4)
        let values = (0..<3600).map { _ in 60 * Self.mb + 1 * Self.mb * random.gaussian() }
        let plain = Self.recommend(QuotaGroup.lightweight, [Self.memory(values)])
        #expect(!plain.contains { $0.kind == .increaseQuota })
        let killed = Self.recommend(QuotaGroup.lightweight, [Self.memory(values, events: 2)])
        let increase = killed.first { $0.kind == .increaseQuota }
        #expect((increase?.suggested?.soft ?? 0) >= 120 * Self.mb, "at least 120% of the 100 MB hard limit")
        #expect(increase?.rationale.contains("stopped it at its hard limit 2× in the window (memory.max hits and OOM kills)") == true)
        #expect(increase?.confidence == 0.9)
    }

    /// Only OOM kills, memory.max hits and pids.max refusals bump a quota:
    /// CPU throttling is cpu.max working, not a quota too small.
    @Test func onlyMemoryAndProcessEventsBump() {
        var random = SeededGenerator(seed: 6)
        // Steady CPU at 8% against the lightweight 5% / 10%, throttled 500 times: no increase.
        let cpu = (0..<3600).map { _ in 8 + 0.2 * random.gaussian() }
        let throttled = ResourceUsage(resource: .cpu, values: cpu, interval: .seconds(1), hardLimitEvents: 500)
        let found = Self.recommend(QuotaGroup.lightweight, [throttled])
        #expect(!found.contains { $0.kind == .increaseQuota }, "\(found.map(\.rationale))")
        // Processes at 12 of 20, with 3 forks refused at pids.max: 120% of the hard limit.
        let processes = (0..<3600).map { _ in 12 + (random.gaussian() > 1.5 ? 1.0 : 0) }
        let refused = ResourceUsage(resource: .processes, values: processes, interval: .seconds(1), hardLimitEvents: 3)
        let increase = Self.recommend(QuotaGroup.lightweight, [refused]).first { $0.kind == .increaseQuota }
        #expect((increase?.suggested?.soft ?? 0) >= 24, "at least 120% of the hard limit of 20")
        #expect(increase?.rationale.contains("3× in the window (forks refused at pids.max)") == true)
    }

    /// change_group carries the pattern of the resource that fits the new
    /// group most tightly, and a confidence from the classifications.
    @Test func changeGroupCarriesThePatternAndAConfidence() {
        var random = SeededGenerator(seed: 7)
        // Memory cycling 16–24 MB every 10 s: periodic, so no decrease; it fits lightweight (50 / 100 MB).
        let values = (0..<3600).map {
            20 * Self.mb + 4 * Self.mb * sin(2 * Double.pi * Double($0) / 10) + 0.2 * Self.mb * random.gaussian()
        }
        let analysis = PatternClassifier.analyze(values, interval: .seconds(1))
        #expect(analysis.pattern == .periodic)
        let change = Self.recommend(QuotaGroup.standard, [Self.memory(values)]).first { $0.kind == .changeGroup }
        #expect(change?.group == "lightweight_agent")
        #expect(change?.resource == .memory)
        #expect(change?.pattern == .periodic)
        // The classification's confidence, scaled by the room left: the target (P99 + 15% ≈ 28 MB) fills ~28% of 100 MB.
        let confidence = change?.confidence ?? 0
        #expect(confidence > 0 && confidence <= analysis.confidence)
        #expect(confidence == min(1, analysis.confidence * min(1, 2 * (1 - (change?.target ?? 0) / 100_000_000))))
        #expect(change?.rationale.contains("memory is the tightest at") == true)
    }

    @Test func nothingWithoutDataOrLimit() {
        #expect(Self.recommend(QuotaGroup.standard, [Self.memory([1, 2, 3])]).isEmpty)
        let files = ResourceUsage(resource: .files, values: [Double](repeating: 5, count: 100), interval: .seconds(1))
        #expect(Self.recommend(QuotaGroup.standard, [files]).isEmpty)
    }

    @Test func recommendationsRoundTripAsJSON() throws {
        var random = SeededGenerator(seed: 5)
        let values = (0..<600).map { _ in 20 * Self.mb + 0.5 * Self.mb * random.gaussian() }
        for recommendation in Self.recommend(QuotaGroup.standard, [Self.memory(values)]) {
            let data = try JSONEncoder().encode(recommendation)
            #expect(try JSONDecoder().decode(Recommendation.self, from: data) == recommendation)
        }
    }
}

@Suite("Recommendations never suggest absurdly small limits")
struct RecommendationFloorTests {
    @Test func floorsPerUnit() {
        let idle = [Double](repeating: 0, count: 600)
        let usage = [Resource.memory, .cpu, .processes].map { ResourceUsage(resource: $0, values: idle, interval: .seconds(1)) }
        let found = Recommender.recommend(
            agent: "a", group: "standard_agent", limits: QuotaGroup.standard.limits, usage: usage, groups: QuotaGroup.seedGroups,
            at: Timestamp(milliseconds: 0))
        let soft = Dictionary(found.compactMap { r in r.suggested.map { (r.resource, $0.soft) } }) { a, _ in a }
        #expect(soft[.memory] == Double(8 * 1_048_576))
        #expect(soft[.cpu] == 1)
        #expect(soft[.processes] == 4)
        // The hard limit follows the floored soft one (the group's ratio): never below it.
        for recommendation in found {
            guard let suggested = recommendation.suggested else { continue }
            #expect(suggested.hard >= suggested.soft, "\(recommendation.resource): \(suggested)")
            #expect(suggested.problems(for: recommendation.resource).isEmpty, "\(suggested.problems(for: recommendation.resource))")
        }
        #expect(found.first { $0.resource == .memory }?.suggested?.hard == Double(20 * 1_048_576), "8 MiB × 2.5")
    }
}
