import CorralCgroup
import CorralCore
import Testing

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
}
