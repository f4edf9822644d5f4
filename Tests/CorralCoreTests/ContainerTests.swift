import CorralCore
import Testing

/// What Corral makes of a container and of missing capabilities (ContainerContext, CapabilitySet, Limitation).
@Suite struct ContainerTests {
    @Test func aReadOnlyCgroupMountIsFatalWithTheDetectedRuntimesFixFirst() throws {
        let context = ContainerContext(runtime: "docker", privateCgroupNamespace: true, cgroupMountReadOnly: true)
        let problem = try #require(context.problems.first)
        #expect(problem.severity == .fatal)
        #expect(problem.message.contains("this container's /sys/fs/cgroup is mounted read-only (docker)"))
        #expect(problem.fix.contains("writable-cgroups=true"))
        // Docker's way first, every other runtime's way after it.
        let docker = try #require(problem.fix.range(of: "Docker 28"))
        for other in ["Kubernetes", "podman", "run.oci.delegate-cgroup", "deploy/kubernetes/daemonset.yaml"] {
            let range = try #require(problem.fix.range(of: other), "\(other) missing from the fix")
            #expect(range.lowerBound > docker.lowerBound)
        }
    }

    @Test func aWritableMountHasNoProblemAndAnUnknownRuntimeGetsEveryFix() throws {
        #expect(ContainerContext(runtime: nil, privateCgroupNamespace: true, cgroupMountReadOnly: false).problems.isEmpty)
        let unknown = ContainerContext(runtime: "lxc", privateCgroupNamespace: false, cgroupMountReadOnly: true)
        #expect(unknown.writableCgroupFixes.map(\.runtime) == ["kubernetes", "podman", "docker", "crun"])
        #expect(!ContainerContext(runtime: nil, privateCgroupNamespace: false, cgroupMountReadOnly: false).isContainer)
    }

    @Test func anUnwritableStateDirectoryNamesTheVolumeFixInAContainer() {
        let inside = unwritableDirectoryProblem(
            "/var/lib/corral", purpose: "the state directory", flag: "--state-dir", inContainer: true, reason: "read-only")
        #expect(inside.message == "cannot write the state directory /var/lib/corral: read-only")
        #expect(inside.fix.contains("mount a writable volume at /var/lib/corral"))
        #expect(inside.fix.contains("emptyDir"))
        let host = unwritableDirectoryProblem(
            "/srv/c", purpose: "the state directory", flag: "--state-dir", inContainer: false, reason: "EACCES")
        #expect(host.fix == "create /srv/c writable for this user, or give --state-dir another directory")
    }

    @Test func capabilitiesAreReadFromCapEff() throws {
        // crun's default set: CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
        let status = "Name:\tcorrald\nCapInh:\t0000000000000000\nCapPrm:\t0000000020000420\nCapEff:\t0000000020000420\n"
        let set = try #require(CapabilitySet(status: status))
        #expect(set.contains(.kill))
        #expect(!set.contains(.sysResource))
        #expect(!set.contains(.ipcLock))
        #expect(set.names == ["CAP_KILL"])
        #expect(CapabilitySet(status: "Name:\tx\n") == nil)
        #expect(CapabilitySet(status: "CapEff:\tzz\n") == nil)
        #expect(CapabilitySet(bits: 1 << 24 | 1 << 14).names == ["CAP_IPC_LOCK", "CAP_SYS_RESOURCE"])
    }

    @Test func coarseTriggerWindowsNameTheCapabilityAndTheWindows() {
        let coarse = Limitation.coarsePressureTriggers(configured: "some 150000 1000000", used: "some 300000 2000000")
        #expect(coarse.feature == .pressureTriggers)
        #expect(coarse.reason.contains("'some 150000 1000000' refused"))
        #expect(coarse.effect.contains("'some 300000 2000000'"))
        #expect(coarse.fix.contains("CAP_SYS_RESOURCE"))
        let none = Limitation.pressureTriggers(reason: "writing failed: EOPNOTSUPP")
        #expect(none.effect.contains("sampling"))
        #expect(none.fix.contains("CONFIG_PSI"))
    }

    @Test func theOpenFileLimitIsALimitationOnlyWhenItBites() throws {
        #expect(Limitation.openFiles(hardLimit: 1_048_576) == nil)
        let crun = try #require(Limitation.openFiles(hardLimit: 1024))
        #expect(crun.reason == "the open-file hard limit is 1024")
        #expect(crun.effect.hasPrefix("about \((1024 - 64) / Limitation.descriptorsPerAgent) agents"))
        #expect(crun.fix.contains("--ulimit nofile"))
    }

    @Test func memoryLockNamesTheMissingCapability() {
        let limitation = Limitation.memoryLock(error: "ENOMEM", capabilities: CapabilitySet(bits: 0))
        #expect(limitation.reason == "mlockall failed: ENOMEM (no CAP_IPC_LOCK)")
        #expect(limitation.fix.contains("IPC_LOCK"))
        #expect(Limitation.memoryLock(error: "ENOMEM", capabilities: nil).reason == "mlockall failed: ENOMEM")
    }

    @Test func groupTotalsAreClampedToTheRootsLimits() {
        // heavy_computation_agent's totals (4 GB, 200% CPU, 500 processes) below a container
        // root of 768 MiB, 80% of one CPU and 360 processes.
        let totals = CgroupSettings(memoryMax: .limit(4_000_000_000), cpuMax: CPUMax(percent: 200), pidsMax: .limit(500))
        let ceiling = CgroupSettings(memoryMax: .limit(805_306_368), cpuMax: CPUMax(quota: 80_000, period: 100_000), pidsMax: .limit(360))
        let clamped = totals.clamped(to: ceiling)
        #expect(clamped.memoryMax == .limit(805_306_368))
        #expect(clamped.cpuMax == CPUMax(quota: 80_000, period: 100_000))
        #expect(clamped.pidsMax == .limit(360))
        // Smaller totals stay; an unlimited ceiling changes nothing; what is not set stays unset.
        let small = CgroupSettings(memoryMax: .limit(1_000), cpuMax: CPUMax(percent: 10), pidsMax: .limit(5))
        #expect(small.clamped(to: ceiling) == small)
        #expect(totals.clamped(to: CgroupSettings(memoryMax: .max, cpuMax: CPUMax(quota: nil), pidsMax: .max)) == totals)
        #expect(CgroupSettings(pidsMax: .max).clamped(to: ceiling) == CgroupSettings(pidsMax: .limit(360)))
        #expect(CgroupSettings().clamped(to: ceiling) == CgroupSettings())
    }
}
