import CorralCore
import Testing

/// A violation that changes kind mid-episode: each kind's steps count their
/// delays from when that kind was reached, and each kind gets its warning.
@Suite("Ladder: kinds reached during an episode")
struct LadderKindTests {
    let limits = LimitSet([.memory: ResourceLimit(soft: 100, hard: 200, action: .terminate)])

    @Test func hardStepsCountFromWhenTheViolationTurnedHard() {
        var run = LadderRun(limits: limits)
        var fired: [(Double, LadderCommand)] = []
        // Soft for 400 s, then hard: suspend (300 s) and terminate (600 s) count from 400 s.
        for second in stride(from: 0.0, through: 1100, by: 1) {
            let usage: Double = second < 400 ? 150 : 250
            for command in run.observe(second, [.memory: usage]) { fired.append((second, command)) }
        }
        let actions = fired.map { ($0.0, $0.1.action) }
        #expect(actions.map(\.1) == [.warn, .warn, .throttle, .suspend, .terminate])
        #expect(actions.map(\.0) == [0, 400, 430, 700, 1000])
    }

    @Test func theHardWarningIsNotLostAfterASoftOne() {
        var run = LadderRun(limits: limits)
        _ = run.observe(0, [.memory: 150])
        let commands = run.observe(1, [.memory: 250])
        #expect(commands.contains { if case .warn(let violation) = $0 { violation.kind == .hard } else { false } })
    }

    @Test func usageAtAKernelCapIsAHardViolation() {
        let pids = UsageReading(resource: .processes, usage: 20)
        #expect(pids.atKernelCap(20))
        #expect(pids.violation(agent: "a", limit: ResourceLimit(soft: 10, hard: 20, action: .suspend))?.kind == .hard)
        let memory = UsageReading(resource: .memory, usage: 99_000_000)
        #expect(memory.violation(agent: "a", limit: ResourceLimit(soft: 50_000_000, hard: 100_000_000, action: .warn))?.kind == .hard)
        let below = UsageReading(resource: .memory, usage: 90_000_000)
        #expect(below.violation(agent: "a", limit: ResourceLimit(soft: 50_000_000, hard: 100_000_000, action: .warn))?.kind == .soft)
        #expect(!UsageReading(resource: .cpu, usage: 30).atKernelCap(30))
    }
}
