import CorralCgroup
import CorralCore
import Foundation
import Synchronization
import Testing

/// A temporary directory laid out like a cgroup v2 hierarchy: directories
/// with the interface files a kernel of a given age would show.
final class FakeHierarchy: Sendable {
    let root: String
    /// Paths the injected `isWritable` denies (root passes every real check).
    let readOnly = Mutex<Set<String>>([])

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("corral-hierarchy-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: false)
        try file("cgroup.procs", "")
        try file("cgroup.controllers", "cpuset cpu io memory hugetlb pids")
        try file("cgroup.subtree_control", "")
        try file("memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Writes `name` under `relative` ("" for the hierarchy root).
    func file(_ name: String, _ content: String, in relative: String = "") throws {
        let directory = relative.isEmpty ? root : root + "/" + relative
        try content.write(toFile: directory + "/" + name, atomically: false, encoding: .utf8)
    }

    /// A child cgroup with the core files of a kernel that has `core` and
    /// the files of `controllers` (as enabled by its parent).
    func cgroup(
        _ relative: String, controllers: [String] = [], core: [String] = ["cgroup.kill", "cgroup.freeze"],
        extra: [String] = [], procs: String = ""
    ) throws {
        try FileManager.default.createDirectory(atPath: root + "/" + relative, withIntermediateDirectories: true)
        try file("cgroup.procs", procs, in: relative)
        try file("cgroup.events", "populated 0\nfrozen 0\n", in: relative)
        try file("cgroup.controllers", controllers.joined(separator: " "), in: relative)
        try file("cgroup.subtree_control", "", in: relative)
        for name in core + extra { try file(name, "0\n", in: relative) }
    }

    var files: HostFiles {
        let real = HostFiles.system
        return HostFiles(
            exists: real.exists, isWritable: { [self] path in !readOnly.withLock { $0.contains(path) } && real.isWritable(path) },
            read: real.read, directories: real.directories, isMarkedCreatedByCorral: real.isMarkedCreatedByCorral)
    }

    func probe(cgroupRoot: String? = nil, ownCgroup: String? = nil, kernel: (Int, Int) = (6, 1)) -> [String: KernelFeature] {
        let candidates = KernelFeatureProbe.candidates(hierarchyRoot: root, cgroupRoot: cgroupRoot, ownCgroup: ownCgroup, files: files)
        let features = KernelFeatureProbe.probe(
            hierarchyRoot: root, candidates: candidates, kernel: kernel, release: "\(kernel.0).\(kernel.1).0",
            procPressure: root + "/no-proc-pressure", files: files)
        return Dictionary(uniqueKeysWithValues: features.map { ($0.name, $0) })
    }
}

@Suite struct KernelFeatureProbeTests {
    @Test func aModernKernelsFilesAreFoundAndNamed() throws {
        let h = try FakeHierarchy()
        try h.cgroup("system.slice", controllers: ["memory", "pids"], extra: ["memory.peak", "pids.peak", "memory.pressure"])
        let features = h.probe()
        for name in ["cgroup.kill", "cgroup.freeze", "memory.peak", "pids.peak"] {
            let feature = try #require(features[name])
            #expect(feature.availability == .available, "\(feature)")
            #expect(feature.basis == .file)
            #expect(feature.evidence == "\(h.root)/system.slice/\(name) exists")
        }
        #expect(features["PSI"]?.availability == .available)
        #expect(features["PSI"]?.evidence == "\(h.root)/memory.pressure exists")
    }

    /// A 5.10 kernel: no cgroup.kill (5.14), no memory.peak (5.19), no pids.peak (6.1).
    @Test func anOlderKernelsMissingFilesAreAbsent() throws {
        let h = try FakeHierarchy()
        try h.cgroup("system.slice", controllers: ["memory", "pids"], core: ["cgroup.freeze"])
        try h.cgroup("user.slice", controllers: ["memory", "pids"], core: ["cgroup.freeze"])
        let features = h.probe(kernel: (5, 10))
        #expect(features["cgroup.freeze"]?.availability == .available)
        let kill = try #require(features["cgroup.kill"])
        #expect(kill.availability == .absent)
        #expect(kill.evidence.contains("not in \(h.root)/system.slice and 1 other cgroup"), "\(kill.evidence)")
        #expect(kill.evidence.contains("(5.14)"))
        #expect(kill.consequence.contains("freeze the cgroup and signal each process"))
        #expect(features["memory.peak"]?.availability == .absent)
        #expect(features["memory.peak"]?.evidence.contains("with the memory controller") == true)
        #expect(features["pids.peak"]?.availability == .absent)
    }

    /// The version does not decide file-based features: a kernel that says
    /// 6.1 but whose cgroups lack the files is reported as it is.
    @Test func theVersionDoesNotOverrideWhatIsThere() throws {
        let h = try FakeHierarchy()
        try h.cgroup("a", controllers: ["memory"], core: [])
        let features = h.probe(kernel: (6, 8))
        #expect(features["cgroup.kill"]?.availability == .absent)
        #expect(features["memory.peak"]?.availability == .absent)
    }

    /// The hybrid host: the v2 hierarchy offers no memory or pids controller,
    /// and has no child cgroup.
    @Test func aControllerlessHierarchyWithoutChildren() throws {
        let h = try FakeHierarchy()
        try h.file("cgroup.controllers", "")
        let features = h.probe(kernel: (6, 18))
        for name in ["memory.peak", "pids.peak"] {
            let feature = try #require(features[name])
            #expect(feature.availability == .absent)
            #expect(feature.evidence.hasPrefix("cgroup v2 has no"))
            #expect(feature.evidence.contains("\(h.root)/cgroup.controllers does not list it"))
        }
        for name in ["cgroup.kill", "cgroup.freeze"] {
            let feature = try #require(features[name])
            #expect(feature.availability == .unchecked, "not 'available' because the version is new")
            #expect(feature.evidence.hasPrefix("not checked: \(h.root) has no child cgroup to look in"))
        }
        #expect(features["PSI"]?.availability == .available)
    }

    /// memory.peak exists only where the memory controller is enabled: a
    /// child without it proves nothing either way.
    @Test func aControllerFileIsOnlyLookedForWhereTheControllerIsEnabled() throws {
        let h = try FakeHierarchy()
        try h.cgroup("init.scope", controllers: [])
        let features = h.probe()
        let peak = try #require(features["memory.peak"])
        #expect(peak.availability == .unchecked)
        #expect(peak.evidence.contains("no cgroup below \(h.root) has the memory controller enabled"))
        #expect(features["cgroup.kill"]?.availability == .available)
    }

    /// The configured root and its children are looked at first, then this
    /// process's cgroup, then the hierarchy's children; directories that are
    /// not cgroups are skipped.
    @Test func candidatesOrder() throws {
        let h = try FakeHierarchy()
        try h.cgroup("aaa")
        try h.cgroup("corral")
        try h.cgroup("corral/standard_agent")
        try h.cgroup("user.slice/session-1.scope")
        try FileManager.default.createDirectory(atPath: h.root + "/not-a-cgroup", withIntermediateDirectories: false)
        let candidates = KernelFeatureProbe.candidates(
            hierarchyRoot: h.root, cgroupRoot: h.root + "/corral", ownCgroup: "/user.slice/session-1.scope", files: h.files)
        #expect(
            candidates == [
                h.root + "/corral", h.root + "/corral/standard_agent", h.root + "/user.slice/session-1.scope", h.root + "/aaa",
            ])
    }

    @Test func psiWithoutAnyPressureFile() throws {
        let h = try FakeHierarchy()
        try FileManager.default.removeItem(atPath: h.root + "/memory.pressure")
        let psi = try #require(h.probe()["PSI"])
        #expect(psi.availability == .absent)
        #expect(psi.evidence.contains("psi=1"))
    }

    @Test func clone3IsJudgedByVersionAndSaysSo() throws {
        let h = try FakeHierarchy()
        let modern = try #require(h.probe(kernel: (5, 7))["clone3 into cgroup"])
        #expect(modern.availability == .available)
        #expect(modern.basis == .kernelVersion)
        #expect(modern.evidence.contains("not probed"))
        let old = try #require(h.probe(kernel: (5, 6))["clone3 into cgroup"])
        #expect(old.availability == .absent)
        #expect(old.consequence.contains("cgroup.procs"))
    }
}

@Suite struct CgroupRootReadinessTests {
    /// `<hierarchy>/corral` below a hierarchy root that offers everything.
    func location(_ h: FakeHierarchy) -> CgroupRootLocation {
        CgroupRootLocation(anchor: h.root, root: CgroupPath(["corral"]), isHierarchyRoot: false, rootPath: h.root + "/corral")
    }

    func findings(_ h: FakeHierarchy, selfPID: Int32? = 4242) -> [String: CgroupRootReadiness.Finding] {
        let list = CgroupRootReadiness.assess(location(h), selfPID: selfPID, files: h.files)
        return Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })
    }

    @Test func aMissingRootWithAnEnableableParent() throws {
        let h = try FakeHierarchy()
        let f = findings(h)
        #expect(f["cgroup root"]?.status == .ok)
        #expect(f["cgroup root"]?.detail == "\(h.root)/corral will be created in \(h.root)")
        #expect(f["root write access"]?.status == .ok)
        #expect(f["root write access"]?.detail.contains("\(h.root)/cgroup.procs and cgroup.subtree_control are writable") == true)
        #expect(f["root controllers"]?.status == .ok)
        #expect(
            f["root controllers"]?.detail
                == "memory, cpu, pids not yet enabled for \(h.root)/corral: Corral will write '+memory +cpu +pids' to \(h.root)/cgroup.subtree_control"
        )
        #expect(f["root processes"] == nil)
    }

    @Test func anExistingRootWithEverythingEnabled() throws {
        let h = try FakeHierarchy()
        try h.file("cgroup.subtree_control", "cpu memory pids")
        try h.cgroup("corral", controllers: ["cpu", "memory", "pids"], procs: "4242\n")
        let f = findings(h)
        #expect(f["cgroup root"]?.detail == "\(h.root)/corral exists")
        #expect(f["root controllers"]?.status == .ok)
        #expect(f["root controllers"]?.detail.contains("are enabled for \(h.root)/corral") == true)
        // Only this process lives there: Corral moves itself into supervisor/.
        #expect(f["root processes"] == nil)
    }

    /// `access(dir, W_OK)` passes for root on any directory: the files Corral
    /// writes are what must be writable.
    @Test func unwritableInterfaceFilesFailNamingThem() throws {
        let h = try FakeHierarchy()
        try h.cgroup("corral", controllers: ["cpu", "memory", "pids"])
        h.readOnly.withLock { $0 = [h.root + "/corral/cgroup.subtree_control"] }
        let f = findings(h)
        let access = try #require(f["root write access"])
        #expect(access.status == .failed)
        #expect(access.detail == "\(h.root)/corral/cgroup.subtree_control is not writable by this user")
        #expect(access.fix?.contains("Delegate=yes") == true)
    }

    @Test func aRootThatCannotBeCreated() throws {
        let h = try FakeHierarchy()
        h.readOnly.withLock { $0 = [h.root] }
        let f = findings(h)
        #expect(f["cgroup root"]?.status == .failed)
        #expect(f["cgroup root"]?.detail.contains("\(h.root) is not writable") == true)
    }

    @Test func controllersTheParentDoesNotOffer() throws {
        let h = try FakeHierarchy()
        try h.file("cgroup.controllers", "cpu io")
        let f = findings(h)
        let controllers = try #require(f["root controllers"])
        #expect(controllers.status == .failed)
        #expect(controllers.detail == "memory, pids cannot reach \(h.root)/corral: \(h.root)/cgroup.controllers does not list them")
        #expect(controllers.fix?.contains("+memory +pids") == true)
    }

    @Test func controllersThatCannotBeEnabledBecauseTheParentHasProcesses() throws {
        let h = try FakeHierarchy()
        // A non-root parent: <hierarchy>/delegated with its own processes.
        try h.cgroup("delegated", controllers: ["cpu", "memory", "pids"], procs: "17\n")
        let location = CgroupRootLocation(
            anchor: h.root + "/delegated", root: CgroupPath(["corral"]), isHierarchyRoot: false, rootPath: h.root + "/delegated/corral")
        let f = CgroupRootReadiness.assess(location, selfPID: 4242, files: h.files)
        let controllers = try #require(f.first { $0.name == "root controllers" })
        #expect(controllers.status == .failed)
        #expect(controllers.detail.contains("\(h.root)/delegated has processes of its own (17)"))
        #expect(controllers.detail.contains("no-internal-process rule"))
    }

    @Test func anUnwritableParentSubtreeControl() throws {
        let h = try FakeHierarchy()
        h.readOnly.withLock { $0 = [h.root + "/cgroup.subtree_control"] }
        let f = findings(h)
        #expect(f["root controllers"]?.status == .failed)
        #expect(f["root controllers"]?.detail.contains("\(h.root)/cgroup.subtree_control, which is not writable") == true)
        #expect(f["root controllers"]?.fix?.contains("'+memory +cpu +pids'") == true)
    }

    @Test func rootLimitsDependOnWhoMadeTheRoot() throws {
        let h = try FakeHierarchy()
        let missing = try #require(findings(h)["root limits"])
        #expect(missing.status == .ok)
        #expect(missing.detail.hasPrefix("Corral will create \(h.root)/corral, mark it as its own and write the system reservation"))

        try h.file("cgroup.subtree_control", "cpu memory pids")
        try h.cgroup("corral", controllers: ["cpu", "memory", "pids"], extra: ["memory.max", "cpu.max", "pids.max"])
        try h.file("memory.max", "4294967296\n", in: "corral")
        try h.file("cpu.max", "max 100000\n", in: "corral")
        try h.file("pids.max", "max\n", in: "corral")
        let users = try #require(findings(h)["root limits"])
        #expect(users.status == .warning)
        #expect(
            users.detail
                == "\(h.root)/corral was not created by Corral: its limits (memory.max 4294967296, cpu.max max 100000, pids.max max) are left as they are, Corral's system reservation is not written, and the directory is never removed"
        )
        #expect(users.fix?.contains("MemoryMax=") == true)

        // The mark a Corral process leaves on a root it creates (a real xattr here).
        try DirectoryCgroupFilesystem(anchorPath: h.root).markCreatedByCorral(CgroupPath(["corral"]))
        let own = try #require(findings(h)["root limits"])
        #expect(own.status == .ok)
        #expect(own.detail.contains("was created by Corral (user.corral.created)"))
    }

    @Test func foreignProcessesInTheRoot() throws {
        let h = try FakeHierarchy()
        try h.file("cgroup.subtree_control", "cpu memory pids")
        try h.cgroup("corral", controllers: ["cpu", "memory", "pids"], procs: "4242\n99\n")
        let processes = try #require(findings(h)["root processes"])
        #expect(processes.status == .failed)
        #expect(processes.detail.contains("(99)"))
        #expect(processes.fix?.contains("empty --cgroup-root") == true)
    }
}
