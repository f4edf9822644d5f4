import CorralCgroup
import CorralCore
import CorralTestSupport
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

    /// The sums from scratch: what `committed` and `memoryLows` must equal.
    static func walked(_ registry: AgentRegistry) -> ([String: CapacityReport.GroupSums], [String: Int64]) {
        var sums: [String: CapacityReport.GroupSums] = [:]
        var lows: [String: Int64] = [:]
        registry.forEachLive { _, agent in
            sums[agent.record.group, default: .init()].add(limits: agent.record.limits, usage: [:])
            lows[agent.record.group, default: 0] += agent.record.priority.memoryLow(soft: agent.record.limits[.memory]?.soft ?? 0)
        }
        return (sums, lows)
    }

    @Test("the committed limits and memory.low by group follow every start, change, end and removal without a walk")
    func committedSumsFollowChanges() {
        var registry = AgentRegistry()
        var generator = SeededGenerator(seed: 15)
        let groups = ["lightweight_agent", "standard_agent", "heavy_computation_agent"]
        for step in 0..<400 {
            let id = "a\(Int.random(in: 0..<25, using: &generator))"
            switch Int.random(in: 0..<6, using: &generator) {
            case 0, 1:
                var agent = Self.agent(id)
                agent.record.group = groups.randomElement(using: &generator)!
                agent.record.limits = LimitSet([
                    .memory: ResourceLimit(
                        soft: Double(Int.random(in: 1...64, using: &generator)) * 1_048_576, hard: 128 * 1_048_576, action: .terminate),
                    .cpu: ResourceLimit(soft: 12.5, hard: Double(Int.random(in: 1...400, using: &generator)) / 3, action: .throttle),
                ])
                registry[id] = agent
            case 2: registry.update(id) { $0.record.limits[.processes] = ResourceLimit(soft: 8, hard: 16, action: .suspend) }
            case 3: registry.update(id) { $0.record.priority = Priority(rawValue: Int.random(in: 1...9, using: &generator)) ?? .standard }
            case 4: registry.update(id) { $0.record.state = step % 2 == 0 ? .exited : .suspended }
            default: registry[id] = nil
            }
            let (sums, lows) = Self.walked(registry)
            for group in groups {
                let kept = registry.committed[group] ?? .init()
                let fresh = sums[group] ?? .init()
                #expect(kept.agents == fresh.agents, "step \(step), \(group)")
                for resource in CapacityReport.resources {
                    #expect(abs((kept.hard[resource] ?? 0) - (fresh.hard[resource] ?? 0)) < 1e-6, "step \(step), \(group) \(resource)")
                    #expect(abs((kept.soft[resource] ?? 0) - (fresh.soft[resource] ?? 0)) < 1e-6, "step \(step), \(group) \(resource)")
                }
                #expect((registry.memoryLows[group] ?? 0) == (lows[group] ?? 0), "step \(step), \(group)")
            }
        }
    }

    /// The capacity's usage sums place each resource where `CapacityReport.resources` has it.
    @Test func theUsageSumsFollowTheCapacitysResources() {
        for resource in Resource.allCases {
            #expect(Engine.UsedByGroup.index(of: resource) == CapacityReport.resources.firstIndex(of: resource), "\(resource)")
        }
    }
}
