import CorralCore
import Testing

@testable import CorralCgroup

/// Only reads the host: statfs, /proc. Nothing under /sys/fs/cgroup is written.
@Suite struct HostProbeTests {
    /// A hybrid host as /proc/cgroups and statfs describe it.
    static let hybrid = HostFacts(
        cgroupMount: .tmpfs, unifiedMount: .cgroup2,
        v1Controllers: ["cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer"],
        v2RootControllers: ["hugetlb"])

    @Test(arguments: ["corral", "sys/fs/cgroup/corral", "", "./corral"])
    func aRelativeRootIsRefused(path: String) throws {
        let error = #expect(throws: CgroupError.self) { try CgroupRootLocation.resolve(path, facts: Self.hybrid) }
        #expect(error?.code == .invalidValue)
        #expect(error?.message.contains("'\(path)' is not an absolute path") == true)
        #expect(error?.fix?.contains(CgroupRootLocation.defaultRootPath) == true)
    }

    @Test func theDefaultRootOnAHybridHostIsRefusedNamingHybridMode() throws {
        let error = #expect(throws: CgroupError.self) {
            try CgroupRootLocation.resolve(CgroupRootLocation.defaultRootPath, facts: Self.hybrid)
        }
        #expect(error?.code == .hostUnsupported)
        #expect(error?.message.contains("/sys/fs/cgroup/corral") == true)
        #expect(error?.message.contains("hybrid") == true)
        #expect(error?.fix?.contains("systemd.unified_cgroup_hierarchy=1") == true)
    }

    /// This machine is a hybrid host; on a unified one the default root resolves.
    @Test func theProbedFactsOfThisHostGiveTheSameAnswer() throws {
        let facts = HostProbe.facts()
        guard facts.mode != .unified else {
            let location = try CgroupRootLocation.resolve("/sys/fs/cgroup/corral/", facts: facts)
            #expect(location.rootPath == "/sys/fs/cgroup/corral")
            #expect(location.root == CgroupPath(["corral"]))
            return
        }
        let error = #expect(throws: CgroupError.self) {
            try CgroupRootLocation.resolve("/sys/fs/cgroup/corral/", facts: facts)
        }
        #expect(error?.code == .hostUnsupported)
        #expect(error?.path == "/sys/fs/cgroup/corral")
        if facts.mode == .hybrid {
            #expect(facts.cgroupMount == .tmpfs)
            #expect(error?.message.contains("hybrid") == true)
            #expect(facts.missingControllers == Controller.required)
        }
    }

    @Test func aParentOutsideAnyCgroupHierarchyIsRefused() throws {
        // A good host's facts, but a directory that is not cgroupfs.
        let unified = HostFacts(
            cgroupMount: .cgroup2, unifiedMount: .missing, v1Controllers: [],
            v2RootControllers: ["cpu", "memory", "pids", "io"])
        #expect(unified.problems.isEmpty)
        let error = #expect(throws: CgroupError.self) { try CgroupRootLocation.resolve("/tmp/corral", facts: unified) }
        #expect(error?.code == .hostUnsupported)
        #expect(error?.message.contains("its parent /tmp is not in a cgroup v2 hierarchy") == true)
        #expect(error?.fix?.contains("--cgroup-root") == true)
    }

    @Test func probingReadsWithoutFailing() {
        #expect(HostProbe.filesystem(at: "/nonexistent/corral") == .missing)
        #expect(HostProbe.filesystem(at: "/proc") == .other)
        let capacity = HostProbe.capacity()
        #expect(capacity.memoryBytes > 0)
        #expect(capacity.cpus >= 1)
        #expect(capacity.pidMax > 0)
        #expect(HostProbe.kernelVersion.major >= 3)
    }

    /// Files by absolute path, for `HostProbe.capacity(files:…)`.
    static func files(_ contents: [String: String]) -> HostFiles {
        HostFiles(
            exists: { contents[$0] != nil }, isWritable: { _ in false }, read: { contents[$0] },
            directories: { _ in [] }, isMarkedCreatedByCorral: { _ in false })
    }

    static let host: [String: String] = [
        "/proc/meminfo": "MemTotal:       16384000 kB\nMemFree:         1000000 kB\n",
        "/proc/sys/kernel/pid_max": "4194304\n",
    ]

    /// Before: only MemTotal was read, so in a container the reservation was
    /// 75% of the host's memory, not of the container's.
    @Test func theTightestLimitOnTheOwnCgroupPathWins() {
        var contents = Self.host
        contents["/proc/self/cgroup"] = "0::/system.slice/box.scope\n"
        contents["/cg/system.slice/box.scope/memory.max"] = "2147483648\n"
        contents["/cg/system.slice/box.scope/cpu.max"] = "max 100000\n"
        contents["/cg/system.slice/box.scope/pids.max"] = "max\n"
        contents["/cg/system.slice/memory.max"] = "4294967296\n"
        contents["/cg/system.slice/cpu.max"] = "150000 100000\n"  // 1.5 CPUs: 2 usable
        contents["/cg/system.slice/pids.max"] = "1000\n"
        let capacity = HostProbe.capacity(files: Self.files(contents), hierarchyRoot: "/cg", onlineCPUs: 8)
        #expect(capacity == HostCapacity(memoryBytes: 2_147_483_648, cpus: 2, pidMax: 1000))
    }

    /// The reservation of a root is bounded by the root's ancestors, not by
    /// the cgroup of whoever runs corral (a login session's TasksMax).
    @Test func aRootsAncestorsBoundItsCapacity() {
        #expect(
            HostProbe.ancestorDirectories(of: "/sys/fs/cgroup/system.slice/corral.service", hierarchyRoot: "/sys/fs/cgroup")
                == ["/sys/fs/cgroup/system.slice", "/sys/fs/cgroup"])
        #expect(HostProbe.ancestorDirectories(of: "/sys/fs/cgroup/corral", hierarchyRoot: "/sys/fs/cgroup") == ["/sys/fs/cgroup"])
        #expect(HostProbe.ancestorDirectories(of: "/sys/fs/cgroup", hierarchyRoot: "/sys/fs/cgroup").isEmpty)
        #expect(HostProbe.ancestorDirectories(of: "/elsewhere/corral", hierarchyRoot: "/sys/fs/cgroup").isEmpty)
        #expect(HostProbe.ancestorDirectories(of: "/sys/fs/cgroup/../etc", hierarchyRoot: "/sys/fs/cgroup").isEmpty)
    }

    @Test func withoutLimitsTheHostCounts() {
        var contents = Self.host
        contents["/proc/self/cgroup"] = "0::/user.slice\n"
        contents["/cg/user.slice/memory.max"] = "max\n"
        let capacity = HostProbe.capacity(files: Self.files(contents), hierarchyRoot: "/cg", onlineCPUs: 8)
        #expect(capacity == HostCapacity(memoryBytes: 16_384_000 * 1024, cpus: 8, pidMax: 4_194_304))
        // No cgroup v2 hierarchy (legacy host): /proc alone.
        #expect(HostProbe.capacity(files: Self.files(contents), hierarchyRoot: nil, onlineCPUs: 8).memoryBytes == 16_384_000 * 1024)
    }

    /// Inside a cgroup namespace the process is at "/" and the mount's top
    /// is the container's own cgroup, which has the limits.
    @Test func aContainersNamespaceRootCounts() {
        var contents = Self.host
        contents["/proc/self/cgroup"] = "0::/\n"
        contents["/cg/memory.max"] = "536870912\n"
        contents["/cg/cpu.max"] = "50000 100000\n"
        let capacity = HostProbe.capacity(files: Self.files(contents), hierarchyRoot: "/cg", onlineCPUs: 8)
        #expect(capacity.memoryBytes == 536_870_912)
        #expect(capacity.cpus == 1, "half a CPU still leaves one to count with")
    }

    /// The daemon lives in <root>/supervisor: the root's limits are the
    /// reservation made from this capacity and must not shrink it again.
    @Test func corralsOwnRootIsNotCounted() {
        var contents = Self.host
        contents["/proc/self/cgroup"] = "0::/system.slice/corral/supervisor\n"
        contents["/cg/system.slice/corral/memory.max"] = "1000\n"
        contents["/cg/system.slice/corral/supervisor/memory.max"] = "1000\n"
        contents["/cg/system.slice/memory.max"] = "8589934592\n"
        let capacity = HostProbe.capacity(files: Self.files(contents), hierarchyRoot: "/cg", onlineCPUs: 8)
        #expect(capacity.memoryBytes == 8_589_934_592)
        #expect(
            HostProbe.limitDirectories(files: Self.files(contents), hierarchyRoot: "/cg") == ["/cg/system.slice", "/cg"])
    }

    @Test func anOddOwnPathIsNotWalked() {
        var contents = Self.host
        contents["/proc/self/cgroup"] = "0::/../../outside\n"
        contents["/cg/memory.max"] = "1000\n"
        #expect(HostProbe.limitDirectories(files: Self.files(contents), hierarchyRoot: "/cg").isEmpty)
        #expect(HostProbe.capacity(files: Self.files(contents), hierarchyRoot: "/cg", onlineCPUs: 2).memoryBytes == 16_384_000 * 1024)
    }
}
