import CorralCgroup
import CorralCore
import CorralTestSupport
import SystemPackage
import Testing

/// Building `<root>/<group>/<agent>`: prepareRoot, prepareGroup, createAgent, apply.
@Suite struct CgroupTreeBuildTests {
    let root = Harness.root
    let group = Harness.group
    let leaf = Harness.leaf
    let capacity = HostCapacity(memoryBytes: 8_000_000_000, cpus: 4, pidMax: 100_000)

    @Test func happyPathBuildsRootGroupAndAgentWithTheSeedNumbers() throws {
        let h = Harness()
        let report = try h.tree.prepareRoot(
            selfPID: nil, reservation: SystemReservation.seed.rootSettings(for: capacity))
        #expect(report.createdRoot)
        #expect(!report.movedSelfToSupervisor)
        #expect(report.enabledInParent == [.memory, .cpu, .pids])
        #expect(report.enabledInRoot == [.memory, .cpu, .pids])
        #expect(report.unavailableOptional == [.io])
        #expect(report.reservationApplied)

        #expect(try h.tree.prepareGroup(.lightweight))
        let path = try h.tree.createAgent(
            "crawler-1", in: "lightweight_agent", settings: CgroupSettings(agentLimits: QuotaGroup.lightweight.limits))
        #expect(path == leaf)
        #expect(h.fs.absolutePath(path) == "/sys/fs/cgroup/corral/lightweight_agent/crawler-1")

        // The reservation on the root: 75% of 8 GB, 80% of 4 CPUs, 90% of pid_max.
        #expect(h.fs.value(.memoryMax, at: root) == "6000000000")
        #expect(h.fs.value(.cpuMax, at: root) == "320000 100000")
        #expect(h.fs.value(.pidsMax, at: root) == "90000")
        // Group totals: 1 GB, 200% CPU, 500 processes.
        #expect(h.fs.value(.memoryMax, at: group) == "1000000000")
        #expect(h.fs.value(.cpuMax, at: group) == "200000 100000")
        #expect(h.fs.value(.pidsMax, at: group) == "500")
        #expect(h.fs.value(.subtreeControl, at: group) == "cpu memory pids")
        // The agent's leaf: lightweight_agent's built-in limits.
        #expect(h.fs.value(.memoryHigh, at: leaf) == "50000000")
        #expect(h.fs.value(.memoryMax, at: leaf) == "100000000")
        #expect(h.fs.value(.memoryOOMGroup, at: leaf) == "1")
        #expect(h.fs.value(.cpuMax, at: leaf) == "10000 100000")
        #expect(h.fs.value(.pidsMax, at: leaf) == "20")
        #expect(h.fs.value(.controllers, at: leaf) == "cpu memory pids")
        #expect(h.fs.value(.subtreeControl, at: leaf) == "")
        #expect(h.fs.contains(.kill, in: leaf))
        #expect(!h.fs.contains(.ioMax, in: leaf))

        #expect(
            h.fs.log == [
                .mkdir("corral"),
                .write(".", .subtreeControl, "+memory +cpu +pids"),
                .write("corral", .subtreeControl, "+memory +cpu +pids"),
                .write("corral", .memoryMax, "6000000000"),
                .write("corral", .cpuMax, "320000 100000"),
                .write("corral", .pidsMax, "90000"),
                .mkdir("corral/lightweight_agent"),
                .write("corral/lightweight_agent", .subtreeControl, "+memory +cpu +pids"),
                .write("corral/lightweight_agent", .memoryMax, "1000000000"),
                .write("corral/lightweight_agent", .cpuMax, "200000 100000"),
                .write("corral/lightweight_agent", .pidsMax, "500"),
                .mkdir("corral/lightweight_agent/crawler-1"),
                .write("corral/lightweight_agent/crawler-1", .memoryMax, "100000000"),
                .write("corral/lightweight_agent/crawler-1", .memoryHigh, "50000000"),
                .write("corral/lightweight_agent/crawler-1", .memoryOOMGroup, "1"),
                .write("corral/lightweight_agent/crawler-1", .cpuMax, "10000 100000"),
                .write("corral/lightweight_agent/crawler-1", .pidsMax, "20"),
            ])
    }

    @Test func preparingAgainChangesNothing() throws {
        let h = Harness()
        try h.tree.prepareRoot(selfPID: nil, reservation: nil)
        try h.tree.prepareGroup(.lightweight)
        h.fs.clearLog()
        let report = try h.tree.prepareRoot(selfPID: nil, reservation: nil)
        #expect(!report.createdRoot && report.enabledInParent.isEmpty && report.enabledInRoot.isEmpty)
        #expect(try !h.tree.prepareGroup(.lightweight))
        // Only the totals are rewritten; no controller is enabled twice.
        #expect(h.fs.log.allSatisfy { if case .write(_, let file, _) = $0 { file != .subtreeControl } else { false } })
    }

    @Test func ioIsEnabledWhenTheParentAlreadyOffersIt() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["cpu", "io", "memory", "pids"])
        let h = Harness(fs: fs)
        let report = try h.tree.prepareRoot(selfPID: nil, reservation: nil)
        #expect(report.enabledInParent == [])
        #expect(report.enabledInRoot == [.memory, .cpu, .pids, .io])
        #expect(report.unavailableOptional == [])
        try h.tree.prepareGroup(.lightweight)
        #expect(fs.value(.subtreeControl, at: group) == "cpu io memory pids")
    }

    @Test func onlyTheMissingControllersAreEnabledInTheParent() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["memory"])
        let h = Harness(fs: fs)
        let report = try h.tree.prepareRoot(selfPID: nil, reservation: nil)
        #expect(report.enabledInParent == [.cpu, .pids])
        #expect(fs.log.prefix(2) == [.mkdir("corral"), .write(".", .subtreeControl, "+cpu +pids")])
    }

    @Test func aParentWithoutTheControllersIsReportedAndTheNewRootRemoved() throws {
        // A hybrid host's cgroup2 mount offers no resource controllers.
        let h = Harness(fs: FakeCgroupFilesystem(anchorPath: "/sys/fs/cgroup/unified", rootControllers: ["hugetlb"]))
        let error = #expect(throws: CgroupError.self) { try h.tree.prepareRoot(selfPID: nil, reservation: nil) }
        #expect(error?.code == .controllerUnavailable)
        #expect(error?.message.contains("memory, cpu, pids controllers are not available") == true)
        #expect(error?.message.contains("/sys/fs/cgroup/unified/cgroup.controllers") == true)
        #expect(error?.fix?.contains("+memory +cpu +pids") == true)
        // Nothing is left behind.
        #expect(try !h.fs.exists(root))
    }

    @Test func ownPidIsMovedToSupervisorBeforeControllersAreEnabled() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["cpu", "memory", "pids"])
        // A systemd unit with Delegate=yes: Corral starts inside its root.
        fs.seed(root, procs: [4242])
        let h = Harness(fs: fs)
        let report = try h.tree.prepareRoot(selfPID: 4242, reservation: nil)
        #expect(report.movedSelfToSupervisor)
        #expect(!report.createdRoot)
        #expect(fs.procs(root) == [])
        #expect(fs.procs(h.tree.supervisorPath) == [4242])
        #expect(
            fs.log == [
                .mkdir("corral/supervisor"),
                .write("corral/supervisor", .procs, "4242"),
                .write("corral", .subtreeControl, "+memory +cpu +pids"),
            ])
    }

    @Test func anExistingSupervisorIsReused() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["cpu", "memory", "pids"])
        fs.seed(root, procs: [4242])
        fs.seed(root.appending("supervisor"))
        let h = Harness(fs: fs)
        try h.tree.prepareRoot(selfPID: 4242, reservation: nil)
        #expect(fs.log.first == .write("corral/supervisor", .procs, "4242"))
    }

    @Test func aDelegatedAnchorAsRootGetsSupervisorToo() throws {
        // --cgroup-root is the unit's own cgroup: the anchor itself, not the hierarchy root.
        let fs = FakeCgroupFilesystem(
            anchorPath: "/sys/fs/cgroup/system.slice/corral.service", anchorIsHierarchyRoot: false,
            rootControllers: ["cpu", "memory", "pids"])
        fs.seed(.anchor, procs: [77])
        let h = Harness(fs: fs, root: .anchor)
        let report = try h.tree.prepareRoot(selfPID: 77, reservation: nil)
        #expect(report.movedSelfToSupervisor)
        #expect(fs.procs(CgroupPath(["supervisor"])) == [77])
        #expect(fs.value(.subtreeControl, at: .anchor) == "cpu memory pids")
    }

    @Test func aContainersInitLeavesTheNamespaceRootForASupervisorSibling() throws {
        // A container with a private cgroup namespace and a writable mount: /sys/fs/cgroup is
        // the container's cgroup (not the hierarchy root), corrald its only process, and the
        // default root corral/ below it needs the controllers enabled there.
        let fs = FakeCgroupFilesystem(anchorIsHierarchyRoot: false, rootControllers: ["cpu", "memory", "pids"])
        fs.seed(.anchor, procs: [1])
        let h = Harness(fs: fs)
        let report = try h.tree.prepareRoot(selfPID: 1, reservation: SystemReservation.seed.rootSettings(for: capacity))
        #expect(report.movedSelfToSupervisor)
        #expect(report.supervisorPath == CgroupPath(["supervisor"]))
        #expect(fs.procs(.anchor) == [])
        #expect(fs.procs(CgroupPath(["supervisor"])) == [1])
        #expect(report.reservationApplied)
        // The kernel's refusal (EBUSY) is what sends it there; then the enabling succeeds.
        #expect(
            Array(fs.log.prefix(6)) == [
                .mkdir("corral"),
                .failed(.resourceBusy, .write, ".", .subtreeControl),
                .mkdir("supervisor"),
                .write("supervisor", .procs, "1"),
                .write(".", .subtreeControl, "+memory +cpu +pids"),
                .write("corral", .subtreeControl, "+memory +cpu +pids"),
            ])
    }

    @Test func anotherProcessInTheContainersCgroupIsNotMoved() throws {
        let fs = FakeCgroupFilesystem(anchorIsHierarchyRoot: false, rootControllers: ["cpu", "memory", "pids"])
        fs.seed(.anchor, procs: [1, 2])
        let h = Harness(fs: fs)
        var error: CgroupError?
        do { try h.tree.prepareRoot(selfPID: 2, reservation: nil) } catch let caught { error = caught }
        #expect(error?.code == .internalProcesses)
        #expect(fs.procs(.anchor) == [1, 2])
        #expect(try !fs.exists(CgroupPath(["supervisor"])))
        #expect(try !fs.exists(Harness.root))
    }

    @Test func aDelegatedAnchorWithoutAControllerCannotBeFixedFromBelow() throws {
        let fs = FakeCgroupFilesystem(
            anchorPath: "/sys/fs/cgroup/user.slice/corral.scope", anchorIsHierarchyRoot: false,
            rootControllers: ["cpu", "memory"])
        let h = Harness(fs: fs, root: .anchor)
        let error = #expect(throws: CgroupError.self) { try h.tree.prepareRoot(selfPID: nil, reservation: nil) }
        #expect(error?.code == .controllerUnavailable)
        #expect(error?.message.contains("'+memory +cpu +pids'") == true)
        #expect(error?.path == "/sys/fs/cgroup/user.slice/corral.scope/cgroup.subtree_control")
        #expect(try fs.exists(.anchor))
    }

    @Test func foreignProcessesInTheRootAreNamed() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["cpu", "memory", "pids"])
        fs.seed(root, procs: [4242, 17, 23])
        let h = Harness(fs: fs)
        let error = #expect(throws: CgroupError.self) { try h.tree.prepareRoot(selfPID: 4242, reservation: nil) }
        #expect(error?.code == .internalProcesses)
        #expect(error?.message.contains("(17, 23)") == true)
        #expect(error?.message.contains("/sys/fs/cgroup/corral") == true)
        #expect(error?.message.contains("4242") == false)
        #expect(error?.fix != nil)
        // Nothing moved, nothing enabled.
        #expect(fs.log == [])
        #expect(fs.procs(root) == [4242, 17, 23])
    }

    @Test func manyForeignProcessesAreElided() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["cpu", "memory", "pids"])
        fs.seed(root, procs: Array(100...111))
        let h = Harness(fs: fs)
        let error = #expect(throws: CgroupError.self) { try h.tree.prepareRoot(selfPID: nil, reservation: nil) }
        #expect(error?.message.contains("100, 101, 102, 103, 104, 105, 106, 107, …") == true)
        #expect(error?.message.contains("108") == false)
    }

    @Test func theHierarchyRootIsExemptFromTheNoInternalProcessRule() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, procs: [1, 2, 3])
        let h = Harness(fs: fs, root: .anchor, rootIsHierarchyRoot: true)
        let capacity = capacity
        let report = try h.tree.prepareRoot(
            selfPID: 3, reservation: SystemReservation.seed.rootSettings(for: capacity))
        #expect(!report.movedSelfToSupervisor)
        #expect(!report.reservationApplied)
        #expect(report.enabledInRoot == [.memory, .cpu, .pids, .io])
        #expect(fs.procs(.anchor) == [1, 2, 3])
    }

    @Test func agentIdInUseIsAlreadyExistsAndTheRunningLeafIsKept() throws {
        let h = Harness.prepared()
        let settings = CgroupSettings(agentLimits: QuotaGroup.lightweight.limits)
        try h.tree.createAgent("crawler-1", in: "lightweight_agent", settings: settings)
        h.fs.seed(leaf, procs: [500])
        let error = #expect(throws: CgroupError.self) {
            try h.tree.createAgent("crawler-1", in: "lightweight_agent", settings: CgroupSettings(memoryMax: .limit(1)))
        }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message == "/sys/fs/cgroup/corral/lightweight_agent/crawler-1 already exists")
        #expect(try h.fs.exists(leaf))
        #expect(h.fs.procs(leaf) == [500])
        #expect(h.fs.value(.memoryMax, at: leaf) == "100000000")
    }

    @Test func aRejectedLimitRollsBackTheLeaf() throws {
        let h = Harness.prepared()
        // 0.5 ms of CPU per 100 ms is under the kernel's 1 ms minimum quota.
        let settings = CgroupSettings(memoryMax: .limit(100_000_000), cpuMax: CPUMax(quota: 500), pidsMax: .limit(20))
        let error = #expect(throws: CgroupError.self) {
            try h.tree.createAgent("crawler-1", in: "lightweight_agent", settings: settings)
        }
        #expect(error?.code == .invalidValue)
        #expect(error?.message.contains("'500 100000'") == true)
        #expect(error?.message.contains("/sys/fs/cgroup/corral/lightweight_agent/crawler-1") == true)
        #expect(try !h.fs.exists(leaf))
        #expect(
            h.fs.log == [
                .mkdir("corral/lightweight_agent/crawler-1"),
                .write("corral/lightweight_agent/crawler-1", .memoryMax, "100000000"),
                .failed(.invalidArgument, .write, "corral/lightweight_agent/crawler-1", .cpuMax),
                .rmdir("corral/lightweight_agent/crawler-1"),
            ])
    }

    @Test(arguments: [
        (Errno.permissionDenied, CgroupError.Code.permissionDenied),
        (.noSuchFileOrDirectory, .controllerUnavailable),
        (.resourceBusy, .busy),
        (.notSupported, .notSupported),
    ])
    func anInjectedLimitFailureRollsBackTheLeaf(errno: Errno, code: CgroupError.Code) throws {
        let h = Harness.prepared()
        h.fs.inject(errno, on: .write, path: leaf, file: .pidsMax)
        let error = #expect(throws: CgroupError.self) {
            try h.tree.createAgent(
                "crawler-1", in: "lightweight_agent", settings: CgroupSettings(agentLimits: QuotaGroup.lightweight.limits))
        }
        #expect(error?.code == code)
        #expect(error?.errno == errno)
        #expect(error?.path == "/sys/fs/cgroup/corral/lightweight_agent/crawler-1/pids.max")
        #expect(try !h.fs.exists(leaf))
        #expect(h.fs.log.last == .rmdir("corral/lightweight_agent/crawler-1"))
    }

    @Test func aNewGroupWhoseTotalsFailIsRemoved() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["cpu", "memory", "pids"])
        fs.seed(root, subtreeControl: ["cpu", "memory", "pids"])
        let h = Harness(fs: fs)
        fs.inject(.invalidArgument, on: .write, path: group, file: .cpuMax)
        let error = #expect(throws: CgroupError.self) { try h.tree.prepareGroup(.lightweight) }
        #expect(error?.code == .invalidValue)
        #expect(try !fs.exists(group))
        #expect(fs.log.last == .rmdir("corral/lightweight_agent"))
    }

    @Test func anExistingGroupWhoseTotalsFailIsKept() throws {
        let h = Harness.prepared()
        h.fs.seed(leaf, procs: [9])
        h.fs.inject(.permissionDenied, on: .write, path: group, file: .memoryMax)
        let error = #expect(throws: CgroupError.self) { try h.tree.prepareGroup(.lightweight) }
        #expect(error?.code == .permissionDenied)
        #expect(try h.fs.exists(group))
        #expect(!h.fs.log.contains(.rmdir("corral/lightweight_agent")))
    }

    @Test func aGroupThatCannotEnableControllersIsRemoved() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["cpu", "memory", "pids"])
        fs.seed(root, subtreeControl: ["cpu", "memory"])
        let h = Harness(fs: fs)
        let error = #expect(throws: CgroupError.self) { try h.tree.prepareGroup(.lightweight) }
        #expect(error?.code == .controllerUnavailable)
        #expect(error?.value == "+memory +cpu +pids")
        #expect(try !fs.exists(group))
    }

    @Test func burstIsResetBeforeALowerCPUMax() throws {
        let h = Harness.prepared()
        h.fs.seed(leaf)
        try h.fs.write("50000 100000", to: .cpuMax, of: leaf)
        try h.fs.write("40000", to: .cpuMaxBurst, of: leaf)
        h.fs.clearLog()
        // Without the reset the kernel refuses cpu.max 10000 while burst is 40000.
        try h.tree.apply(CgroupSettings(cpuMax: CPUMax(quota: 10_000), cpuMaxBurst: 5_000), to: leaf)
        #expect(
            h.fs.writes == [
                .write("corral/lightweight_agent/crawler-1", .cpuMaxBurst, "0"),
                .write("corral/lightweight_agent/crawler-1", .cpuMax, "10000 100000"),
                .write("corral/lightweight_agent/crawler-1", .cpuMaxBurst, "5000"),
            ])
        #expect(h.fs.value(.cpuMaxBurst, at: leaf) == "5000")
    }

    @Test func enablingIsAllOrNothing() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["cpu", "memory", "pids"])
        fs.seed(root)
        let h = Harness(fs: fs)
        let error = #expect(throws: CgroupError.self) { try h.tree.enable([.memory, .io], in: root) }
        #expect(error?.code == .controllerUnavailable)
        #expect(error?.message.contains("+memory +io") == true)
        #expect(fs.subtreeControl(root) == [])
        #expect(try h.tree.enable([.memory, .cpu], in: root) == [.memory, .cpu])
        #expect(try h.tree.enable([.memory, .cpu, .pids], in: root) == [.pids])
        #expect(try h.tree.enable([.memory], in: root) == [])
    }
}

/// The host ladder's clamp and the removal that waits without a thread.
@Suite("CgroupTree: host clamp, removal")
struct HostClampTests {
    static let leaf = Harness.leaf

    @Test func theClampNeverLoosensAndTakesTheBurst() throws {
        let h = Harness.prepared()
        h.fs.seed(Self.leaf)
        try h.fs.write("30000000", to: .memoryHigh, of: Self.leaf)  // its own ladder's throttle: tighter
        try h.fs.write("50000 100000", to: .cpuMax, of: Self.leaf)
        try h.fs.write("20000", to: .cpuMaxBurst, of: Self.leaf)
        var changed: [String] = []
        try h.tree.clampForHost(Self.leaf, memoryUsage: 80_000_000, cpuLimit: 50, share: 0.25, changed: &changed)
        #expect(h.fs.value(.memoryHigh, at: Self.leaf) == "30000000", "usage above the limit in force: kept")
        #expect(h.fs.value(.cpuMax, at: Self.leaf) == "12500 100000")
        #expect(h.fs.value(.cpuMaxBurst, at: Self.leaf) == "0")
        #expect(changed == ["memory.high 30000000 → 30000000", "cpu.max 50000 100000 → 12500 100000"])
        try h.tree.releaseHostClamp(Self.leaf, memory: ResourceLimit(soft: 40_000_000, hard: 60_000_000, action: .throttle), cpu: nil)
        #expect(h.fs.value(.memoryHigh, at: Self.leaf) == "40000000" && h.fs.value(.cpuMax, at: Self.leaf) == "max 100000")
    }

    @Test func withoutCPUBurstTheClampStillHolds() throws {
        let h = Harness.prepared(missingFiles: [.cpuMaxBurst])
        h.fs.seed(Self.leaf)
        var changed: [String] = []
        try h.tree.clampForHost(Self.leaf, memoryUsage: 10, cpuLimit: nil, share: 0.25, changed: &changed)
        #expect(h.fs.value(.memoryHigh, at: Self.leaf) == "1048576", "at least 1 MiB")
        #expect(changed.count == 1, "no cpu.max in force and no limit: cpu is left alone: \(changed)")
    }

    @Test func anUnreadableLimitStopsTheClampBeforeAnyWrite() throws {
        let h = Harness.prepared()
        h.fs.seed(Self.leaf)
        h.fs.clearLog()
        h.fs.inject(.ioError, on: .read, path: Self.leaf, file: .memoryHigh)
        var changed: [String] = []
        #expect(throws: CgroupError.self) {
            try h.tree.clampForHost(Self.leaf, memoryUsage: 10, cpuLimit: 50, share: 0.25, changed: &changed)
        }
        #expect(h.fs.writes.isEmpty && changed.isEmpty)
    }

    @Test func removalWithoutBlockingRetriesABusyCgroup() async throws {
        let h = Harness.prepared()
        h.fs.seed(Self.leaf)
        h.fs.inject(.resourceBusy, on: .removeDirectory, path: Self.leaf, times: 3)
        try await h.tree.removeWithoutBlocking(Self.leaf)
        #expect(try !h.fs.exists(Self.leaf))
        #expect(h.sleeps.all.isEmpty, "asleep in the task, not through the tree's blocking sleep")

        h.fs.seed(Self.leaf)
        h.fs.inject(.resourceBusy, on: .removeDirectory, path: Self.leaf, times: 20)
        let error = await #expect(throws: CgroupError.self) { try await h.tree.removeWithoutBlocking(Self.leaf) }
        #expect(error?.code == .busy)
        #expect(try h.fs.exists(Self.leaf))
        // It tried `removeAttempts` times: the busy answers left are the rest of the 20.
        var left = 0
        while left < 30, (try? h.tree.remove(Self.leaf, attempts: 1)) == nil { left += 1 }
        #expect(left == 20 - CgroupTree.removeAttempts)
        #expect(try !h.fs.exists(Self.leaf))
    }
}
