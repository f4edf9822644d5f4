import CorralCore
import Foundation
import Testing

/// Priority → the kernel's proportional controls (`Priority`).
@Suite("Priority")
struct PriorityTests {
    @Test func weightsDoublePerStepAndFiveIsTheKernelDefault() {
        let weights = Priority.range.map { Priority(rawValue: $0)!.weight }
        #expect(weights == [3, 6, 13, 25, 50, 100, 200, 400, 800, 1600, 3200])
        // Inside the kernel's 1…10000 for cpu.weight and io.weight.
        #expect(weights.allSatisfy { (1...10000).contains($0) })
        #expect(Priority.standard.weight == 100)
    }

    @Test func protectionGrowsAboveFiveOnly() {
        let soft = 200_000_000.0
        let lows = Priority.range.map { Priority(rawValue: $0)!.memoryLow(soft: soft) }
        #expect(lows == [0, 0, 0, 0, 0, 0, 40_000_000, 80_000_000, 120_000_000, 160_000_000, 200_000_000])
        #expect(Priority(rawValue: 10)!.memoryLow(soft: 0) == 0)
    }

    @Test func aGroupClaimsItsAgentsProtectionUpToItsTotal() {
        #expect(Priority.groupProtection(agentLows: [40, 60], total: nil) == 100)
        #expect(Priority.groupProtection(agentLows: [40, 60], total: 80) == 80)
        #expect(Priority.groupProtection(agentLows: [], total: 80) == 0)
    }

    @Test func outOfRangeIsRefusedEverywhere() throws {
        #expect(Priority(rawValue: -1) == nil && Priority(rawValue: 11) == nil)
        #expect(Priority.parse(" 7 ") == Priority(rawValue: 7) && Priority.parse("high") == nil && Priority.parse("5.5") == nil)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Priority.self, from: Data("12".utf8)) }
        #expect(try JSONDecoder().decode(Priority.self, from: Data("0".utf8)) == Priority(rawValue: 0))
        #expect(String(decoding: try JSONEncoder().encode(Priority(rawValue: 9)!), as: UTF8.self) == "9")
    }

    @Test func settingsCarryPriorityOnlyWhenItIsNotTheDefault() {
        var limits = LimitSet()
        limits[.memory] = ResourceLimit(soft: 100, hard: 200, action: .warn)
        let plain = CgroupSettings(agentLimits: limits)
        #expect(plain.cpuWeight == nil && plain.memoryLow == nil && plain.ioWeight == nil)
        let high = CgroupSettings(agentLimits: limits, priority: Priority(rawValue: 10)!)
        #expect(high.cpuWeight == 3200 && high.ioWeight == 3200 && high.memoryLow == .limit(100))
        #expect(high.writes.map(\.file).contains(.memoryLow) && high.controllers.contains(.cpu))
        // A live change back to 5 writes the defaults.
        var reset = CgroupSettings()
        reset.applyPriority(.standard, memorySoft: 100, always: true)
        #expect(reset.writes.map { "\($0.file.rawValue)=\($0.value)" } == ["memory.low=0", "cpu.weight=100", "io.weight=100"])
    }

    @Test func recordsAndGroupsFromBeforePrioritiesDecodeWithTheDefault() throws {
        let group = try JSONDecoder().decode(
            QuotaGroup.self, from: Data(#"{"name":"g","description":"","limits":{},"totals":{}}"#.utf8))
        #expect(group.priority == .standard)
        let record = AgentRecord(
            id: "a", group: "g", state: .running, origin: .launched, pid: 1, command: ["x"], limits: LimitSet(), cgroup: "/c",
            createdAt: Timestamp(milliseconds: 0), priority: Priority(rawValue: 2)!, priorityIsOwn: true)
        let decoded = try JSONDecoder().decode(AgentRecord.self, from: try JSONEncoder().encode(record))
        #expect(decoded == record)
        var old = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(record)) as! [String: Any]
        old["priority"] = nil
        old["priorityIsOwn"] = nil
        let legacy = try JSONDecoder().decode(AgentRecord.self, from: try JSONSerialization.data(withJSONObject: old))
        #expect(legacy.priority == .standard && !legacy.priorityIsOwn)
    }
}
