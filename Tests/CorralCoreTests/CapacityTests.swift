import CorralCore
import Testing

/// Capacity and admission arithmetic (`CapacityReport`).
@Suite("Capacity")
struct CapacityTests {
    static let host = HostCapacity(memoryBytes: 8_000_000_000, cpus: 4, pidMax: 100_000)

    static func limits(memory: Double, cpu: Double = 30, processes: Double = 100) -> LimitSet {
        LimitSet([
            .memory: ResourceLimit(soft: memory / 2, hard: memory, action: .warn),
            .cpu: ResourceLimit(soft: cpu / 2, hard: cpu, action: .throttle),
            .processes: ResourceLimit(soft: processes / 2, hard: processes, action: .warn),
        ])
    }

    static func report(_ agents: [CapacityReport.Agent], admission: AdmissionPolicy = .allow) -> CapacityReport {
        CapacityReport.compute(
            host: host, allocatable: SystemReservation.seed.allocatable(for: host),
            groups: [.standard, .lightweight], agents: agents, admission: admission)
    }

    @Test func theViewSumsLimitsAndUsagePerGroupAndOverall() throws {
        let agents = [
            CapacityReport.Agent(
                group: "standard_agent", limits: Self.limits(memory: 500_000_000), usage: [.memory: 100_000_000, .cpu: 12]),
            CapacityReport.Agent(group: "standard_agent", limits: Self.limits(memory: 300_000_000), usage: [.memory: 50_000_000]),
            CapacityReport.Agent(group: "lightweight_agent", limits: Self.limits(memory: 100_000_000), usage: [.processes: 3]),
        ]
        let report = Self.report(agents)
        let memory = try #require(report[.memory])
        // 75% of 8 GB is allocatable, the rest reserved.
        #expect(memory.host == 8_000_000_000 && memory.allocatable == 6_000_000_000 && memory.reserved == 2_000_000_000)
        #expect(memory.committedHard == 900_000_000 && memory.committedSoft == 450_000_000)
        #expect(memory.used == 150_000_000 && memory.available == 5_850_000_000)
        let standard = try #require(memory.groups.first { $0.group == "standard_agent" })
        #expect(standard.agents == 2 && standard.committedHard == 800_000_000 && standard.used == 150_000_000)
        #expect(standard.total == 4_000_000_000)
        let cpu = try #require(report[.cpu])
        #expect(cpu.host == 400 && cpu.allocatable == 320 && cpu.committedHard == 90 && cpu.used == 12)
        #expect(report[.processes]?.used == 3 && report[.processes]?.allocatable == 90_000)
        #expect(report.resources.map(\.resource) == [.memory, .cpu, .processes])
    }

    @Test func availableNeverGoesNegativeAndAllocatableNeverExceedsTheHost() throws {
        let agents = [CapacityReport.Agent(group: "standard_agent", limits: LimitSet(), usage: [.memory: 7_000_000_000])]
        #expect(Self.report(agents)[.memory]?.available == 0)
        let bigger = CapacityReport.compute(
            host: Self.host, allocatable: [.memory: 16_000_000_000], groups: [], agents: [], admission: .allow)
        #expect(bigger[.memory]?.allocatable == 8_000_000_000 && bigger[.memory]?.reserved == 0)
    }

    @Test func admissionNamesTheGroupTotalAndTheAllocatableWithTheNumbers() throws {
        // Seven standard agents at 500 MB hard commit 3.5 GB of the group's 4 GB.
        let seven = Array(
            repeating: CapacityReport.Agent(group: "standard_agent", limits: Self.limits(memory: 500_000_000), usage: [:]), count: 7)
        let report = Self.report(seven)
        #expect(report.shortfalls(admitting: Self.limits(memory: 500_000_000), into: "standard_agent").isEmpty)
        let over = report.shortfalls(admitting: Self.limits(memory: 600_000_000), into: "standard_agent")
        #expect(
            over == [
                Shortfall(
                    resource: .memory, scope: .group("standard_agent"), committed: 3_500_000_000, adding: 600_000_000,
                    capacity: 4_000_000_000)
            ])
        #expect(over.first?.description == "memory: 3.3 GiB committed + 600 MB would exceed group standard_agent's total of 4 GB")
        // The same agent in another group fits its group but not the host's allocatable 6 GB.
        let huge = report.shortfalls(admitting: Self.limits(memory: 2_600_000_000), into: "lightweight_agent")
        #expect(huge.map(\.scope) == [.group("lightweight_agent"), .allocatable])
        #expect(huge.last?.description == "memory: 3.3 GiB committed + 2.4 GiB would exceed the host's allocatable 6 GB")
        // Resources the new agent does not limit are not checked.
        #expect(report.shortfalls(admitting: LimitSet(), into: "standard_agent").isEmpty)
    }
}
