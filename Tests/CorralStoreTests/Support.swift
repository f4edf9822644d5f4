import CorralCore
import Foundation

@testable import CorralStore

/// A directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("corral-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    var database: String { path + "/state.db" }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Values of every stored type, as the engine makes them.
enum Sample {
    static let t0 = Timestamp(iso8601: "2026-11-29T09:50:00.123Z")!

    static func agent(
        _ id: String = "crawler-1", group: QuotaGroup = .standard, state: AgentState = .running, createdAt: Timestamp = t0
    ) -> AgentRecord {
        AgentRecord(
            id: id, group: group.name, state: state, origin: .launched, pid: 4242,
            command: ["/usr/bin/python3", "-m", "crawler", "--url=https://example.org/ä"],
            limits: group.limits.applying([.memory: LimitOverride(hard: 64_000_000)]),
            overrides: [.memory: LimitOverride(hard: 64_000_000), .cpu: LimitOverride(action: .scaleDown)],
            cgroup: "/sys/fs/cgroup/corral/\(group.name)/\(id)", createdAt: createdAt, priority: Priority(rawValue: 8)!,
            priorityIsOwn: true)
    }

    static func record(agent: String = "crawler-1", at: Timestamp = t0, action: EnforcementAction = .throttle, index: Int = 0)
        -> EnforcementRecord
    {
        EnforcementRecord(
            violation: Violation(agent: agent, resource: .cpu, kind: .hard, current: 45.5 + Double(index), limit: 30),
            action: action, at: at, succeeded: index % 3 != 0, error: index % 3 == 0 ? "EBUSY: cgroup busy" : nil,
            details: "cpu.max 30000 100000 → 15000 100000 (#\(index))")
    }

    /// A ladder part-way up its steps: memory warned and throttled, processes
    /// warned, throttled and asked to scale down, cpu only just seen.
    static func ladderMidEscalation(agent: String = "crawler-1") -> (AgentLadder, LimitSet, LadderSettings) {
        let limits = QuotaGroup.standard.limits
        let settings = LadderSettings()
        var ladder = AgentLadder(agent: agent)
        func observe(_ at: Timestamp, cpu: Bool) {
            var violations = [
                Violation(agent: agent, resource: .memory, kind: .hard, current: 600_000_000, limit: 500_000_000),
                Violation(agent: agent, resource: .processes, kind: .hard, current: 130, limit: 100),
            ]
            if cpu { violations.append(Violation(agent: agent, resource: .cpu, kind: .soft, current: 20, limit: 15)) }
            ladder.observe(violations, usage: [.memory: 600_000_000, .processes: 130, .cpu: 20], at: at)
            _ = ladder.advance(to: at, limits: limits, settings: settings)
        }
        observe(t0, cpu: false)
        observe(t0 + .seconds(2), cpu: false)
        observe(t0 + .seconds(31), cpu: true)
        return (ladder, limits, settings)
    }

    /// Durations in whole milliseconds: `EscalationPolicy` stores them as
    /// text ("1500ms") at that precision.
    static let groupWithEscalation = QuotaGroup(
        name: "batch_agent", description: "Batch jobs, updated live",
        limits: LimitSet([
            .memory: ResourceLimit(soft: 300_000_000, hard: 600_000_000, burst: 450_000_000, action: .scaleDown),
            .cpu: ResourceLimit(soft: 50, hard: 100, burst: 150, action: .throttle),
        ]),
        totals: [.memory: 2_000_000_000, .cpu: 400, .processes: 300],
        escalation: EscalationPolicy(
            delays: [
                .warn: .zero, .throttle: .milliseconds(1500), .suspend: .seconds(90), .terminate: .seconds(600),
                .scaleDown: .milliseconds(250), .migrate: .milliseconds(7), .custom: .zero,
            ],
            terminationGrace: .milliseconds(2500)))
}
