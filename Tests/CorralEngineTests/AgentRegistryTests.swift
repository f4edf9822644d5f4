import CorralCgroup
import CorralCore
import Testing

@testable import CorralEngine

/// The registry's set of agents the timers look at: it follows every change,
/// so a tick walks the agents with something under way, not all of them.
@Suite("The agent table")
struct AgentRegistryTests {
    static func agent(_ id: String, state: AgentState = .running) -> ManagedAgent {
        ManagedAgent(
            record: AgentRecord(
                id: id, group: "standard_agent", state: state, origin: .launched, pid: 1, command: ["sleep"], limits: LimitSet(),
                cgroup: "/corral/standard_agent/\(id)", createdAt: Timestamp(milliseconds: 0)),
            leaf: CgroupPath(["corral", "standard_agent", id]))
    }

    @Test("the timed set holds exactly the live agents with a ladder, a grace or a freeze under way")
    func timedFollowsChanges() {
        var registry = AgentRegistry()
        for id in ["a", "b", "c", "d"] { registry[id] = Self.agent(id) }
        #expect(registry.timedIDs.isEmpty, "quiet agents: nothing for the timers")

        // A grace, set in place.
        registry.update("b") { $0.terminationDeadline = Timestamp(milliseconds: 5) }
        // An open ladder episode, written back whole.
        var c = registry["c"]!
        c.ladder.observe(
            [Violation(agent: "c", resource: .memory, kind: .hard, current: 2, limit: 1)], usage: [.memory: 2],
            at: Timestamp(milliseconds: 1))
        registry["c"] = c
        #expect(!c.ladder.isQuiet)
        #expect(registry.timedIDs == ["b", "c"])

        registry.update("b") { $0.terminationDeadline = nil }
        #expect(registry.timedIDs == ["c"], "the grace ended")
        registry.update("c") { $0.record.state = .exited }
        #expect(registry.timedIDs.isEmpty, "an ended agent has nothing due, whatever its ladder says")
        registry.update("d") { $0.terminationDeadline = Timestamp(milliseconds: 9) }
        registry["d"] = nil
        #expect(registry.timedIDs.isEmpty, "a removed agent leaves the set")
        #expect(registry.liveIDs == ["a", "b"])
    }
}
