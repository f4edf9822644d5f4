import CorralCore
import Foundation
import Testing

/// The escalation ladder driven by a fake clock: observations once a second
/// (or as each test says), the commands and the times they fire.
@Suite("Escalation ladder")
struct EscalationLadderTests {
    static let agent = "agent-1"

    static func group(_ name: String) -> QuotaGroup {
        QuotaGroup.seedGroups.first { $0.name == name }!
    }

    /// Heavy computation: memory → suspend, cpu → scale_down, processes → terminate.
    static let heavy = QuotaGroup.heavyComputation.limits

    // MARK: The built-in groups' ladders

    @Test(arguments: QuotaGroup.seedGroups.map(\.name), [Resource.memory, .cpu, .processes])
    func seedHardViolationWalksItsWholeLadder(groupName: String, resource: Resource) throws {
        let limit = try #require(Self.group(groupName).limits[resource])
        var run = LadderRun(limits: Self.group(groupName).limits)
        let usage = limit.hard * 13 / 10  // 30 % over: throttle factor 0.85
        let violation = run.violation(resource, usage)
        #expect(violation.kind == .hard)

        run.hold([resource: usage], from: 0, through: 700)
        run.hold([resource: 0], from: 701, through: 720)

        let warn = Fired(0, .warn(violation))
        let throttle = Fired(30, .throttle(violation, factor: 0.85))
        let restore = Fired(703, .restore(agent: Self.agent, resource: resource))
        let suspend = Fired(300, .suspend(violation))
        let expected: [Fired]
        switch limit.action {
        case .warn:
            expected = [warn]
        case .throttle:
            expected = [warn, throttle, restore]
        case .suspend:
            expected = [warn, throttle, suspend, restore]
        case .terminate:
            expected = [warn, throttle, suspend, Fired(600, .terminate(violation, grace: .seconds(5))), restore]
        case .scaleDown:
            let request = ScaleDownRequest(resource: resource, current: usage, target: limit.hard * 0.8, deadline: .fake(60))
            expected = [
                warn, throttle, Fired(30, .scaleDown(violation, request)),
                Fired(60, .scaleDownResolved(agent: Self.agent, request: request, usage: usage, met: false)),
                Fired(60, .suspend(violation)), Fired(360, .terminate(violation, grace: .seconds(5))), restore,
            ]
        case .migrate, .custom:
            Issue.record("the seed groups use no \(limit.action)")
            return
        }
        #expect(run.log == expected)
        #expect(run.ladder.suspended == [.suspend, .terminate, .scaleDown].contains(limit.action))
        #expect(run.ladder.terminating == [.terminate, .scaleDown].contains(limit.action))
        #expect(run.ladder.episodes.isEmpty && run.ladder.throttled.isEmpty && run.ladder.scaleDowns.isEmpty)
        #expect(run.nextDue == nil)
    }

    @Test func stepsPerKindAndAction() {
        func limit(_ action: EnforcementAction) -> ResourceLimit { ResourceLimit(soft: 1, hard: 2, action: action) }
        #expect(AgentLadder.steps(for: .soft, under: limit(.terminate)) == [.warn])
        #expect(AgentLadder.steps(for: .burst, under: limit(.terminate)) == [.warn, .throttle])
        #expect(AgentLadder.steps(for: .burst, under: limit(.warn)) == [.warn, .throttle])
        #expect(AgentLadder.steps(for: .hard, under: limit(.warn)) == [.warn])
        #expect(AgentLadder.steps(for: .hard, under: limit(.throttle)) == [.warn, .throttle])
        #expect(AgentLadder.steps(for: .hard, under: limit(.suspend)) == [.warn, .throttle, .suspend])
        #expect(AgentLadder.steps(for: .hard, under: limit(.terminate)) == [.warn, .throttle, .suspend, .terminate])
        #expect(AgentLadder.steps(for: .hard, under: limit(.scaleDown)) == [.warn, .throttle, .scaleDown])
        #expect(AgentLadder.steps(for: .hard, under: limit(.migrate)) == [.warn, .throttle, .migrate])
        #expect(AgentLadder.steps(for: .hard, under: limit(.custom)) == [.warn, .throttle, .custom])
    }

    @Test func scheduleTakesTheLargestDelaySoFar() {
        let policy = EscalationPolicy(
            delays: [.warn: .seconds(5), .throttle: .seconds(2), .suspend: .seconds(40), .terminate: .seconds(10)],
            terminationGrace: .seconds(1))
        let schedule = AgentLadder.schedule([.warn, .throttle, .suspend, .terminate, .custom], since: .fake(100), policy: policy)
        #expect(schedule.map(\.0) == [.warn, .throttle, .suspend, .terminate, .custom])
        #expect(schedule.map(\.1.fakeSeconds) == [105, 105, 140, 140, 140])
        let seed = AgentLadder.schedule([.warn, .throttle, .scaleDown], since: .fake(0), policy: .seed)
        #expect(seed.map(\.1.fakeSeconds) == [0, 30, 30])
    }

    // MARK: The re-check (a delayed step fires only while the violation holds)

    @Test(arguments: [30.0, 300, 600])
    func violationThatClearsBeforeADelayedStepNeverFiresIt(clearsAt: Double) {
        var run = LadderRun(limits: Self.heavy)
        run.hold([.processes: 260], from: 0, through: clearsAt - 1)
        run.hold([.processes: 0], from: clearsAt, through: 900)
        let expected: [Double: [String]] = [
            30: ["0 warn"],
            300: ["0 warn", "30 throttle", "302 restore"],
            600: ["0 warn", "30 throttle", "300 suspend", "602 restore"],
        ]
        #expect(run.actions == expected[clearsAt])
        #expect(!run.ladder.terminating)
        #expect(run.ladder.suspended == (clearsAt > 300))
    }

    @Test func aTimerAtTheDueTimeDoesNotActOnAnOlderObservation() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.hold([.cpu: 39], from: 0, through: 29)
        run.idle(from: 29.5, through: 31, every: 0.5)
        #expect(run.actions == ["0 warn"])
    }

    @Test func aDipShorterThanClearAfterIsTheSameViolation() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.hold([.cpu: 39], from: 0, through: 29)
        run.observe(30, [.cpu: 1])  // the re-check at the due time does not see it…
        run.hold([.cpu: 39], from: 31, through: 40)  // …the next one does: same episode
        #expect(run.actions == ["0 warn", "31 throttle"])
        #expect(run.ladder.episodes[.cpu]?.since == .fake(0))
    }

    @Test func afterAnObservationGapTheStepFiresAtTheFirstObservationPastItsDueTime() {
        var run = LadderRun(limits: QuotaGroup.standard.limits, settings: LadderSettings(clearAfter: .seconds(10)))
        run.hold([.cpu: 39], from: 0, through: 25)
        run.idle(from: 26, through: 33)  // timers, nobody observes
        #expect(run.actions == ["0 warn"])
        #expect(run.nextDue == 30)  // overdue: the engine should observe now
        run.observe(34, [.cpu: 39])
        #expect(run.log.last == Fired(34, .throttle(run.violation(.cpu, 39), factor: 0.85)))
        #expect(run.actions == ["0 warn", "34 throttle"])
    }

    // MARK: Kinds

    @Test func softViolationOnlyWarns() {
        var run = LadderRun(limits: Self.heavy)
        run.hold([.processes: 150, .memory: 1_500_000_000], from: 0, through: 700)
        run.hold([:], from: 701, through: 720)
        #expect(
            run.log == [
                Fired(0, .warn(run.violation(.memory, 1_500_000_000))),
                Fired(0, .warn(run.violation(.processes, 150))),
            ])
    }

    @Test func burstViolationWarnsThenThrottlesAtThirtySeconds() {
        let limits = LimitSet([
            .memory: ResourceLimit(soft: 100, hard: 200, burst: 150, action: .terminate),
            .cpu: ResourceLimit(soft: 10, hard: 20, burst: 40, action: .suspend),
        ])
        var run = LadderRun(limits: limits)
        run.hold([.memory: 160, .cpu: 30], from: 0, through: 700)
        let memory = run.violation(.memory, 160)
        let cpu = run.violation(.cpu, 30)
        #expect(memory.kind == .burst && memory.limit == 150)
        #expect(cpu.kind == .burst && cpu.limit == 20)
        #expect(
            run.log == [
                Fired(0, .warn(memory)), Fired(0, .warn(cpu)),
                Fired(30, .throttle(memory, factor: 0.9)), Fired(30, .throttle(cpu, factor: 0.85)),
            ])
    }

    @Test func escalatingFromSoftToHardStartsTheHardStepsThen() {
        var run = LadderRun(limits: Self.heavy)
        run.hold([.processes: 150], from: 0, through: 9)
        run.hold([.processes: 260], from: 10, through: 700)
        let soft = run.violation(.processes, 150)
        let hard = run.violation(.processes, 260)
        #expect(run.ladder.episodes[.processes]?.since == .fake(0))
        // The hard kind is warned about too, and its steps count from 10 s, when it was reached.
        #expect(
            run.log == [
                Fired(0, .warn(soft)), Fired(10, .warn(hard)), Fired(40, .throttle(hard, factor: 0.85)), Fired(310, .suspend(hard)),
                Fired(610, .terminate(hard, grace: .seconds(5))),
            ])
    }

    @Test func fallingBackToSoftStopsTheLadderUntilHardReturns() {
        var run = LadderRun(limits: Self.heavy)
        run.hold([.processes: 260], from: 0, through: 20)
        run.hold([.processes: 150], from: 21, through: 399)  // soft: the re-check sees no hard violation
        #expect(run.actions == ["0 warn"])
        // Still one episode: back at hard, its overdue steps fire at once.
        run.hold([.processes: 260], from: 400, through: 410)
        #expect(run.actions == ["0 warn", "400 throttle", "400 suspend"])
    }

    // MARK: Clearing

    @Test func clearingRestoresTheThrottleExactlyOnce() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.hold([.cpu: 39], from: 0, through: 40)
        run.hold([.cpu: 2], from: 41, through: 200)
        #expect(run.actions == ["0 warn", "30 throttle", "43 restore"])
        #expect(run.ladder.throttled.isEmpty && run.ladder.episodes.isEmpty)

        // Without observations too: clearing is a matter of time.
        var silent = LadderRun(limits: QuotaGroup.standard.limits)
        silent.hold([.cpu: 39], from: 0, through: 40)
        silent.idle(from: 40.5, through: 100, every: 0.5)
        #expect(silent.actions == ["0 warn", "30 throttle", "43 restore"])
        #expect(silent.log.last == Fired(43, .restore(agent: Self.agent, resource: .cpu)))

        // The next episode is throttled and restored on its own.
        run.hold([.cpu: 39], from: 300, through: 340)
        run.idle(from: 341, through: 400)
        #expect(run.actions == ["0 warn", "30 throttle", "43 restore", "300 warn", "330 throttle", "343 restore"])
    }

    @Test func clearAfterBoundary() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.hold([.cpu: 39], from: 0, through: 30)
        run.advance(32.5)  // exactly clearAfter unseen: not yet
        #expect(run.ladder.episodes[.cpu] != nil)
        run.advance(32.501)
        #expect(run.ladder.episodes[.cpu] == nil)
        #expect(run.actions == ["0 warn", "30 throttle", "32 restore"])
    }

    @Test func clearingWithoutAThrottleRestoresNothing() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.hold([.cpu: 39], from: 0, through: 20)
        run.idle(from: 21, through: 100)
        #expect(run.actions == ["0 warn"])
        #expect(run.ladder.episodes.isEmpty)
    }

    // MARK: Warnings

    @Test func aViolationThatReturnsWithinTheAlertIntervalDoesNotWarnAgain() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.observe(0, [.memory: 300_000_000])
        run.hold([:], from: 1, through: 5)  // cleared at 3
        #expect(run.ladder.episodes.isEmpty)
        run.observe(30, [.memory: 300_000_000])
        run.hold([:], from: 31, through: 35)
        run.observe(59.999, [.memory: 300_000_000])
        run.hold([:], from: 61, through: 65)
        #expect(run.actions == ["0 warn"])
        run.observe(66, [.memory: 300_000_000])
        #expect(run.actions == ["0 warn", "66 warn"])
    }

    @Test func aViolationThatReturnsAfterExactlyTheAlertIntervalWarns() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.observe(0, [.memory: 300_000_000])
        run.hold([:], from: 1, through: 5)
        run.observe(60, [.memory: 300_000_000])
        #expect(run.actions == ["0 warn", "60 warn"])
    }

    @Test func aPersistingViolationWarnsOnce() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.hold([.memory: 300_000_000], from: 0, through: 600)
        #expect(run.actions == ["0 warn"])
    }

    @Test func warningsAreRateLimitedPerResourceAndKind() {
        let limits = LimitSet([
            .memory: ResourceLimit(soft: 100, hard: 200, burst: 150, action: .throttle),
            .cpu: ResourceLimit(soft: 10, hard: 20, action: .throttle),
        ])
        var run = LadderRun(limits: limits)
        run.observe(0, [.memory: 120, .cpu: 15])  // soft memory, soft cpu: two warnings
        run.hold([:], from: 1, through: 5)
        run.observe(10, [.memory: 160])  // burst memory: another kind
        run.hold([:], from: 11, through: 15)
        run.observe(20, [.memory: 120, .cpu: 15])  // both again within 60 s: nothing
        #expect(
            run.log == [
                Fired(0, .warn(run.violation(.memory, 120))), Fired(0, .warn(run.violation(.cpu, 15))),
                Fired(10, .warn(run.violation(.memory, 160))),
            ])
        #expect(run.ladder.lastWarned == ["memory.soft": .fake(0), "cpu.soft": .fake(0), "memory.burst": .fake(10)])
    }

    @Test func theAlertIntervalIsASetting() {
        var run = LadderRun(limits: QuotaGroup.standard.limits, settings: LadderSettings(alertInterval: .seconds(5)))
        run.observe(0, [.memory: 300_000_000])
        run.hold([:], from: 1, through: 4)
        run.observe(5, [.memory: 300_000_000])
        #expect(run.actions == ["0 warn", "5 warn"])
    }

    // MARK: Throttle factor

    /// (current, factor) for a limit of 100, by excess over it: >1.0 → 0.5,
    /// >0.5 → 0.7, >0.2 → 0.85, else 0.9; each boundary belongs to the milder side.
    static let factorTable: [(Double, Double)] = [
        (100, 0.9), (110, 0.9), (120, 0.9), (120.01, 0.85), (150, 0.85), (150.01, 0.7), (200, 0.7), (200.01, 0.5),
        (1000, 0.5),
    ]

    @Test(arguments: EscalationLadderTests.factorTable)
    func throttleFactorByExcess(current: Double, factor: Double) {
        #expect(ThrottleFactor.forExcess((current - 100) / 100) == factor)
        // Through the ladder: a burst violation of a burst limit of 100.
        var run = LadderRun(limits: LimitSet([.memory: ResourceLimit(soft: 50, hard: 10_000, burst: 100, action: .terminate)]))
        run.hold([.memory: current], from: 0, through: 30)
        let violation = run.violation(.memory, current)
        if current > 100 {
            #expect(run.log.last == Fired(30, .throttle(violation, factor: factor)))
            #expect(run.ladder.throttled == [.memory: factor])
        }
    }

    @Test func throttleFactorEdges() {
        #expect(ThrottleFactor.forExcess(0.2) == 0.9)
        #expect(ThrottleFactor.forExcess(0.200_000_1) == 0.85)
        #expect(ThrottleFactor.forExcess(0.5) == 0.85)
        #expect(ThrottleFactor.forExcess(0.500_000_1) == 0.7)
        #expect(ThrottleFactor.forExcess(1.0) == 0.7)
        #expect(ThrottleFactor.forExcess(1.000_000_1) == 0.5)
        #expect(ThrottleFactor.forExcess(-0.5) == 0.9)
        #expect(Violation(agent: "a", resource: .cpu, kind: .hard, current: 5, limit: 0).excessRatio == 0)
    }

    /// The engine lowers a limit to `throttled[resource]` × the configured one:
    /// a restore in between means a new episode starts from the configured limit again.
    @Test func theCumulativeFactorStartsOverAfterARestore() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.hold([.cpu: 70], from: 0, through: 30)  // excess 1.33: 0.5
        #expect(run.ladder.throttled == [.cpu: 0.5])
        run.idle(from: 31, through: 40)
        #expect(run.ladder.throttled.isEmpty)
        run.hold([.cpu: 33], from: 50, through: 80)  // excess 0.1: 0.9 (no warning: the last was 50 s ago)
        #expect(run.ladder.throttled == [.cpu: 0.9])
        #expect(run.actions == ["0 warn", "30 throttle", "33 restore", "80 throttle"])
    }

    // MARK: Scale-down (standard processes: soft 50, hard 100, target 80, deadline 30 s)

    static let standard = QuotaGroup.standard.limits

    static func request(current: Double = 130, target: Double = 80, deadline: Double = 60) -> ScaleDownRequest {
        ScaleDownRequest(resource: .processes, current: current, target: target, deadline: .fake(deadline))
    }

    /// Missed: suspend at once, terminate after the policy's suspend → terminate gap (300 s).
    @Test func scaleDownMissedEscalatesToSuspendOnceThenTerminate() {
        var run = LadderRun(limits: Self.standard)
        run.hold([.processes: 130], from: 0, through: 900)
        let violation = run.violation(.processes, 130)
        #expect(
            run.log == [
                Fired(0, .warn(violation)), Fired(30, .throttle(violation, factor: 0.85)),
                Fired(30, .scaleDown(violation, Self.request())),
                Fired(60, .scaleDownResolved(agent: Self.agent, request: Self.request(), usage: 130, met: false)),
                Fired(60, .suspend(violation)), Fired(360, .terminate(violation, grace: .seconds(5))),
            ])
        #expect(run.ladder.episodes[.processes]?.fired == [.warn, .throttle, .scaleDown, .suspend, .terminate])
    }

    /// A violation that goes away after a missed scale-down is not terminated.
    @Test func aMissedScaleDownThatThenCompliesIsNotTerminated() {
        var run = LadderRun(limits: Self.standard)
        run.hold([.processes: 130], from: 0, through: 100)
        run.hold([.processes: 40], from: 101, through: 900)
        #expect(run.actions.contains("60 suspend"))
        #expect(!run.actions.contains { $0.hasSuffix("terminate") })
    }

    /// Met: the episode ends as a clear does (the throttle is restored); the
    /// soft violation that remains is a new episode with its own warning.
    @Test func scaleDownMet() {
        var run = LadderRun(limits: Self.standard)
        run.hold([.processes: 130], from: 0, through: 45)
        run.hold([.processes: 70], from: 46, through: 120)  // still a soft violation, but at most the target
        #expect(run.actions == ["0 warn", "30 throttle", "30 scale_down", "60 scale_down met", "60 restore", "61 warn"])
        #expect(run.log[3].command == .scaleDownResolved(agent: Self.agent, request: Self.request(), usage: 70, met: true))
        #expect(run.log[5].command == .warn(run.violation(.processes, 70)))
        #expect(!run.ladder.suspended && run.ladder.throttled.isEmpty && run.ladder.scaleDowns.isEmpty)
        #expect(run.ladder.episodes[.processes]?.since == .fake(61))
        #expect(run.ladder.episodes[.processes]?.fired == [.warn])
    }

    /// An agent that met its scale-down and goes back over the hard limit is
    /// escalated again: warned, throttled and asked anew, and suspended when
    /// it misses the new request.
    @Test func overTheHardLimitAgainAfterAMetScaleDownIsEscalatedAgain() {
        var run = LadderRun(limits: Self.standard)
        run.hold([.processes: 130], from: 0, through: 45)
        run.hold([.processes: 30], from: 46, through: 70)  // met (and cleared: no violation at all)
        run.hold([.processes: 130], from: 71, through: 140)
        #expect(
            run.actions == [
                "0 warn", "30 throttle", "30 scale_down", "48 restore", "48 scale_down met", "71 warn", "101 throttle", "101 scale_down",
                "131 scale_down missed", "131 suspend",
            ])
        let second = ScaleDownRequest(resource: .processes, current: 130, target: 80, deadline: .fake(131))
        #expect(run.log[7].command == .scaleDown(run.violation(.processes, 130), second))
        #expect(run.log[8].command == .scaleDownResolved(agent: Self.agent, request: second, usage: 130, met: false))
        #expect(run.ladder.episodes[.processes]?.since == .fake(71))
    }

    /// The same with the usage between target and soft limit in between: the
    /// met request ends the episode, so the return over the hard limit is a
    /// new crossing (warned again once the alert interval has passed).
    @Test func metThenOverTheHardLimitWithinTheSameViolationIsEscalatedAgain() {
        var run = LadderRun(limits: Self.standard)
        run.hold([.processes: 130], from: 0, through: 45)
        run.hold([.processes: 70], from: 46, through: 70)
        run.hold([.processes: 130], from: 71, through: 140)
        #expect(
            run.actions == [
                "0 warn", "30 throttle", "30 scale_down", "60 scale_down met", "60 restore", "61 warn", "71 warn", "101 throttle",
                "101 scale_down", "131 scale_down missed", "131 suspend",
            ])
        #expect(run.ladder.suspended)
    }

    @Test func scaleDownExactlyAtTheTargetIsMet() {
        var run = LadderRun(limits: Self.standard)
        run.hold([.processes: 130], from: 0, through: 45)
        run.hold([.processes: 80], from: 46, through: 120)
        #expect(run.log[3] == Fired(60, .scaleDownResolved(agent: Self.agent, request: Self.request(), usage: 80, met: true)))
    }

    @Test func scaleDownClearedBeforeTheDeadline() {
        var run = LadderRun(limits: Self.standard)
        run.hold([.processes: 130], from: 0, through: 45)
        run.hold([.processes: 10], from: 46, through: 120)
        #expect(
            Array(run.log.dropFirst(3)) == [
                Fired(48, .restore(agent: Self.agent, resource: .processes)),
                Fired(48, .scaleDownResolved(agent: Self.agent, request: Self.request(), usage: 10, met: true)),
            ])
        #expect(run.ladder.scaleDowns.isEmpty && !run.ladder.suspended)
    }

    /// The missed verdict is a delayed action too: it needs an observation at
    /// or after the deadline that still shows the violation.
    @Test func scaleDownIsNotJudgedOnAnObservationBeforeItsDeadline() {
        var run = LadderRun(limits: Self.standard)
        run.hold([.processes: 130], from: 0, through: 59)
        run.advance(60)
        run.advance(61)
        #expect(run.actions == ["0 warn", "30 throttle", "30 scale_down"])
        run.observe(62, [.processes: 130])
        #expect(run.actions == ["0 warn", "30 throttle", "30 scale_down", "62 scale_down missed", "62 suspend"])
    }

    /// Resources measured or reported by the agent (files, connections, …)
    /// come as violations without usage readings, as the engine sends them.
    @Test func scaleDownOfAReportedResourceThatComplies() {
        let limits = LimitSet([.files: ResourceLimit(soft: 100, hard: 200, action: .scaleDown)])
        var run = LadderRun(limits: limits)
        let hard = run.violation(.files, 260)
        for time in stride(from: 0.0, through: 58, by: 1) { run.observe(time, violations: [hard]) }
        for time in stride(from: 59.0, through: 70, by: 1) { run.observe(time, violations: []) }  // complied at 59
        let request = ScaleDownRequest(resource: .files, current: 260, target: 160, deadline: .fake(60))
        #expect(run.actions == ["0 warn", "30 throttle", "30 scale_down", "61 restore", "61 scale_down met"])
        #expect(run.log.last?.command == .scaleDownResolved(agent: Self.agent, request: request, usage: nil, met: true))
        #expect(!run.ladder.suspended)
    }

    @Test func scaleDownOfAReportedResourceJudgedByTheViolationsFigure() {
        let limits = LimitSet([.files: ResourceLimit(soft: 100, hard: 200, action: .scaleDown)])
        var run = LadderRun(limits: limits)
        for time in stride(from: 0.0, through: 45, by: 1) { run.observe(time, violations: [run.violation(.files, 260)]) }
        for time in stride(from: 46.0, through: 70, by: 1) { run.observe(time, violations: [run.violation(.files, 150)]) }
        let request = ScaleDownRequest(resource: .files, current: 260, target: 160, deadline: .fake(60))
        #expect(run.log[3] == Fired(60, .scaleDownResolved(agent: Self.agent, request: request, usage: 150, met: true)))
        // The episode ended; the soft violation that remains is a new one.
        #expect(run.actions == ["0 warn", "30 throttle", "30 scale_down", "60 scale_down met", "60 restore", "61 warn"])
        #expect(!run.ladder.suspended)
    }

    @Test func aMissedScaleDownAndALaterSuspendStepSuspendOnce() {
        var run = LadderRun(limits: Self.heavy)
        run.hold([.cpu: 100, .processes: 260], from: 0, through: 700)
        #expect(
            run.actions == [
                "0 warn", "0 warn", "30 throttle", "30 scale_down", "30 throttle", "60 scale_down missed", "60 suspend",
                "360 terminate",
            ])
    }

    // MARK: Suspend and terminate

    @Test func suspendIsNotRepeatedAcrossResources() {
        let limits = LimitSet([
            .memory: ResourceLimit(soft: 100, hard: 200, action: .suspend),
            .processes: ResourceLimit(soft: 10, hard: 20, action: .suspend),
        ])
        var run = LadderRun(limits: limits)
        run.observe(0, [.memory: 300])
        run.hold([.memory: 300, .processes: 30], from: 1, through: 400)
        #expect(run.log.filter { $0.command.action == .suspend } == [Fired(300, .suspend(run.violation(.memory, 300)))])
        #expect(run.ladder.episodes[.processes]?.fired == [.warn, .throttle, .suspend])
    }

    @Test func noteSuspendFailedAllowsALaterSuspend() {
        let limits = LimitSet([
            .memory: ResourceLimit(soft: 100, hard: 200, action: .suspend),
            .processes: ResourceLimit(soft: 10, hard: 20, action: .suspend),
        ])
        for failed in [false, true] {
            var run = LadderRun(limits: limits)
            run.hold([.memory: 300], from: 0, through: 9)
            run.hold([.memory: 300, .processes: 30], from: 10, through: 300)
            if failed { run.ladder.noteSuspendFailed() }
            run.hold([.memory: 300, .processes: 30], from: 301, through: 400)
            let suspends = run.log.filter { $0.command.action == .suspend }.map(\.time)
            #expect(suspends == (failed ? [300, 310] : [300]))
            #expect(run.ladder.suspended)
        }
    }

    @Test func noteThawedAllowsTheNextEpisodeToSuspendAgain() {
        let limits = LimitSet([.memory: ResourceLimit(soft: 100, hard: 200, action: .suspend)])
        for thawed in [false, true] {
            var run = LadderRun(limits: limits)
            run.hold([.memory: 300], from: 0, through: 310)
            if thawed { run.ladder.noteThawed() }
            #expect(run.ladder.suspended == !thawed)
            run.hold([.memory: 300], from: 311, through: 400)  // the same episode does not suspend again
            run.idle(from: 401, through: 410)
            run.hold([.memory: 300], from: 500, through: 800)
            let suspends = run.log.filter { $0.command.action == .suspend }.map(\.time)
            #expect(suspends == (thawed ? [300, 800] : [300]))
        }
    }

    @Test func terminateCarriesTheGraceOfThePolicyAndHappensOnce() {
        var policy = EscalationPolicy.seed
        policy.terminationGrace = .seconds(17)
        var run = LadderRun(limits: Self.heavy, settings: LadderSettings(policy: policy))
        run.hold([.processes: 260], from: 0, through: 700)
        run.idle(from: 701, through: 710)
        run.hold([.processes: 260], from: 800, through: 1500)
        let terminations = run.log.filter { $0.command.action == .terminate }
        #expect(terminations == [Fired(600, .terminate(run.violation(.processes, 260), grace: .seconds(17)))])
        #expect(run.ladder.terminating)
        // Nor does a terminating agent get suspended again.
        #expect(run.log.filter { $0.command.action == .suspend }.map(\.time) == [300])
    }

    @Test func migrateAndCustomAreTheLastStep() {
        let limits = LimitSet([
            .memory: ResourceLimit(soft: 100, hard: 200, action: .migrate),
            .connections: ResourceLimit(soft: 10, hard: 20, action: .custom),
        ])
        var run = LadderRun(limits: limits)
        run.hold([.memory: 300, .connections: 25], from: 0, through: 700)
        #expect(run.actions == ["0 warn", "0 warn", "30 throttle", "30 migrate", "30 throttle", "30 custom"])
        #expect(run.log.contains(Fired(30, .migrate(run.violation(.memory, 300)))))
        #expect(run.log.contains(Fired(30, .custom(run.violation(.connections, 25)))))
    }

    // MARK: nextDue

    @Test func nextDueIsNilWhenIdle() {
        var run = LadderRun(limits: Self.heavy)
        #expect(run.nextDue == nil)
        run.observe(0, [.processes: 5])
        #expect(run.nextDue == nil)
    }

    @Test func nextDueFollowsTheLadder() {
        var run = LadderRun(limits: Self.heavy)
        run.observe(0, [.processes: 260])
        #expect(run.nextDue == 2.501)  // when it would clear
        run.hold([.processes: 260], from: 1, through: 29)
        #expect(run.nextDue == 30)  // throttle
        run.observe(30, [.processes: 260])
        #expect(run.nextDue == 32.501)

        // With a long clearAfter the steps show.
        var long = LadderRun(limits: Self.heavy, settings: LadderSettings(clearAfter: .seconds(3600)))
        var dues: [Double?] = []
        for time in [0.0, 30, 300, 600] {
            long.observe(time, [.processes: 260])
            dues.append(long.nextDue)
        }
        #expect(dues == [30, 300, 600, 4200.001])
        long.advance(4200.001)
        #expect(long.nextDue == nil)
    }

    @Test func nextDueIncludesScaleDownDeadlines() {
        var run = LadderRun(limits: Self.standard, settings: LadderSettings(clearAfter: .seconds(3600)))
        run.observe(0, [.processes: 130])
        run.observe(30, [.processes: 130])
        #expect(run.ladder.scaleDowns[.processes]?.deadline == .fake(60))
        #expect(run.nextDue == 60)
        run.observe(60, [.processes: 130])
        #expect(run.actions.suffix(2) == ["60 scale_down missed", "60 suspend"])
        #expect(run.nextDue == 360)  // the missed scale-down's terminate
    }

    @Test func nextDueOfAResourceWithoutALimitIsItsClearTime() {
        var run = LadderRun(limits: LimitSet())
        run.observe(0, violations: [Violation(agent: Self.agent, resource: .files, kind: .hard, current: 9, limit: 5)])
        #expect(run.log.isEmpty)
        #expect(run.nextDue == 2.501)
        run.advance(2.501)
        #expect(run.nextDue == nil && run.log.isEmpty)
    }

    /// An engine samples the agent at `nextDue`: a step whose re-check did not
    /// see the violation must not stay due in the past, or the engine spins.
    @Test func nextDueDoesNotRepeatAStepWhoseRecheckFailed() {
        var run = LadderRun(limits: Self.heavy, settings: LadderSettings(clearAfter: .seconds(10)))
        run.hold([.processes: 260], from: 0, through: 29)
        run.observe(30, [.processes: 5])
        #expect(run.nextDue == 39.001)  // the clear time, not 30 again
        run.observe(34, [.processes: 260])  // back: the overdue throttle fires
        #expect(run.actions == ["0 warn", "34 throttle"])
        #expect(run.nextDue == 44.001)
    }

    @Test func nextDueDoesNotRepeatAnUndecidedScaleDown() {
        var run = LadderRun(limits: Self.standard, settings: LadderSettings(clearAfter: .seconds(10)))
        run.hold([.processes: 130], from: 0, through: 59)
        run.observe(60, [:])  // nothing seen, usage unknown: undecided
        #expect(run.nextDue == 69.001)
        run.observe(61, [.processes: 130])
        #expect(run.actions.suffix(2) == ["61 scale_down missed", "61 suspend"])
    }

    @Test func nextDueIsTheDueTimeWhenAnObservationAwaitsAdvancing() {
        var ladder = AgentLadder(agent: Self.agent)
        let limits = QuotaGroup.standard.limits
        ladder.observe([Violation(agent: Self.agent, resource: .cpu, kind: .hard, current: 39, limit: 30)], usage: [:], at: .fake(0))
        #expect(ladder.nextDue(limits: limits, settings: LadderSettings()) == .fake(0))
    }

    // MARK: Restart

    /// What lets a restarted daemon continue a ladder: the JSON of a ladder in
    /// the middle of an escalation decodes to the same state, which then goes on
    /// exactly as the original does.
    @Test(arguments: [45.0, 150, 310, 340])
    func aLadderContinuesIdenticallyAfterAJSONRoundTrip(cut: Double) throws {
        var script: [(Double, [Resource: Double])] = []
        for time in stride(from: 0.0, through: 900, by: 1) {
            let memory: Double = time < 200 || time > 400 ? 2_500_000_000 : 100
            let cpu: Double = time < 500 ? 100 : 30
            let processes: Double = time.truncatingRemainder(dividingBy: 97) < 90 ? 260 : 150
            script.append((time, [.memory: memory, .cpu: cpu, .processes: processes]))
        }
        var original = LadderRun(limits: Self.heavy)
        for (time, usage) in script where time <= cut { original.observe(time, usage) }
        original.ladder.noteThawed()

        let json = try LadderJSON.encode(original.ladder)
        let text = String(decoding: json, as: UTF8.self)
        for key in ["\"last_seen\"", "\"last_warned\"", "\"scale_downs\"", "\"last_observed\"", "\"since\"", "\"fired\""] {
            #expect(text.contains(key), "\(key) in \(text)")
        }
        #expect(text.contains("\"since\":\"\(Timestamp.fake(0).iso8601)\""))  // wall time, ISO 8601
        var restarted = original
        restarted.ladder = try LadderJSON.decode(AgentLadder.self, from: json)
        #expect(restarted.ladder == original.ladder)

        for (time, usage) in script where time > cut {
            original.observe(time, usage)
            restarted.observe(time, usage)
        }
        #expect(restarted.log == original.log)
        #expect(restarted.ladder == original.ladder)
        #expect(original.log.contains { $0.time > cut })
    }

    /// The store keeps ladders as JSON with the property names as keys.
    @Test func aLadderRoundTripsWithIdentityKeysToo() throws {
        var run = LadderRun(limits: Self.heavy)
        run.hold([.memory: 2_500_000_000, .cpu: 100, .processes: 150], from: 0, through: 45)
        let data = try JSONEncoder().encode(run.ladder)
        #expect(try JSONDecoder().decode(AgentLadder.self, from: data) == run.ladder)
    }

    /// Without snake_case key conversion: JSONDecoder's `convertFromSnakeCase`
    /// rewrites dictionary keys too, and `scale_down` would come back as `scaleDown`.
    @Test func settingsRoundTripInJSON() throws {
        let settings = LadderSettings(
            policy: .seed, alertInterval: .seconds(7), clearAfter: .milliseconds(2500), scaleDownTarget: 0.75,
            scaleDownDeadline: .seconds(9))
        let data = try JSONEncoder().encode(settings)
        #expect(try JSONDecoder().decode(LadderSettings.self, from: data) == settings)
    }

    /// After a restart the engine resumes the ladder: the downtime does not
    /// clear it, but only an observation that still shows the violation may
    /// fire the steps that fell due meanwhile.
    @Test func aResumedLadderRechecksBeforeActing() throws {
        var run = LadderRun(limits: Self.heavy)
        run.hold([.processes: 260], from: 0, through: 100)
        #expect(run.actions == ["0 warn", "30 throttle"])

        var quiet = run
        quiet.ladder = try LadderJSON.roundTrip(run.ladder)
        quiet.ladder.resume(at: .fake(1000))
        quiet.advance(1000)
        #expect(quiet.ladder.episodes[.processes] != nil)  // the downtime did not clear it
        quiet.hold([.processes: 5], from: 1001, through: 1010)  // the agent is fine now
        #expect(quiet.actions == ["0 warn", "30 throttle", "1003 restore"])
        #expect(!quiet.ladder.suspended && !quiet.ladder.terminating)

        var persisting = run
        persisting.ladder = try LadderJSON.roundTrip(run.ladder)
        persisting.ladder.resume(at: .fake(1000))
        persisting.idle(from: 1000, through: 1002)  // timers alone re-check nothing
        #expect(persisting.actions == ["0 warn", "30 throttle"])
        persisting.observe(1002.5, [.processes: 260])  // still over: the ladder continues where it was
        #expect(persisting.actions == ["0 warn", "30 throttle", "1002 suspend", "1002 terminate"])
    }

    // MARK: Policy and scope

    @Test func customGroupDelaysShortenTheLadder() {
        let quick = QuotaGroup(
            name: "quick", description: "", limits: Self.heavy, totals: [:],
            escalation: EscalationPolicy(
                delays: [.warn: .zero, .throttle: .seconds(1), .suspend: .seconds(2), .terminate: .seconds(3)],
                terminationGrace: .seconds(1)))
        var run = LadderRun(limits: quick.limits, settings: LadderSettings(policy: quick.escalation ?? .seed))
        run.hold([.processes: 260], from: 0, through: 10)
        #expect(run.actions == ["0 warn", "1 throttle", "2 suspend", "3 terminate"])
        #expect(run.log.last?.command == .terminate(run.violation(.processes, 260), grace: .seconds(1)))

        let allOneSecond = EscalationPolicy(
            delays: Dictionary(uniqueKeysWithValues: EnforcementAction.allCases.map { ($0, Duration.seconds(1)) }),
            terminationGrace: .seconds(5))
        var same = LadderRun(limits: Self.heavy, settings: LadderSettings(policy: allOneSecond))
        same.hold([.processes: 260], from: 0, through: 10, every: 0.5)
        #expect(same.actions == ["1 warn", "1 throttle", "1 suspend", "1 terminate"])
    }

    @Test func aMissingDelayMeansRightAfterThePreviousStep() {
        let policy = EscalationPolicy(delays: [.throttle: .seconds(10)], terminationGrace: .seconds(5))
        var run = LadderRun(limits: Self.heavy, settings: LadderSettings(policy: policy))
        run.hold([.processes: 260], from: 0, through: 20)
        #expect(run.actions == ["0 warn", "10 throttle", "10 suspend", "10 terminate"])
    }

    @Test func violationsOfAnotherAgentAreIgnored() {
        var run = LadderRun(limits: Self.heavy)
        let other = Violation(agent: "agent-2", resource: .processes, kind: .hard, current: 260, limit: 200)
        for time in stride(from: 0.0, through: 700, by: 1) { run.observe(time, violations: [other]) }
        #expect(run.log.isEmpty && run.ladder.episodes.isEmpty && run.nextDue == nil)
    }

    @Test func aResourceWithoutALimitDoesNothing() {
        var run = LadderRun(limits: LimitSet([.memory: ResourceLimit(soft: 100, hard: 200, action: .terminate)]))
        let files = Violation(agent: Self.agent, resource: .files, kind: .hard, current: 900, limit: 100)
        for time in stride(from: 0.0, through: 700, by: 1) { run.observe(time, violations: [files]) }
        run.idle(from: 701, through: 710)
        #expect(run.log.isEmpty)
        #expect(run.ladder.episodes.isEmpty && run.ladder.throttled.isEmpty)
    }

    @Test func noteThrottleFailedLeavesNothingToRestore() {
        var run = LadderRun(limits: QuotaGroup.standard.limits)
        run.hold([.cpu: 39], from: 0, through: 30)
        run.ladder.noteThrottleFailed(.cpu, factor: 0.85)
        #expect(run.ladder.throttled.isEmpty)
        run.hold([.cpu: 39], from: 31, through: 40)
        run.idle(from: 41, through: 60)
        #expect(run.actions == ["0 warn", "30 throttle"])
        // Reporting a failure for a resource that is not throttled changes nothing.
        run.ladder.noteThrottleFailed(.memory, factor: 0.5)
        #expect(run.ladder.throttled.isEmpty)
    }
}
