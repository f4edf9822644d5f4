import CorralCore
import Foundation
import Testing

@Suite("Degradation levels, strategies and staged recovery")
struct DegradationTests {
    @Test(arguments: [
        (0.0, DegradationLevel.none), (0.9, .none), (0.91, .minimal), (1.0, .minimal), (1.01, .moderate), (1.2, .moderate),
        (1.21, .aggressive), (1.5, .aggressive), (1.51, .emergency), (40.0, .emergency),
    ])
    func levelFromTheUsageRatio(ratio: Double, level: DegradationLevel) {
        #expect(DegradationLevel(usage: ratio * 100, limit: 100) == level)
    }

    @Test func levelIsTotal() {
        #expect(DegradationLevel(usage: 5, limit: 0) == .none)
        #expect(DegradationLevel(usage: 5, limit: -1) == .none)
        #expect(DegradationLevel(usage: .nan, limit: 10) == .none)
        #expect(DegradationLevel(usage: .infinity, limit: 10) == .emergency)
        #expect(DegradationLevel(usage: 5, limit: .infinity) == .none)
        #expect(DegradationLevel(usage: -3, limit: 10) == .none)
        // No strategies at .none, for every resource.
        for resource in Resource.allCases { #expect(DegradationStrategy.plan(for: resource, at: .none).isEmpty) }
    }

    @Test func theSeedsTablesForMemoryAndCPU() {
        #expect(DegradationStrategy.plan(for: .memory, at: .minimal) == [.cacheAggressively])
        #expect(DegradationStrategy.plan(for: .memory, at: .moderate) == [.cacheAggressively, .batchOperations])
        #expect(DegradationStrategy.plan(for: .memory, at: .aggressive) == [.cacheAggressively, .batchOperations, .reducePrecision])
        #expect(
            DegradationStrategy.plan(for: .memory, at: .emergency) == [
                .cacheAggressively, .batchOperations, .reducePrecision, .dropNonEssential,
            ])
        #expect(DegradationStrategy.plan(for: .cpu, at: .minimal) == [.batchOperations])
        #expect(DegradationStrategy.plan(for: .cpu, at: .moderate) == [.batchOperations, .useFallbackAlgorithm])
        #expect(
            DegradationStrategy.plan(for: .cpu, at: .emergency) == [
                .batchOperations, .useFallbackAlgorithm, .reducePrecision, .dropNonEssential,
            ])
        // Every resource has four distinct strategies, one per level.
        for resource in Resource.allCases {
            let ladder = DegradationStrategy.ladder(for: resource)
            #expect(ladder.count == 4 && Set(ladder).count == 4, "\(resource)")
        }
    }

    @Test func theSeedsParameters() throws {
        #expect(DegradationStrategy.reducePrecision.parameters["precision_reduction"] == .number(0.5))
        #expect(DegradationStrategy.cacheAggressively.parameters["cache_size_increase"] == .number(2))
        #expect(DegradationStrategy.cacheAggressively.parameters["cache_duration_increase"] == .number(5))
        #expect(DegradationStrategy.batchOperations.parameters["batch_size_increase"] == .number(3))
        #expect(DegradationStrategy.batchOperations.parameters["batch_delay_ms"] == .number(1000))
        #expect(
            DegradationStrategy.dropNonEssential.parameters["operations_to_drop"]?.strings == [
                "detailed_logging", "metrics_collection", "optional_validations",
            ])
        // Parameters survive JSON both ways.
        let data = try JSONEncoder().encode(StrategyInstruction(.dropNonEssential))
        #expect(try JSONDecoder().decode(StrategyInstruction.self, from: data) == StrategyInstruction(.dropNonEssential))
        // Also through the snake_case coders of the API and the client (which would camelCase the names).
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        for strategy in DegradationStrategy.allCases {
            let wire = try encoder.encode(StrategyInstruction(strategy))
            #expect(try decoder.decode(StrategyInstruction.self, from: wire) == StrategyInstruction(strategy))
        }
    }

    struct Run {
        var tracker = DegradationTracker(resource: .memory)
        var now = Timestamp(milliseconds: 1_000_000)
        let policy = RecoveryPolicy.seed
        var plans: [DegradationPlan] = []

        /// Observes `ratio` of a 100 MB limit every second for `seconds`.
        mutating func hold(_ ratio: Double, for seconds: Int, violating: Bool = false) {
            for _ in 0..<seconds {
                if let plan = tracker.observe(
                    agent: "a", usage: ratio * 100_000_000, limit: 100_000_000, violating: violating, at: now, policy: policy)
                {
                    plans.append(plan)
                }
                now = now + .seconds(1)
            }
        }
    }

    @Test func climbsLevelByLevelThenRecoversOneStagePerInterval() {
        var run = Run()
        run.hold(0.5, for: 5)
        #expect(run.plans.isEmpty)
        run.hold(0.95, for: 5)
        run.hold(1.1, for: 5)
        run.hold(1.3, for: 5)
        #expect(run.plans.map(\.level) == [.minimal, .moderate, .aggressive])
        #expect(run.plans.map(\.reason) == [.pressure, .pressure, .pressure])
        #expect(run.plans.last?.strategies.map(\.strategy) == [.cacheAggressively, .batchOperations, .reducePrecision])
        // Target: 0.8 of the limit; 1.3 → shed (130 - 80) / 130.
        let last = run.plans.last!
        #expect(last.targetUsage == 80_000_000)
        #expect(abs(last.targetReduction - 50.0 / 130.0) < 1e-9)
        #expect(last.timelineSeconds == 30)

        // Usage falls to 0.5: nothing for 60 s (the last violation, at 1.3, is too recent), then a stage every 30 s.
        let fell = run.now
        run.hold(0.5, for: 200)
        let stages = run.plans.dropFirst(3)
        #expect(stages.map(\.reason) == [.recovery, .recovery, .recovery])
        #expect(stages.map(\.level) == [.moderate, .minimal, .none])
        #expect(stages.map(\.recoveryStage) == [1, 2, 3])
        #expect(stages.last?.strategies.isEmpty == true)
        let offsets = stages.map { ($0.at - fell).components.seconds }
        // The last violation was 1 s before the fall; 60 s quiet; then 30 s apart.
        #expect(offsets == [59, 89, 119])
        #expect(run.tracker.level == .none)
    }

    @Test func noRecoveryWhileUsageStaysAtOrAboveThreshold() {
        var run = Run()
        run.hold(1.1, for: 3)
        run.hold(0.85, for: 300)
        #expect(run.plans.map(\.level) == [.moderate], "usage 0.85 of the limit never recovers")
    }

    @Test func aRelapseRollsBackOneStage() {
        var run = Run()
        run.hold(1.3, for: 2)
        run.hold(0.5, for: 95)
        #expect(run.plans.map(\.level) == [.aggressive, .moderate, .minimal])
        // Usage back at 0.85 (below minimal's 0.9, above the 0.8 threshold): one stage back, at once.
        run.hold(0.85, for: 1)
        #expect(run.plans.last?.reason == .relapse)
        #expect(run.plans.last?.level == .moderate)
        #expect(run.plans.last?.previousLevel == .minimal)
        #expect(run.plans.last?.strategies.map(\.strategy) == [.cacheAggressively, .batchOperations])
        // Staying up there, however long, rolls back no further.
        run.hold(0.85, for: 200)
        #expect(run.plans.count == 4)
        #expect(run.tracker.level == .moderate)
        #expect(run.tracker.recoveryStage == 1)
    }

    @Test func aSecondRelapseNeedsADropBelowTheThresholdFirst() {
        var run = Run()
        run.hold(1.6, for: 1)
        run.hold(0.5, for: 92)
        #expect(run.plans.map(\.level) == [.emergency, .aggressive, .moderate])
        run.hold(0.85, for: 1)
        #expect(run.plans.map(\.level) == [.emergency, .aggressive, .moderate, .aggressive])
        #expect(run.plans.last?.reason == .relapse)
        // A dip below the threshold, too short for a recovery stage, re-arms the rollback …
        run.hold(0.5, for: 5)
        #expect(run.plans.count == 4)
        // … so rising again rolls back one more stage (to the level it had reached, no further).
        run.hold(0.85, for: 1)
        #expect(run.plans.last?.reason == .relapse)
        #expect(run.plans.last?.level == .emergency)
        #expect(run.plans.count == 5)
        run.hold(0.5, for: 5)
        run.hold(0.85, for: 30)
        #expect(run.plans.count == 5, "nothing left to roll back")
        #expect(run.tracker.recoveryStage == 0)
    }

    @Test func aClimbAcrossALevelBoundaryAfterARelapseStillRaisesTheLevel() {
        var run = Run()
        run.hold(1.3, for: 2)
        run.hold(0.5, for: 95)
        run.hold(0.85, for: 1)
        #expect(run.plans.map(\.level) == [.aggressive, .moderate, .minimal, .moderate])
        run.hold(0.85, for: 10)
        run.hold(1.6, for: 1)
        #expect(run.plans.last?.reason == .pressure)
        #expect(run.plans.last?.level == .emergency)
        #expect(run.tracker.relapseHeld == nil)
    }

    @Test func aRelapseHeldSurvivesARestart() throws {
        var run = Run()
        run.hold(1.3, for: 2)
        run.hold(0.5, for: 95)
        run.hold(0.85, for: 1)
        let restored = try LadderJSON.roundTrip(run.tracker)
        #expect(restored == run.tracker)
        #expect(restored.relapseHeld == true)
        // A state saved before the field existed decodes as not held.
        let old = try LadderJSON.encode(run.tracker)
        var object = try #require(try JSONSerialization.jsonObject(with: old) as? [String: Any])
        object["relapse_held"] = nil
        let decoded = try LadderJSON.decode(DegradationTracker.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(decoded.relapseHeld == nil)
        #expect(decoded.level == .moderate)
    }

    @Test func aClimbDuringRecoveryCancelsIt() {
        var run = Run()
        run.hold(1.6, for: 1)
        run.hold(0.3, for: 92)
        #expect(run.plans.map(\.level) == [.emergency, .aggressive, .moderate])
        run.hold(1.25, for: 1)
        #expect(run.plans.last?.level == .aggressive)
        #expect(run.plans.last?.reason == .pressure)
        #expect(run.tracker.recoveryStage == 0)
    }

    @Test func aViolationRestartsTheQuietPeriod() {
        var run = Run()
        run.hold(0.95, for: 1)
        run.hold(0.5, for: 20)
        run.hold(0.5, for: 1, violating: true)
        let violation = run.now
        run.hold(0.5, for: 100)
        #expect(run.plans.count == 2)
        // Ladder violations (another limit of the same resource) count, measured from the last one.
        #expect((run.plans[1].at - violation).components.seconds == 59)
    }

    @Test func recoveryPolicyDecodesWithSeedDefaults() throws {
        let policy = try JSONDecoder().decode(RecoveryPolicy.self, from: Data(#"{"stage_interval": 5000}"#.utf8))
        #expect(policy.stageInterval == .seconds(5))
        #expect(policy.quietPeriod == .seconds(60))
        #expect(policy.usageBelow == 0.8)
    }

    /// Random walks: the level never exceeds what usage reached, strategies
    /// are always the level's list, and nothing crashes on any figure.
    @Test func invariantsOnRandomWalks() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var tracker = DegradationTracker(resource: Resource.allCases.randomElement(using: &generator)!)
            var now = Timestamp(milliseconds: 0)
            var peak = DegradationLevel.none
            for _ in 0..<300 {
                let usage = [Double.random(in: 0...2, using: &generator), 0, -1, .nan, .infinity].randomElement(using: &generator)!
                let plan = tracker.observe(
                    agent: "a", usage: usage, limit: 1, violating: Bool.random(using: &generator) && usage > 1, at: now,
                    policy: .seed)
                if usage.isFinite, usage >= 0 { peak = max(peak, DegradationLevel(usage: usage, limit: 1)) }
                #expect(tracker.level <= peak)
                #expect(tracker.active == DegradationStrategy.plan(for: tracker.resource, at: tracker.level))
                if let plan { #expect(plan.level == tracker.level) }
                now = now + .milliseconds(Int64.random(in: 100...20_000, using: &generator))
            }
        }
    }
}
