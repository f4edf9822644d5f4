import CorralCore
import Testing

@testable import CorralStore

@Suite("Stored values come back equal")
struct RoundTripTests {
    @Test func anAgentRoundTripsWithEveryField() throws {
        let store = try CorralStore.inMemory()
        var agent = Sample.agent()
        try store.save(agent)
        #expect(try store.agent(id: agent.id) == agent)

        agent.state = .terminated
        agent.pid = nil
        agent.endedAt = Sample.t0 + .seconds(600)
        agent.exitStatus = -9
        agent.endReason = "terminated: memory hard limit"
        agent.overrides = [:]
        try store.save(agent)
        #expect(try store.agent(id: agent.id) == agent)
        #expect(try store.agents().count == 1)
        #expect(try store.agent(id: "nobody") == nil)
    }

    @Test func anEnforcementRecordRoundTripsWithItsOutcome() throws {
        let store = try CorralStore.inMemory()
        for (index, action) in EnforcementAction.allCases.enumerated() {
            let record = Sample.record(action: action, index: index)
            let stored = try store.append(record)
            var expected = record
            expected.id = stored.id
            #expect(stored == expected)
            #expect(try store.history(afterID: stored.id! - 1, limit: 1) == [expected])
        }
    }

    /// SQLite stores NaN as NULL; it must come back as NaN, not fail or become 0.
    @Test func nanAndInfiniteAmountsSurvive() throws {
        let store = try CorralStore.inMemory()
        var record = Sample.record()
        record.current = .nan
        record.limit = .infinity
        let stored = try store.append(record)
        let read = try #require(try store.history().first)
        #expect(read.id == stored.id)
        #expect(read.current.isNaN)
        #expect(read.limit == .infinity)
    }

    @Test func aLadderMidEscalationRoundTripsAndContinuesTheSame() throws {
        let store = try CorralStore.inMemory()
        let (ladder, limits, settings) = Sample.ladderMidEscalation()
        #expect(!ladder.episodes.isEmpty)
        #expect(ladder.throttled[.memory] != nil)
        #expect(ladder.scaleDowns[.processes] != nil)
        #expect(!ladder.lastWarned.isEmpty)
        try store.save(Sample.agent())
        try store.save(ladder: ladder)

        var restored = try #require(try store.ladder(agent: ladder.agent))
        #expect(restored == ladder)
        #expect(try store.ladders() == [ladder.agent: ladder])

        // The restored ladder fires exactly what the original would have.
        var original = ladder
        for seconds in [40, 70, 400, 700] {
            let now = Sample.t0 + .seconds(Int64(seconds))
            let seen = [Violation(agent: ladder.agent, resource: .memory, kind: .hard, current: 610_000_000, limit: 500_000_000)]
            original.observe(seen, usage: [.memory: 610_000_000], at: now)
            restored.observe(seen, usage: [.memory: 610_000_000], at: now)
            #expect(
                restored.advance(to: now, limits: limits, settings: settings)
                    == original.advance(to: now, limits: limits, settings: settings))
        }
        #expect(restored == original)
    }

    /// `EscalationPolicy.delays` is keyed by `EnforcementAction`, whose
    /// `scale_down` a snake_case key decoding strategy would turn into
    /// "scaleDown" and fail on.
    @Test func aGroupWithEscalationDurationsRoundTrips() throws {
        let store = try CorralStore.inMemory()
        let group = Sample.groupWithEscalation
        try store.save(group: group)
        try store.save(group: QuotaGroup.lightweight)
        #expect(try store.groupOverrides() == [group.name: group, QuotaGroup.lightweight.name: QuotaGroup.lightweight])

        var changed = group
        changed.totals[.cpu] = 800
        changed.escalation = nil
        try store.save(group: changed)
        #expect(try store.groupOverrides()[group.name] == changed)

        #expect(try store.deleteGroupOverride(name: group.name))
        #expect(try !store.deleteGroupOverride(name: group.name))
        #expect(try store.groupOverrides().keys.sorted() == [QuotaGroup.lightweight.name])
    }

    @Test func savingAnAgentAgainKeepsItsLadder() throws {
        let store = try CorralStore.inMemory()
        var agent = Sample.agent()
        try store.save(agent)
        try store.save(ladder: AgentLadder(agent: agent.id))
        agent.state = .suspended
        try store.save(agent)
        #expect(try store.ladder(agent: agent.id) == AgentLadder(agent: agent.id))
    }

    @Test func deletingAnAgentRemovesItsLadderAndKeepsItsHistory() throws {
        let store = try CorralStore.inMemory()
        try store.save(Sample.agent("a"))
        try store.save(Sample.agent("b"))
        try store.save(ladder: AgentLadder(agent: "a"))
        try store.save(ladder: AgentLadder(agent: "b"))
        try store.append(Sample.record(agent: "a"))

        #expect(try store.delete(agent: "a"))
        #expect(try !store.delete(agent: "a"))
        #expect(try store.agent(id: "a") == nil)
        #expect(try store.ladder(agent: "a") == nil)
        #expect(try store.ladders().keys.sorted() == ["b"])
        #expect(try store.history(agent: "a").count == 1)

        #expect(try store.deleteLadder(agent: "b"))
        #expect(try !store.deleteLadder(agent: "b"))
        #expect(try store.agent(id: "b") != nil)
    }

    @Test func aLadderForAnUnknownAgentIsRefusedClearly() throws {
        let store = try CorralStore.inMemory()
        let error = #expect(throws: StoreError.self) { try store.save(ladder: AgentLadder(agent: "ghost")) }
        #expect(error?.code == .unknownAgent)
        #expect(error?.message.contains("saving the escalation state of agent 'ghost' failed") == true)
        #expect(error?.message.contains("not in the store") == true)
        #expect(error?.fix != nil)
        #expect(try store.ladders().isEmpty)
    }

    /// The engine's first commit of a new agent may save its ladder first:
    /// the agent only has to be there at commit.
    @Test func aNewAgentsLadderMayBeSavedBeforeItInOneTransaction() throws {
        let store = try CorralStore.inMemory()
        let (ladder, _, _) = Sample.ladderMidEscalation()
        try store.write { tx in
            try tx.append(Sample.record())
            try tx.save(ladder: ladder)
            try tx.save(Sample.agent())
        }
        #expect(try store.ladder(agent: ladder.agent) == ladder)
        #expect(try store.history().count == 1)
    }

    /// A transaction that would leave a ladder without its agent writes nothing.
    @Test func aTransactionLeavingAnOrphanLadderWritesNothing() throws {
        let store = try CorralStore.inMemory()
        let error = #expect(throws: StoreError.self) {
            try store.write { tx in
                try tx.append(Sample.record(agent: "ghost"))
                try tx.save(ladder: AgentLadder(agent: "ghost"))
            }
        }
        #expect(error?.code == .unknownAgent)
        #expect(try store.history().isEmpty)
    }

    @Test func agentsAreFoundByStateAndGroup() throws {
        let store = try CorralStore.inMemory()
        let agents = [
            Sample.agent("a", group: .standard, state: .running, createdAt: Sample.t0),
            Sample.agent("b", group: .lightweight, state: .suspended, createdAt: Sample.t0 + .seconds(1)),
            Sample.agent("c", group: .standard, state: .exited, createdAt: Sample.t0 + .seconds(2)),
            Sample.agent("d", group: .standard, state: .starting, createdAt: Sample.t0 + .seconds(3)),
        ]
        for agent in agents.reversed() { try store.save(agent) }

        let live = Set(AgentState.allCases.filter(\.isLive))
        #expect(try store.agents().map(\.id) == ["a", "b", "c", "d"])
        #expect(try store.agents(states: live).map(\.id) == ["a", "b", "d"])
        #expect(try store.agents(states: [.exited, .lost]).map(\.id) == ["c"])
        #expect(try store.agents(states: []).isEmpty)
        #expect(try store.agents(group: "standard_agent").map(\.id) == ["a", "c", "d"])
        #expect(try store.agents(states: live, group: "standard_agent").map(\.id) == ["a", "d"])
        #expect(try store.agents(group: "nope").isEmpty)
    }

    @Test func agentsArePagedInIDOrder() throws {
        let store = try CorralStore.inMemory()
        // Created in the opposite order of their ids: a page follows the id, not the age.
        for (index, id) in ["e", "d", "c", "b", "a"].enumerated() {
            try store.save(Sample.agent(id, state: id == "c" ? .exited : .running, createdAt: Sample.t0 + .seconds(Int64(index))))
        }
        let live = Set(AgentState.allCases.filter(\.isLive))
        #expect(try store.agents(after: nil, limit: 2).map(\.id) == ["a", "b"])
        #expect(try store.agents(after: "b", limit: 2).map(\.id) == ["c", "d"])
        #expect(try store.agents(after: "d", limit: 2).map(\.id) == ["e"])
        #expect(try store.agents(after: "e", limit: 2).isEmpty)
        #expect(try store.agents(after: "a", limit: nil).map(\.id) == ["b", "c", "d", "e"])
        #expect(try store.agents(after: "b", limit: 2, states: live).map(\.id) == ["d", "e"])
        #expect(try store.agents(after: nil, limit: 0).isEmpty)
        // Left out in the query (the engine's list knows newer rows of these): a page fills with the others.
        #expect(try store.agents(after: nil, limit: 2, excluding: ["a", "c"]).map(\.id) == ["b", "d"])
        #expect(try store.agents(after: "b", limit: nil, states: live, excluding: ["d", "zz"]).map(\.id) == ["e"])
        #expect(try store.agents(after: nil, limit: nil, excluding: ["a", "b", "c", "d", "e"]).isEmpty)
        // An id that JSON must escape is matched exactly.
        try store.save(Sample.agent("q\"\\x", state: .running, createdAt: Sample.t0))
        #expect(try store.agents(after: nil, limit: nil, excluding: ["q\"\\x", "a", "b"]).map(\.id) == ["c", "d", "e"])
    }
}

/// The memo of encoded columns gives exactly what encoding gives, for the
/// value asked (never a neighbour's), and keeps at most its capacity.
@Suite struct EncodedJSONMemoTests {
    @Test func sameTextAsEncodingAndBounded() throws {
        let memo = EncodedJSONMemo<LimitSet>(capacity: 3)
        let sets = (1...5).map { n in
            LimitSet([.memory: ResourceLimit(soft: Double(n) * 1e6, hard: Double(n) * 2e6, action: .throttle)])
        }
        for set in sets + sets.reversed() + sets {
            #expect(try memo.encode(set) == StoreJSON.encode(set))
        }
        #expect(memo.count == 3)
        let policy = SecurityPolicy(user: "nobody", seccomp: SeccompPolicy(base: .strict, deny: ["ptrace"]))
        let policies = EncodedJSONMemo<SecurityPolicy>()
        #expect(try policies.encode(policy) == StoreJSON.encode(policy))
        #expect(try policies.encode(.standard) == StoreJSON.encode(SecurityPolicy.standard))
        #expect(try policies.encode(policy) == StoreJSON.encode(policy))
        #expect(policies.count == 2)
    }
}
