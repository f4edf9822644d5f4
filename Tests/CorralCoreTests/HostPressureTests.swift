import CorralCore
import Testing

/// The host ladder as a state machine with time from its readings.
@Suite("Host pressure ladder")
struct HostPressureTests {
    static let allocatable = 1_000_000_000.0
    static let policy = HostPressurePolicy()

    static func reading(_ share: Double, at second: Int64, psi: Double = 0) -> HostReading {
        HostReading(
            at: Timestamp(milliseconds: second * 1000), memoryUsed: share * allocatable, memoryAllocatable: allocatable,
            memory: Pressure(
                some: PressureLine(avg10: psi, avg60: 0, avg300: 0, total: 0), full: PressureLine(avg10: psi, avg60: 0, avg300: 0, total: 0)
            ),
            cpu: nil, io: nil)
    }

    /// Priorities 1…8, agent "p1" … "p8"; p2 follows its stream.
    static let candidates = (1...8).map { HostCandidate(agent: "p\($0)", priority: Priority(rawValue: $0)!, memory: 100, listens: $0 == 2) }

    @Test func nothingHappensBelowTheHighWatermarkOrWithoutGrowth() {
        var ladder = HostPressureLadder()
        #expect(ladder.observe(Self.reading(0.5, at: 0), candidates: Self.candidates, policy: Self.policy).isEmpty)
        #expect(ladder.observe(Self.reading(0.84, at: 1), candidates: Self.candidates, policy: Self.policy).isEmpty)
        // Above 85% but flat and without pressure: agents are not growing, nothing to do.
        #expect(ladder.observe(Self.reading(0.86, at: 2), candidates: Self.candidates, policy: Self.policy).count == 2)
        var flat = HostPressureLadder()
        _ = flat.observe(Self.reading(0.88, at: 0), candidates: Self.candidates, policy: Self.policy)
        #expect(flat.observe(Self.reading(0.88, at: 1), candidates: Self.candidates, policy: Self.policy).isEmpty)
        #expect(flat.phase == .calm)
    }

    @Test func stepsGoLowestPriorityFirstOneAgentAtATimeWithARecheckBetween() {
        var ladder = HostPressureLadder()
        var taken: [HostCommand] = []
        _ = ladder.observe(Self.reading(0.80, at: 0), candidates: Self.candidates, policy: Self.policy)
        // Rising above 85%: an episode, a step per second (twice a second is one step).
        for (index, share) in [0.86, 0.87, 0.88, 0.89, 0.90, 0.91, 0.92].enumerated() {
            taken += ladder.observe(Self.reading(share, at: Int64(index) + 1), candidates: Self.candidates, policy: Self.policy)
            taken += ladder.observe(
                HostReading(
                    at: Timestamp(milliseconds: (Int64(index) + 1) * 1000 + 500), memoryUsed: (share + 0.006) * Self.allocatable,
                    memoryAllocatable: Self.allocatable, memory: nil, cpu: nil, io: nil), candidates: Self.candidates, policy: Self.policy)
        }
        #expect(taken.first == .started(reason: "memory 86% of the allocatable and rising (high 85%)"))
        #expect(
            Array(taken.dropFirst()) == [
                .step(agent: "p1", stage: .throttled), .step(agent: "p1", stage: .frozen),
                // p2 follows its stream: it is told to degrade first.
                .step(agent: "p2", stage: .degraded), .step(agent: "p2", stage: .throttled), .step(agent: "p2", stage: .frozen),
                .step(agent: "p3", stage: .throttled), .step(agent: "p3", stage: .frozen),
            ])
        #expect(ladder.phase == .escalating)
    }

    @Test func protectedAndOtherwiseFrozenAgentsAreNeverTargetsAndTerminateIsOptIn() {
        var ladder = HostPressureLadder()
        var candidates = [
            HostCandidate(agent: "low", priority: Priority(rawValue: 1)!, memory: 10, listens: false, frozenElsewhere: true),
            HostCandidate(agent: "mid", priority: Priority(rawValue: 4)!, memory: 10, listens: false),
            HostCandidate(agent: "top", priority: Priority(rawValue: 8)!, memory: 900, listens: false),
        ]
        var commands: [HostCommand] = []
        for second in 0..<6 {
            commands += ladder.observe(Self.reading(0.97, at: Int64(second)), candidates: candidates, policy: Self.policy)
        }
        #expect(
            commands == [
                .started(reason: "memory 97% of the allocatable (critical 95%)"), .step(agent: "mid", stage: .throttled),
                .step(agent: "mid", stage: .frozen), .exhausted,
            ])
        var killing = Self.policy
        killing.terminate = true
        commands = ladder.observe(Self.reading(0.97, at: 7), candidates: candidates, policy: killing)
        #expect(commands == [.step(agent: "mid", stage: .terminated)])
        // The killed agent is gone: its steps go with it, and nobody is left.
        candidates.removeAll { $0.agent == "mid" }
        #expect(ladder.observe(Self.reading(0.97, at: 8), candidates: candidates, policy: killing).isEmpty)
        #expect(ladder.steps.isEmpty)
    }

    @Test func recoveryWaitsForTheQuietPeriodThenUndoesInReverseOrderOneAgentPerInterval() {
        var ladder = HostPressureLadder()
        var second: Int64 = 0
        func feed(_ share: Double) -> [HostCommand] {
            defer { second += 1 }
            return ladder.observe(Self.reading(share, at: second), candidates: Self.candidates, policy: Self.policy)
        }
        for share in [0.96, 0.96, 0.96, 0.96, 0.96] { _ = feed(share) }
        #expect(ladder.steps.map(\.agent) == ["p1", "p1", "p2", "p2", "p2"])
        // Below critical and no longer rising: calm, but the quiet period runs first (holding).
        #expect(feed(0.90).isEmpty && ladder.phase == .holding)
        // 10 s of quiet before the first undo (it began with the 0.90 reading).
        var undone: [HostCommand] = []
        for _ in 0..<9 { undone += feed(0.50) }
        #expect(undone.isEmpty && ladder.phase == .holding)
        undone = feed(0.50)
        #expect(undone == [.undo(agent: "p2", stages: [.frozen, .throttled, .degraded])])
        #expect(ladder.phase == .recovering)
        // One agent per 5 s.
        for _ in 0..<4 { #expect(feed(0.50).isEmpty) }
        #expect(feed(0.50) == [.undo(agent: "p1", stages: [.frozen, .throttled]), .ended])
        #expect(ladder.phase == .calm && ladder.steps.isEmpty)
    }

    @Test func aRelapseDuringRecoveryEscalatesAgainFromWhereItStands() {
        var ladder = HostPressureLadder()
        var second: Int64 = 0
        func feed(_ share: Double, psi: Double = 0) -> [HostCommand] {
            defer { second += 1 }
            return ladder.observe(Self.reading(share, at: second, psi: psi), candidates: Self.candidates, policy: Self.policy)
        }
        for _ in 0..<3 { _ = feed(0.96) }  // p1 throttled, p1 frozen, p2 degraded
        for _ in 0..<11 { _ = feed(0.5) }
        #expect(ladder.steps.map(\.agent) == ["p1", "p1"], "p2 was undone first")
        // Pressure back with PSI above the high watermark: p2 again (its steps start over).
        let relapse = feed(0.86, psi: 30)
        #expect(relapse == [.step(agent: "p2", stage: .degraded)])
        #expect(ladder.phase == .escalating)
        // Calm must last the whole quiet period again.
        for _ in 0..<5 { _ = feed(0.5) }
        #expect(feed(0.8).isEmpty && ladder.phase == .holding)
    }

    @Test func cpuAndIOPressureActOnlyWhenConfigured() {
        var policy = Self.policy
        let busy = HostReading(
            at: Timestamp(milliseconds: 0), memoryUsed: 0, memoryAllocatable: Self.allocatable, memory: nil,
            cpu: Pressure(some: PressureLine(avg10: 95, avg60: 0, avg300: 0, total: 0), full: nil), io: nil)
        var ladder = HostPressureLadder()
        #expect(ladder.observe(busy, candidates: Self.candidates, policy: policy).isEmpty)
        policy.cpuPressure = 80
        #expect(ladder.observe(busy, candidates: Self.candidates, policy: policy).first == .started(reason: "PSI cpu some 95.0% (≥ 80.0%)"))
        var off = HostPressureLadder()
        policy.enabled = false
        #expect(off.observe(Self.reading(0.99, at: 0), candidates: Self.candidates, policy: policy).isEmpty)
        #expect(HostPressurePolicy(memoryHigh: 0.97).problems.count == 1 && Self.policy.problems.isEmpty)
    }

    @Test func recoveryUndoesSeveralAgentsInOneStepWhileTheirRoomToGrowFits() {
        // Four agents of 100 MB with hard limits of 150 MB: each may take 50 MB more when thawed.
        let candidates = (1...4).map {
            HostCandidate(agent: "p\($0)", priority: Priority(rawValue: $0)!, memory: 100_000_000, listens: false, memoryLimit: 150_000_000)
        }
        var ladder = HostPressureLadder()
        for second in 0..<8 { _ = ladder.observe(Self.reading(0.96, at: Int64(second)), candidates: candidates, policy: Self.policy) }
        #expect(ladder.steps.count == 8)
        var undone: [HostCommand] = []
        // 80% in use: room under the critical 95% is 150 MB: three agents' 50 MB each, latest first.
        for second in 8..<19 {
            undone += ladder.observe(Self.reading(0.80, at: Int64(second)), candidates: candidates, policy: Self.policy)
        }
        #expect(
            undone == [
                .undo(agent: "p4", stages: [.frozen, .throttled]), .undo(agent: "p3", stages: [.frozen, .throttled]),
                .undo(agent: "p2", stages: [.frozen, .throttled]),
            ])
        #expect(ladder.steps.map(\.agent) == ["p1", "p1"])
        // Their room stays reserved while they grow: p1 waits until one of them is gone.
        let grown = candidates.map { candidate in
            var candidate = candidate
            candidate.memory = candidate.agent == "p1" ? 100_000_000 : 120_000_000
            return candidate
        }
        #expect(ladder.observe(Self.reading(0.86, at: 20), candidates: grown, policy: Self.policy).isEmpty)
        #expect(ladder.phase == .recovering, "growth of thawed agents below critical is not a relapse")
        #expect(
            ladder.observe(Self.reading(0.80, at: 24), candidates: grown.filter { $0.agent != "p4" }, policy: Self.policy) == [
                .undo(agent: "p1", stages: [.frozen, .throttled]), .ended,
            ])
    }

    @Test func failedStepsAreRetriedARestartedLadderHoldsAndTurningItOffUndoesEverything() {
        var ladder = HostPressureLadder()
        #expect(
            ladder.observe(Self.reading(0.97, at: 0), candidates: Self.candidates, policy: Self.policy).last
                == .step(agent: "p1", stage: .throttled))
        ladder.failed(agent: "p1", stage: .throttled)
        #expect(ladder.steps.isEmpty)
        #expect(
            ladder.observe(Self.reading(0.97, at: 1), candidates: Self.candidates, policy: Self.policy) == [
                .step(agent: "p1", stage: .throttled)
            ])
        // A restarted daemon's ladder holds what is in force, then recovers as usual.
        var restored = HostPressureLadder(restoring: ladder.steps)
        #expect(restored.phase == .holding && restored.stage(of: "p1") == .throttled)
        var commands: [HostCommand] = []
        for second in 10..<21 {
            commands += restored.observe(Self.reading(0.5, at: Int64(second)), candidates: Self.candidates, policy: Self.policy)
        }
        #expect(commands == [.undo(agent: "p1", stages: [.throttled]), .ended])
        // Off in the middle of an episode: every step is undone at once.
        var off = Self.policy
        off.enabled = false
        _ = ladder.observe(Self.reading(0.97, at: 2), candidates: Self.candidates, policy: Self.policy)
        _ = ladder.observe(Self.reading(0.97, at: 3), candidates: Self.candidates, policy: Self.policy)
        #expect(
            ladder.observe(Self.reading(0.97, at: 4), candidates: Self.candidates, policy: off) == [
                // p2 follows its stream: its first step was the degradation plan.
                .undo(agent: "p2", stages: [.degraded]), .undo(agent: "p1", stages: [.frozen, .throttled]), .ended,
            ])
        #expect(ladder.phase == .calm && ladder.steps.isEmpty)
    }

    @Test func frozenAgentsHoldingMoreThanTheHighWatermarkAreStillThawedWhenTheirRoomFits() {
        // Every candidate frozen at 90% of the allocatable, nothing growing: calm below critical.
        let candidates = (1...2).map {
            HostCandidate(agent: "p\($0)", priority: Priority(rawValue: $0)!, memory: 450_000_000, listens: false, memoryLimit: 480_000_000)
        }
        var ladder = HostPressureLadder()
        for second in 0..<4 { _ = ladder.observe(Self.reading(0.96, at: Int64(second)), candidates: candidates, policy: Self.policy) }
        #expect(ladder.steps.count == 4)
        var commands: [HostCommand] = []
        for second in 4..<15 {
            commands += ladder.observe(Self.reading(0.90, at: Int64(second)), candidates: candidates, policy: Self.policy)
        }
        // Room under 95%: 50 MB; each needs 30 MB: the last touched first, then nothing more fits.
        #expect(commands == [.undo(agent: "p2", stages: [.frozen, .throttled])])
    }
}
