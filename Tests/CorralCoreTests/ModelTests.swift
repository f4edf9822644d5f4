import CorralCore
import Testing

@Suite("Quota groups, limits, actions")
struct ModelTests {
    @Test func seedGroupsHaveTheSeedsNumbers() {
        let light = QuotaGroup.lightweight
        #expect(light.name == "lightweight_agent")
        #expect(light.limits[.memory] == ResourceLimit(soft: 50_000_000, hard: 100_000_000, action: .warn))
        #expect(light.limits[.cpu] == ResourceLimit(soft: 5, hard: 10, action: .throttle))
        #expect(light.limits[.processes] == ResourceLimit(soft: 10, hard: 20, action: .suspend))
        #expect(light.totals == [.memory: 1_000_000_000, .cpu: 200, .processes: 500])

        let standard = QuotaGroup.standard
        #expect(standard.limits[.memory] == ResourceLimit(soft: 200_000_000, hard: 500_000_000, action: .throttle))
        #expect(standard.limits[.cpu] == ResourceLimit(soft: 15, hard: 30, action: .throttle))
        #expect(standard.limits[.processes] == ResourceLimit(soft: 50, hard: 100, action: .scaleDown))
        #expect(standard.totals == [.memory: 4_000_000_000, .cpu: 600, .processes: 2000])

        let heavy = QuotaGroup.heavyComputation
        #expect(heavy.limits[.memory] == ResourceLimit(soft: 1_000_000_000, hard: 2_000_000_000, action: .suspend))
        #expect(heavy.limits[.cpu] == ResourceLimit(soft: 40, hard: 80, action: .scaleDown))
        #expect(heavy.limits[.processes] == ResourceLimit(soft: 100, hard: 200, action: .terminate))
        #expect(heavy.totals == [.memory: 8_000_000_000, .cpu: 1600, .processes: 1000])

        #expect(CorralConfiguration.builtIn.groupNames == ["heavy_computation_agent", "lightweight_agent", "standard_agent"])
        for group in QuotaGroup.seedGroups {
            for resource in group.limits.resources {
                #expect(group.limits[resource]!.problems(for: resource).isEmpty, "\(group.name) \(resource)")
            }
        }
    }

    @Test func seedEscalationDelays() {
        let policy = EscalationPolicy.seed
        #expect(policy.delay(for: .warn) == .zero)
        #expect(policy.delay(for: .throttle) == .seconds(30))
        #expect(policy.delay(for: .suspend) == .seconds(300))
        #expect(policy.delay(for: .terminate) == .seconds(600))
        #expect(policy.terminationGrace == .seconds(5))
        for action in EnforcementAction.allCases { _ = policy.delay(for: action) }
    }

    @Test func actionVocabularyIsOneClosedSet() {
        #expect(
            EnforcementAction.allCases.map(\.rawValue) == ["warn", "throttle", "suspend", "terminate", "scale_down", "migrate", "custom"])
        #expect(EnforcementAction(rawValue: "custom_handler") == nil)
        #expect(EnforcementAction.warn < .throttle)
        #expect(EnforcementAction.suspend < .terminate)
    }

    @Test func limitProblems() {
        #expect(ResourceLimit(soft: 600, hard: 500, action: .warn).problems(for: .memory).first?.contains("above the hard limit") == true)
        #expect(ResourceLimit(soft: -1, hard: 500, action: .warn).problems(for: .memory).first?.contains("negative") == true)
        #expect(!ResourceLimit(soft: 0, hard: 0, action: .warn).problems(for: .processes).isEmpty)
        #expect(!ResourceLimit(soft: 5, hard: 10, burst: 12, action: .warn).problems(for: .memory).isEmpty)
        #expect(ResourceLimit(soft: 5, hard: 10, burst: 8, action: .warn).problems(for: .memory).isEmpty)
        #expect(!ResourceLimit(soft: 5, hard: 10, burst: 8, action: .warn).problems(for: .cpu).isEmpty)
        #expect(ResourceLimit(soft: 5, hard: 10, burst: 20, action: .warn).problems(for: .cpu).isEmpty)
        #expect(!ResourceLimit(soft: 0.01, hard: 0.05, action: .warn).problems(for: .cpu).isEmpty)
        #expect(!ResourceLimit(soft: 1.5, hard: 3, action: .warn).problems(for: .processes).isEmpty)
    }

    @Test func overridesApplyFieldByField() {
        let base = LimitSet([.memory: ResourceLimit(soft: 200_000_000, hard: 500_000_000, action: .throttle)])
        let lowered = base.applying([.memory: LimitOverride(hard: 67_108_864)])
        #expect(lowered[.memory] == ResourceLimit(soft: 67_108_864, hard: 67_108_864, action: .throttle))
        let raised = base.applying([.memory: LimitOverride(soft: 300_000_000, hard: 1_073_741_824)])
        #expect(raised[.memory] == ResourceLimit(soft: 300_000_000, hard: 1_073_741_824, action: .throttle))
        let action = base.applying([.memory: LimitOverride(action: .suspend)])
        #expect(action[.memory]?.action == .suspend)
        let added = base.applying([.processes: LimitOverride(hard: 40)])
        #expect(added[.processes] == ResourceLimit(soft: 40, hard: 40, action: .warn))
    }

    @Test func configurationLimitsLayerGroupAgentFlags() {
        var configuration = CorralConfiguration.builtIn
        configuration.agents["crawler"] = AgentOverride(group: "lightweight_agent", limits: [.processes: LimitOverride(hard: 40)])
        let limits = configuration.limits(agent: "crawler", group: "lightweight_agent", flags: [.cpu: LimitOverride(hard: 20)])
        #expect(limits?[.processes]?.hard == 40)
        #expect(limits?[.cpu]?.hard == 20)
        #expect(limits?[.memory]?.hard == 100_000_000)
        #expect(configuration.limits(agent: "x", group: "nope") == nil)
    }
}

@Suite("Violations")
struct ViolationTests {
    let memory = ResourceLimit(soft: 100, hard: 200, action: .suspend)

    @Test(arguments: [(50.0, nil as ViolationKind?), (100, nil), (101, .soft), (200, .soft), (201, .hard)])
    func memoryKinds(usage: Double, kind: ViolationKind?) {
        #expect(Violation.classify(agent: "a", resource: .memory, usage: usage, limit: memory)?.kind == kind)
    }

    @Test func burstBandBetweenSoftAndHard() {
        let limit = ResourceLimit(soft: 100, hard: 200, burst: 150, action: .terminate)
        #expect(Violation.classify(agent: "a", resource: .processes, usage: 120, limit: limit)?.kind == .soft)
        let burst = Violation.classify(agent: "a", resource: .processes, usage: 160, limit: limit)
        #expect(burst?.kind == .burst)
        #expect(burst?.limit == 150)
        #expect(Violation.classify(agent: "a", resource: .processes, usage: 201, limit: limit)?.kind == .hard)
    }

    @Test func cpuBurstAboveHard() {
        let limit = ResourceLimit(soft: 15, hard: 30, burst: 45, action: .throttle)
        #expect(Violation.classify(agent: "a", resource: .cpu, usage: 20, limit: limit)?.kind == .soft)
        #expect(Violation.classify(agent: "a", resource: .cpu, usage: 40, limit: limit)?.kind == .burst)
        #expect(Violation.classify(agent: "a", resource: .cpu, usage: 50, limit: limit)?.kind == .hard)
    }

    @Test func kindLeadsToAction() {
        #expect(ViolationKind.soft.action(under: memory) == .warn)
        #expect(ViolationKind.burst.action(under: memory) == .throttle)
        #expect(ViolationKind.hard.action(under: memory) == .suspend)
    }

    @Test func excessRatio() {
        let violation = Violation(agent: "a", resource: .memory, kind: .hard, current: 300, limit: 200)
        #expect(violation.excessRatio == 0.5)
    }

    @Test func violationsOfASetMostSevereFirst() {
        let limits = QuotaGroup.standard.limits
        let found = limits.violations(agent: "a", usage: [.memory: 600_000_000, .cpu: 20, .processes: 10])
        #expect(found.map(\.kind) == [.hard, .soft])
        #expect(found.map(\.resource) == [.memory, .cpu])
    }
}

@Suite("cgroup settings")
struct SettingsTests {
    @Test(arguments: [
        (30.0, "30000 100000"), (10, "10000 100000"), (200, "200000 100000"), (0.5, "5000 1000000"),
        (0.1, "1000 1000000"), (1, "1000 100000"), (2.5, "2500 100000"),
    ])
    func cpuMaxFromPercent(percent: Double, text: String) {
        #expect(CPUMax(percent: percent).description == text)
    }

    @Test func cpuMaxParsing() {
        #expect(CPUMax(parsing: "max 100000\n") == CPUMax(quota: nil, period: 100_000))
        #expect(CPUMax(parsing: "30000 100000") == CPUMax(quota: 30000, period: 100_000))
        #expect(CPUMax(parsing: "30000") == nil)
        #expect(CPUMax(parsing: "-1 100000") == nil)
        #expect(CPUMax(percent: 30).percent == 30)
    }

    @Test func agentSettingsFromLimits() {
        let settings = CgroupSettings(agentLimits: QuotaGroup.lightweight.limits)
        #expect(settings.memoryHigh == .limit(50_000_000))
        #expect(settings.memoryMax == .limit(100_000_000))
        #expect(settings.memoryOOMGroup == true)
        #expect(settings.cpuMax == CPUMax(quota: 10000, period: 100_000))
        #expect(settings.cpuMaxBurst == nil)
        #expect(settings.pidsMax == .limit(20))
        #expect(settings.controllers == [.memory, .cpu, .pids])
        #expect(settings.writes.map(\.file) == [.memoryMax, .memoryHigh, .memoryOOMGroup, .cpuMax, .pidsMax])
    }

    @Test func cpuBurstIsResetBeforeCpuMaxAndClampedToQuota() {
        var limits = LimitSet()
        limits[.cpu] = ResourceLimit(soft: 10, hard: 20, burst: 30, action: .throttle)
        let settings = CgroupSettings(agentLimits: limits)
        #expect(settings.cpuMaxBurst == 10000)
        #expect(settings.writes.map(\.file) == [.cpuMaxBurst, .cpuMax, .cpuMaxBurst])
        #expect(settings.writes.map(\.value) == ["0", "20000 100000", "10000"])
        limits[.cpu] = ResourceLimit(soft: 10, hard: 20, burst: 100, action: .throttle)
        #expect(CgroupSettings(agentLimits: limits).cpuMaxBurst == 20000)
    }

    @Test func groupTotals() {
        let settings = QuotaGroup.standard.totalsSettings
        #expect(settings.memoryMax == .limit(4_000_000_000))
        #expect(settings.cpuMax?.description == "600000 100000")
        #expect(settings.pidsMax == .limit(2000))
        #expect(settings.memoryHigh == nil)
    }

    @Test func systemReservation() {
        let host = HostCapacity(memoryBytes: 24 << 30, cpus: 2, pidMax: 4_194_304)
        let settings = SystemReservation.seed.rootSettings(for: host)
        #expect(settings.memoryMax == .limit(Int64(18) << 30))
        #expect(settings.cpuMax?.description == "160000 100000")
        #expect(settings.pidsMax == .limit(3_774_873))
        #expect(SystemReservation.seed.allocatable(for: host)[.cpu] == 160)
    }

    @Test func cgroupValues() {
        #expect(CgroupValue(parsing: "max\n") == .max)
        #expect(CgroupValue(parsing: "104857600\n") == .limit(104_857_600))
        #expect(CgroupValue(parsing: "-1") == nil)
        #expect(CgroupValue(parsing: "lots") == nil)
        #expect(CgroupValue.limit(5).description == "5")
    }
}

@Suite("Names")
struct NameTests {
    @Test(arguments: ["a", "agent-1", "crawler.v2", "heavy_computation_agent", "A9", String(repeating: "x", count: 64)])
    func valid(name: String) {
        #expect(CgroupName.problem(with: name) == nil)
    }

    @Test(arguments: [
        "", ".", "..", "../etc", "a/b", "-rf", ".hidden", "_x", "sp ace", "tab\t", "nul\0x", "ünïcode",
        String(repeating: "x", count: 65), "supervisor", "a\nb",
    ])
    func invalid(name: String) {
        #expect(CgroupName.problem(with: name) != nil)
    }

    /// `--name memory.max` passed validation and then failed at mkdir (the
    /// kernel's file is already there), reported as "agent id in use".
    @Test(arguments: [
        ("memory.max", "memory.", "memory-max"), ("cgroup.procs", "cgroup.", "cgroup-procs"), ("cpu.stat", "cpu.", "cpu-stat"),
        ("cpuset.cpus", "cpuset.", "cpuset-cpus"), ("io.max", "io.", "io-max"), ("pids.max", "pids.", "pids-max"),
        ("hugetlb.2MB.max", "hugetlb.", "hugetlb-2MB.max"), ("rdma.max", "rdma.", "rdma-max"), ("misc.max", "misc.", "misc-max"),
        ("memory.my-agent", "memory.", "memory-my-agent"),
    ])
    func kernelFilePrefixesAreRefused(name: String, prefix: String, suggestion: String) throws {
        for what in ["agent id", "group name"] {
            let problem = try #require(CgroupName.problem(with: name, what: what))
            #expect(problem.hasPrefix("\(what) '\(name)' starts with '\(prefix)'"), "\(problem)")
            #expect(problem.contains("clash"), "\(problem)")
            #expect(problem.contains("e.g. '\(suggestion)'"), "\(problem)")
            #expect(CgroupName.isValid(suggestion), "\(suggestion)")
        }
    }

    @Test func theRuleNamesEveryPrefixAndTheReservedName() {
        for prefix in ["cgroup.", "memory.", "cpu.", "cpuset.", "io.", "pids.", "hugetlb.", "rdma.", "misc."] {
            #expect(CgroupName.ruleDescription.contains(prefix))
        }
        #expect(CgroupName.ruleDescription.contains("'supervisor'"))
        #expect(CgroupName.ruleDescription.contains(CgroupName.pattern))
    }

    /// Only the prefix with its dot is taken: names that merely begin with a
    /// controller's name, or carry a dot later, stay valid.
    @Test(arguments: [
        "memory", "memoryhog", "memory-hog", "cpu_bound", "io-heavy", "cgroups", "Memory.max", "agent.memory.max", "pidsx.max",
    ])
    func namesThatOnlyResembleAPrefixAreValid(name: String) {
        #expect(CgroupName.problem(with: name) == nil)
    }

    @Test func generatedIDsAreValid() {
        var generator = SystemRandomNumberGenerator()
        for command in ["python3", "/usr/bin/env", "./my script.sh", "..", "-", "supervisor", "ü", "memory.hog", "/opt/cgroup.procs"] {
            let id = AgentIDGenerator.make(command: command, using: &generator)
            #expect(CgroupName.isValid(id), "\(command) -> \(id)")
        }
        #expect(AgentIDGenerator.make(command: "/usr/bin/python3", using: &generator).hasPrefix("python3-"))
        #expect(AgentIDGenerator.make(command: "memory.hog", using: &generator).hasPrefix("memory-hog-"))
    }
}

@Suite("Limit overrides keep bursts consistent")
struct OverrideBurstTests {
    @Test func cpuBurstSurvivesAHardLimitBelowIt() {
        let base = ResourceLimit(soft: 100, hard: 200, burst: 300, action: .throttle)
        #expect(LimitOverride(hard: 250).apply(to: base, of: .cpu).burst == 300)
        #expect(LimitOverride(hard: 350).apply(to: base, of: .cpu).burst == nil)
    }

    @Test func memoryBurstIsDroppedAboveANewHardLimit() {
        let base = ResourceLimit(soft: 100, hard: 200, burst: 150, action: .throttle)
        #expect(LimitOverride(hard: 180).apply(to: base, of: .memory).burst == 150)
        #expect(LimitOverride(hard: 120).apply(to: base, of: .memory).burst == nil)
    }

    @Test func absurdLimitsAreProblemsNotTraps() {
        #expect(!ResourceLimit(soft: 1, hard: 5_000_000, action: .warn).problems(for: .processes).isEmpty)
        #expect(throws: Quantity.ParseError.self) { try Quantity.parseCount("99999999999999999999").get() }
        #expect(throws: Quantity.ParseError.self) { try Quantity.parsePercent("99999999999999999999").get() }
    }
}
