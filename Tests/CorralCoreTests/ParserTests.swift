import CorralCore
import Testing

@Suite("cgroupfs parsers, on files copied from real kernels")
struct ParserTests {
    @Test func memoryEventsAfterAnOOMKill() throws {
        let events = MemoryEvents(parsing: try Fixture.text("debian-6.1/fx.memory.events"))
        #expect(events == MemoryEvents(low: 0, high: 1240, max: 35, oom: 1, oomKill: 1, oomGroupKill: 0))
    }

    @Test func memoryEventsToleratesNewAndMissingKeys() {
        let events = MemoryEvents(parsing: "low 1\nsock_throttled 7\nhigh 2\nmax 3\noom 4\noom_kill 5\n")
        #expect(events == MemoryEvents(low: 1, high: 2, max: 3, oom: 4, oomKill: 5, oomGroupKill: 0))
        #expect(MemoryEvents(parsing: "") == MemoryEvents())
        #expect(MemoryEvents(parsing: "garbage line\nhigh x\n") == MemoryEvents())
    }

    @Test func cpuStatWithTheCpuController() throws {
        let stat = CPUStat(parsing: try Fixture.text("debian-6.1/fx.cpu.stat"))
        #expect(stat.usageUsec == 1_844_847)
        #expect(stat.userUsec == 436_937)
        #expect(stat.systemUsec == 1_407_910)
        #expect(stat.nrPeriods == 218)
        #expect(stat.nrThrottled == 73)
        #expect(stat.throttledUsec == 5_444_312)
        #expect(stat.nrBursts == 0)
    }

    @Test func cpuStatWithoutTheCpuController() throws {
        let stat = CPUStat(parsing: try Fixture.text("hybrid-host/unified.cpu.stat"))
        #expect(stat.usageUsec > 0)
        #expect(stat.nrThrottled == nil)
        #expect(stat.throttledUsec == nil)
    }

    @Test func cpuUsageRate() {
        let earlier = CPUStat(usageUsec: 1_000_000)
        let later = CPUStat(usageUsec: 1_500_000)
        #expect(CPUStat.usagePercent(from: earlier, to: later, elapsed: .seconds(5)) == 10)
        #expect(CPUStat.usagePercent(from: earlier, to: later, elapsed: .zero) == 0)
        #expect(CPUStat.usagePercent(from: later, to: earlier, elapsed: .seconds(1)) == 0)
    }

    @Test func pidsEventsAfterAForkStorm() throws {
        #expect(PidsEvents(parsing: try Fixture.text("debian-6.1/fx.pids.events")).max == 11)
    }

    @Test func cgroupEvents() throws {
        #expect(CgroupEvents(parsing: try Fixture.text("debian-6.1/fx.cgroup.events")) == CgroupEvents(populated: false, frozen: false))
        #expect(CgroupEvents(parsing: try Fixture.text("debian-6.1/fx.cgroup.events.frozen")).frozen)
    }

    @Test func pressure() throws {
        let memory = try #require(Pressure(parsing: try Fixture.text("debian-6.1/fx.memory.pressure")))
        #expect(memory.some.avg10 == 83.09)
        #expect(memory.full?.total == 100_527_538)
        let cpu = try #require(Pressure(parsing: try Fixture.text("hybrid-host/unified.cpu.pressure")))
        #expect(cpu.some.total >= 0)
        #expect(Pressure(parsing: "some avg10=x") == nil)
        #expect(Pressure(parsing: "") == nil)
    }

    /// `Pressure(parsing:)` over bytes, against the string parse it replaced.
    @Test func pressureAgreesWithAStringParse() throws {
        func reference(_ text: String) -> Pressure? {
            var some: PressureLine?
            var full: PressureLine?
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard let kind = fields.first else { continue }
                var values: [Substring: Substring] = [:]
                for field in fields.dropFirst() {
                    let pair = field.split(separator: "=", maxSplits: 1)
                    if pair.count == 2 { values[pair[0]] = pair[1] }
                }
                guard let avg10 = values["avg10"].flatMap({ Double($0) }), let avg60 = values["avg60"].flatMap({ Double($0) }),
                    let avg300 = values["avg300"].flatMap({ Double($0) }), let total = values["total"].flatMap({ Int64($0) })
                else { return nil }
                let parsed = PressureLine(avg10: avg10, avg60: avg60, avg300: avg300, total: total)
                if kind == "some" { some = parsed } else if kind == "full" { full = parsed }
            }
            return some.map { Pressure(some: $0, full: full) }
        }
        var texts = try ["debian-6.1/fx.memory.pressure", "hybrid-host/unified.cpu.pressure"].map { try Fixture.text($0) }
        texts += [
            "", "\n", "some avg10=x", "some avg10=1.5 avg60=2 avg300=3 total=4",
            "some avg10=1.5 avg60=2 avg300=3 total=4\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=9\n",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=9\n", "some avg10=1 avg60=2 avg300=3\n",
            "some  avg10=1  avg60=2 avg300=3 total=4 extra=5\n\n",
            "other avg10=1 avg60=2 avg300=3 total=4\nsome avg10=1 avg60=2 avg300=3 total=5",
            "other x=1\nsome avg10=1 avg60=2 avg300=3 total=5", "some avg10=1 avg60=2 avg300=3 total=-4",
            "some avg10=1 avg60=2 avg300=3 total=4x",
            "some avg10==1 avg60=2 avg300=3 total=4", "some avg10=1 avg60=2 avg300=3 total=4 total=6",
        ]
        for text in texts {
            #expect(Pressure(parsing: text) == reference(text), "\(text.debugDescription)")
        }
        #expect(Pressure(parsing: texts[0]) != nil)
    }

    /// The byte scanner the watcher uses, against the obvious string parse
    /// it replaced, on every fixture and on malformed lines.
    @Test func byteScannerAgreesWithAStringParse() throws {
        func reference(_ text: String) -> [String: Int64] {
            var result: [String: Int64] = [:]
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count == 2, let value = Int64(fields[1]) else { continue }
                result[String(fields[0])] = value
            }
            return result
        }
        let files = [
            "debian-6.1/fx.memory.stat", "debian-6.1/fx.memory.events", "debian-6.1/fx.cpu.stat", "debian-6.1/fx.pids.events",
            "debian-6.1/fx.cgroup.events", "debian-6.1/fx.cgroup.events.frozen", "hybrid-host/unified.cpu.stat",
        ]
        for file in files {
            let text = try Fixture.text(file)
            #expect(FlatKeyed.parse(text) == reference(text), "\(file)")
            #expect(!FlatKeyed.parse(text).isEmpty, "\(file)")
        }
        let odd = "a 1\n  b   2  \nc\nd x\ne 1 2\nf -3\ng +4\nh 99999999999999999999\n\n i 5\nj 6x\nk 7"
        #expect(FlatKeyed.parse(odd) == reference(odd))
        #expect(FlatKeyed.parse(odd) == ["a": 1, "b": 2, "f": -3, "g": 4, "i": 5, "k": 7])
        #expect(FlatKeyed.values(["k", "zz", "b", "a"], in: odd) == [7, nil, 2, 1])
        #expect(FlatKeyed.values(["populated"], in: "populated 1\nfrozen 0\n") == [1])
        #expect(FlatKeyed.values(["pop"], in: "populated 1\n") == [nil], "a prefix is not the key")
        for text in ["42", "42\n", " 42 \n", "\t42\n", "-7", "max", "", "4 2", "42a", "9223372036854775807", "9223372036854775808"] {
            #expect(FlatKeyed.integer(in: text) == Int64(text.trimmingSpaces()), "\(text.debugDescription)")
        }
    }

    @Test func pressureTotals() throws {
        let memory = PressureTotals.totals(parsing: try Fixture.text("debian-6.1/fx.memory.pressure"))
        let parsed = try #require(Pressure(parsing: try Fixture.text("debian-6.1/fx.memory.pressure")))
        #expect(memory.some == parsed.some.total && memory.full == parsed.full?.total)
        let cpu = PressureTotals.totals(parsing: "some avg10=0.00 avg60=0.00 avg300=0.00 total=123\n")
        #expect(cpu.some == 123 && cpu.full == nil)
        #expect(PressureTotals.totals(parsing: "full avg10=1.00 total=x\nsome total=5").some == 5)
        #expect(PressureTotals.totals(parsing: "full avg10=1.00 total=x\nsome total=5").full == nil)
        #expect(PressureTotals.totals(parsing: "") == (nil, nil))
    }

    @Test func singleValues() throws {
        #expect(CgroupValue(parsing: try Fixture.text("debian-6.1/fx.memory.max")) == .limit(99_999_744))
        #expect(CgroupValue(parsing: try Fixture.text("debian-6.1/fx.pids.max")) == .limit(20))
        #expect(CPUMax(parsing: try Fixture.text("debian-6.1/fx.cpu.max")) == CPUMax(quota: 20000, period: 100_000))
        #expect(Int64(try Fixture.text("debian-6.1/fx.memory.peak").trimmingSpaces())! > 90_000_000)
    }

    @Test func controllerLists() throws {
        let root = ControllerList.parse(try Fixture.text("debian-6.1/root.cgroup.controllers"))
        #expect(root.isSuperset(of: ["memory", "cpu", "pids", "io"]))
        let hybrid = ControllerList.parse(try Fixture.text("hybrid-host/unified.cgroup.controllers"))
        #expect(!hybrid.contains("memory"))
        #expect(ControllerList.parse("") == [])
    }

    @Test func memoryStatIsKeyedByName() throws {
        let stat = FlatKeyed.parse(try Fixture.text("debian-6.1/fx.memory.stat"))
        #expect(stat["anon"] != nil)
        #expect(stat["file"] != nil)
        #expect(stat.count > 20)
    }

    /// The fixture is the memory.stat of a cgroup that read a file (page cache, no anon).
    @Test func memoryStatFromARealKernel() throws {
        let stat = MemoryStat(parsing: try Fixture.text("debian-6.1/fx.memory.stat"))
        #expect(stat.anon == 0)
        #expect(stat.file == 7_520_256)
        #expect(stat.kernel == 73728)
        #expect(stat.kernelStack == 0)
        #expect(stat.pageTables == 0)
        #expect(stat.sock == 0)
        #expect(stat.shmem == 0)
        #expect(stat.fileMapped == 0)
        #expect(stat.fileDirty == 0)
        #expect(stat.fileWriteback == 0)
        #expect(stat.slab == 62472)
        #expect(stat.pageFaults == 1864)
        #expect(stat.majorPageFaults == 64)
        #expect(stat.workingsetRefaultAnon == 0)
        #expect(stat.workingsetRefaultFile == 2024)
        #expect(stat.pagesScanned == 2814)
        #expect(stat.pagesStolen == 2024)
        // Fields without an accessor are kept and found by their kernel name.
        #expect(stat["inactive_file"] == 4_222_976)
        #expect(stat["thp_fault_alloc"] == 46)
        #expect(stat.fields.count == 51)
    }

    /// Kernels add fields mid-file and older ones lack some: lookups are by
    /// name, a missing field is nil (not 0), an unknown one is kept.
    @Test func memoryStatToleratesNewAndMissingFields() {
        let stat = MemoryStat(parsing: "anon 4096\nzswap_new_field 9\nfile 8192\nbogus line here\npgfault x\n")
        #expect(stat.anon == 4096)
        #expect(stat.file == 8192)
        #expect(stat["zswap_new_field"] == 9)
        #expect(stat.kernel == nil)
        #expect(stat.pageFaults == nil)
        #expect(stat.fields.count == 3)
        #expect(MemoryStat(parsing: "") == MemoryStat())
    }

    @Test func counterFiles() throws {
        #expect(CgroupCounter.parse(try Fixture.text("debian-6.1/fx.memory.current")) == 7_925_760)
        #expect(CgroupCounter.parse(try Fixture.text("debian-6.1/fx.memory.peak")) == 99_999_744)
        // The fork storm's cgroup: pids.max 20 was reached.
        #expect(CgroupCounter.parse(try Fixture.text("debian-6.1/fx.pids.peak")) == 20)
        // A subshell with two sleeps and a cat, read in the VM.
        #expect(CgroupCounter.parse(try Fixture.text("debian-6.1/fx.pids.current")) == 4)
        #expect(CgroupCounter.parse("3\n") == 3)
        #expect(CgroupCounter.parse("max") == nil)
        #expect(CgroupCounter.parse("-1") == nil)
        #expect(CgroupCounter.parse("") == nil)
    }

    @Test func procCgroup() throws {
        #expect(ProcCgroup.unifiedPath(try Fixture.text("debian-6.1/proc.self.cgroup")) == "/")
        #expect(ProcCgroup.unifiedPath(try Fixture.text("hybrid-host/proc.self.cgroup")) == "/")
        #expect(ProcCgroup.unifiedPath("12:memory:/x\n") == nil)
        #expect(ProcCgroup.unifiedPath("0::/system.slice/corral.service\n") == "/system.slice/corral.service")
        #expect(ProcessList.parse("12\n345\n\n") == [12, 345])
    }
}

@Suite("Host mode")
struct HostModeTests {
    @Test func hybridHostFromRealFiles() throws {
        var v1: Set<String> = []
        for line in try Fixture.text("hybrid-host/proc.cgroups").split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: "\t")
            if fields.count >= 4, fields[1] != "0" { v1.insert(String(fields[0])) }
        }
        let facts = HostFacts(
            cgroupMount: .tmpfs, unifiedMount: .cgroup2, v1Controllers: v1,
            v2RootControllers: ControllerList.parse(try Fixture.text("hybrid-host/unified.cgroup.controllers")))
        #expect(facts.mode == .hybrid)
        #expect(facts.missingControllers == [.memory, .cpu, .pids])
        let problem = try #require(facts.problems.first)
        #expect(problem.severity == .fatal)
        #expect(problem.message.contains("hybrid"))
        #expect(problem.message.contains("memory, cpu, pids"))
        #expect(problem.fix.contains("systemd.unified_cgroup_hierarchy=1"))
    }

    @Test func unifiedHost() throws {
        let facts = HostFacts(
            cgroupMount: .cgroup2, unifiedMount: .missing, v1Controllers: [],
            v2RootControllers: ControllerList.parse(try Fixture.text("debian-6.1/root.cgroup.controllers")))
        #expect(facts.mode == .unified)
        #expect(facts.problems.isEmpty)
    }

    @Test func unifiedWithoutPids() {
        let facts = HostFacts(cgroupMount: .cgroup2, unifiedMount: .missing, v1Controllers: ["pids"], v2RootControllers: ["memory", "cpu"])
        #expect(facts.missingControllers == [.pids])
        #expect(facts.problems.first?.message.contains("pids") == true)
    }

    @Test func legacyAndNothing() {
        #expect(HostFacts(cgroupMount: .tmpfs, unifiedMount: .missing, v1Controllers: ["memory"], v2RootControllers: []).mode == .legacy)
        #expect(HostFacts(cgroupMount: .missing, unifiedMount: .missing, v1Controllers: [], v2RootControllers: []).mode == .unavailable)
        #expect(FilesystemKind(magic: 0x6367_7270) == .cgroup2)
        #expect(FilesystemKind(magic: 0x0102_1994) == .tmpfs)
        #expect(FilesystemKind(magic: 0xEF53) == .other)
    }
}

@Suite("Run summary")
struct RunSummaryTests {
    func summary(_ termination: Termination, oomKill: Int64 = 0, pidsMax: Int64 = 0) -> RunSummary {
        RunSummary(
            agent: "hog", group: "lightweight_agent", cgroup: "/sys/fs/cgroup/corral/lightweight_agent/hog",
            command: ["hog"], limits: QuotaGroup.lightweight.limits, termination: termination, wallSeconds: 2,
            cpu: CPUStat(usageUsec: 200_000, userUsec: 150_000, systemUsec: 50_000, nrPeriods: 20, nrThrottled: 3, throttledUsec: 40_000),
            memoryPeakBytes: 99_999_744, memoryPeakExact: true,
            memoryEvents: MemoryEvents(high: 10, max: 4, oom: 1, oomKill: oomKill, oomGroupKill: oomKill > 0 ? 1 : 0),
            pidsPeak: 3, pidsPeakExact: false, pidsEvents: PidsEvents(max: pidsMax), spawnMethod: "clone3",
            forwardedSignals: [], strayProcessesKilled: false)
    }

    @Test func oomKilled() {
        let killed = summary(.signaled(signal: 9), oomKill: 1)
        #expect(killed.oomKilled)
        #expect(killed.exitStatus == 137)
        #expect(killed.headline.contains("OOM-killed"))
        #expect(killed.text.contains("oom_kill 1"))
        #expect(killed.text.contains("(sampled)"))
        #expect(killed.cpuPercent == 10)
    }

    @Test func signalWithoutOOMIsNotOOM() {
        #expect(!summary(.signaled(signal: 9)).oomKilled)
        #expect(!summary(.exited(code: 0), oomKill: 1).oomKilled)
        #expect(summary(.signaled(signal: 15)).headline.contains("SIGTERM"))
    }

    @Test func pidsLimit() {
        let hit = summary(.exited(code: 1), pidsMax: 21)
        #expect(hit.pidsLimitHit)
        #expect(hit.exitStatus == 1)
        #expect(hit.headline.contains("process limit"))
    }
}
