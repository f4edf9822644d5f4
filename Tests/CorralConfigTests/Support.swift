import CorralConfig
import CorralCore
import Testing

/// The issues `text` is rejected with; records a test issue (and returns
/// none) when it is accepted.
func issues(of text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigIssue] {
    do {
        let configuration = try ConfigLoader.load(text, file: "test.yaml")
        Issue.record("accepted, expected errors; groups: \(configuration.groupNames)", sourceLocation: sourceLocation)
        return []
    } catch {
        #expect(error.file == "test.yaml", sourceLocation: sourceLocation)
        return error.issues
    }
}

/// The configuration `text` yields; records a test issue (and returns nil) when rejected.
func configuration(of text: String, sourceLocation: SourceLocation = #_sourceLocation) -> CorralConfiguration? {
    do {
        return try ConfigLoader.load(text, file: "test.yaml")
    } catch {
        Issue.record("rejected: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Sizes as the tests write them.
let oneMB = 1_000_000.0
let oneMiB = 1_048_576.0
let oneGiB = 1_073_741_824.0

/// A complete file: every key of the schema, each with a value that differs from the built-in one.
let completeFile = """
    # Corral configuration: every key.
    cgroup_root: /sys/fs/cgroup/corral-test
    intervals:
      sampling: 500ms
      analytics: 2m
      analytics_window: 2h
    reservation:
      memory: 60%
      cpu: 85%
      processes: 95
    escalation:
      delays: {warn: 0s, throttle: 10s, suspend: 2m, terminate: 15m, scale_down: 1s, migrate: 3s, custom: 4s}
      termination_grace: 7s
    groups:
      standard_agent:                 # redefine part of a built-in group
        description: Redefined standard agents
        limits:
          memory: {hard: 1G}
          cpu: {soft: 20%, burst: 45%}
        totals: {memory: 6G}
      gpu_batch:                      # a new group
        description: Batch jobs
        limits:
          memory: {soft: 4G, hard: 6G, burst: 5G, action: suspend}
          cpu: {soft: 150%, hard: 200%, burst: 300%, action: throttle}
          processes: {soft: 200, hard: 400, action: terminate}
          files: {soft: 1000, hard: 4096, action: warn}
          connections: {soft: 50, hard: 100, action: custom}
          network: {soft: 10MB/s, hard: 20MB/s, action: throttle}
          disk: {soft: 50MB, hard: 100MB, action: migrate}
        totals: {memory: 24G, cpu: 800%, processes: 2000}
        escalation:
          delays: {throttle: 1s, suspend: 30s}
          termination_grace: 20s
    agents:
      crawler-1:
        group: lightweight_agent
        limits:
          processes: {hard: 40}
      trainer.v2:
        group: gpu_batch
        limits:
          memory:
            soft: 5G
            hard: 7G
            burst: 6G
          cpu: {action: scale_down}
      anonymous_1: {}

    """

/// A 64-bit generator with a fixed seed (SplitMix64), so a failing fuzz case reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
