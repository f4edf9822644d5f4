import CorralCore
import Testing

@testable import CorralServer

/// systemd's STATUS= line: agents running and suspended, the last action with
/// its real outcome, a failed reload until the next good one.
@Suite struct ServiceStatusTests {
    func agent(_ id: String, _ state: AgentState) -> AgentRecord {
        AgentRecord(
            id: id, group: "standard_agent", state: state, origin: .launched, pid: 100, command: ["sleep"], limits: LimitSet(),
            cgroup: "/standard_agent/\(id)", createdAt: Timestamp(milliseconds: 0))
    }

    @Test func theLineCountsAgentsAndNamesTheLastAction() {
        var status = ServiceStatus()
        #expect(status.line == "0 agents running, 0 suspended")
        status.count([agent("a1", .running), agent("a2", .starting), agent("a3", .suspended)])
        #expect(status.line == "2 agents running, 1 suspended")
        status.count([agent("a1", .running)])
        #expect(status.line == "1 agent running, 0 suspended")
        let violation = Violation(agent: "a1", resource: .cpu, kind: .hard, current: 40, limit: 30)
        status.note(
            EnforcementRecord(
                violation: violation, action: .throttle, at: Timestamp(milliseconds: 3_723_000), succeeded: true, details: "x"))
        #expect(status.line == "1 agent running, 0 suspended; last action: throttle a1 cpu: ok at 01:02:03 UTC")
        status.configurationProblem = "/etc/corral/corral.yaml:3:1: unknown key 'grups'\nfix: …"
        #expect(!status.line.contains("\n"))
        #expect(status.line.hasSuffix("configuration NOT reloaded: /etc/corral/corral.yaml:3:1: unknown key 'grups' fix: …"))
    }
}
