import CorralConfig
import CorralCore
import Testing

@Suite("recovery and degradation_signal")
struct RecoveryConfigTests {
    @Test func recoveryPolicyAndSignals() throws {
        let configuration = try ConfigLoader.load(
            """
            intervals:
              history_retention: 2d
              idle_sampling: 30s
            escalation:
              degradation_signal: SIGUSR1
            recovery:
              stage_interval: 5s
              quiet_period: 10s
              usage_below: 70%
              thaw_suspended: false
            groups:
              quiet:
                limits:
                  memory: {soft: 10MB, hard: 20MB, action: warn}
                escalation:
                  degradation_signal: usr2
              silent:
                limits:
                  memory: {soft: 10MB, hard: 20MB, action: warn}
                escalation:
                  degradation_signal: none
            """)
        #expect(
            configuration.recovery
                == RecoveryPolicy(stageInterval: .seconds(5), quietPeriod: .seconds(10), usageBelow: 0.7, thawSuspended: false))
        #expect(configuration.escalation.degradationSignal == 10)
        #expect(configuration.intervals.historyRetention == .seconds(2 * 86_400))
        #expect(CorralConfiguration.builtIn.intervals.historyRetention == .seconds(7 * 86_400))
        #expect(configuration.intervals.adaptiveIdleSampling == .seconds(30))
        #expect(CorralConfiguration.builtIn.intervals.adaptiveIdleSampling == .seconds(10))
        let off = try ConfigLoader.load("intervals:\n  sampling: 2s\n  idle_sampling: 1s\n")
        #expect(off.intervals.adaptiveIdleSampling == nil, "no longer than sampling: off")
        #expect(configuration.escalation(for: "quiet").degradationSignal == 12)
        #expect(configuration.escalation(for: "silent").degradationSignal == nil)
        #expect(configuration.escalation(for: "standard_agent").degradationSignal == 10)
        #expect(CorralConfiguration.builtIn.recovery == .seed)
        #expect(CorralConfiguration.builtIn.escalation.degradationSignal == nil)
    }

    @Test(arguments: [
        ("recovery:\n  stage_interval: 0s\n", "must be greater than zero"),
        ("recovery:\n  quiet_period: soon\n", "recovery.quiet_period"),
        ("recovery:\n  usage_below: 0.8\n", "not a percentage"),
        ("recovery:\n  usage_below: 120%\n", "not a percentage"),
        ("recovery:\n  thaw_suspended: maybe\n", "not a boolean"),
        ("recovery:\n  stages: 3\n", "unknown key 'stages'"),
        ("escalation:\n  degradation_signal: SIGKILL\n", "not a notice signal"),
        ("escalation:\n  degradation_signal: [1]\n", "expected a single value"),
    ])
    func badRecovery(text: String, message: String) {
        #expect {
            try ConfigLoader.load(text)
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.issues.contains {
                ($0.message.contains(message) || $0.key.contains(message)) && $0.line >= 1 && $0.accepted != nil
            }
        }
    }
}
