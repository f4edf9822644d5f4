import CorralCgroup
import CorralCore
import CorralTestSupport
import SystemPackage
import Testing

/// The fake must follow the kernel's rules, or the tree tests prove nothing.
@Suite struct FakeCgroupFilesystemTests {
    let x = CgroupPath(["x"])
    let xy = CgroupPath(["x", "y"])

    @Test func interfaceFilesFollowTheParentsSubtreeControl() throws {
        let fs = FakeCgroupFilesystem()
        try fs.makeDirectory(x)
        #expect(fs.value(.controllers, at: .anchor) == "cpuset cpu io memory hugetlb pids")
        #expect(fs.value(.controllers, at: x) == "")
        #expect(!fs.contains(.memoryMax, in: x))
        #expect(fs.contains(.cpuStat, in: x))
        #expect(fs.value(.cpuStat, at: x) == "usage_usec 0\nuser_usec 0\nsystem_usec 0")
        #expect(fs.contains(.freeze, in: x) && fs.contains(.kill, in: x) && fs.contains(.events, in: x))
        // The hierarchy root has no cgroup.events/freeze/kill and no limit files.
        #expect(!fs.contains(.events, in: .anchor) && !fs.contains(.freeze, in: .anchor))

        try fs.write("+memory +pids", to: .subtreeControl, of: .anchor)
        #expect(fs.value(.controllers, at: x) == "memory pids")
        #expect(fs.contains(.memoryMax, in: x) && fs.contains(.memoryOOMGroup, in: x) && fs.contains(.pidsMax, in: x))
        #expect(!fs.contains(.cpuMax, in: x))
        #expect(fs.value(.memoryMax, at: x) == "max")

        try fs.write("-pids", to: .subtreeControl, of: .anchor)
        #expect(!fs.contains(.pidsMax, in: x))
    }

    @Test func subtreeControlIsAllOrNothing() throws {
        let fs = FakeCgroupFilesystem(rootControllers: ["memory", "cpu"])
        try fs.makeDirectory(x)

        let unavailable = #expect(throws: CgroupError.self) {
            try fs.write("+memory +pids", to: .subtreeControl, of: .anchor)
        }
        #expect(unavailable?.code == .controllerUnavailable)
        #expect(unavailable?.errno == .noSuchFileOrDirectory)
        #expect(fs.subtreeControl(.anchor) == [])

        let unknown = #expect(throws: CgroupError.self) { try fs.write("+memory +bogus", to: .subtreeControl, of: .anchor) }
        #expect(unknown?.code == .invalidValue)
        let unsigned = #expect(throws: CgroupError.self) { try fs.write("memory", to: .subtreeControl, of: .anchor) }
        #expect(unsigned?.code == .invalidValue)
        #expect(fs.subtreeControl(.anchor) == [])

        try fs.write("+memory +cpu", to: .subtreeControl, of: .anchor)
        #expect(fs.value(.subtreeControl, at: .anchor) == "cpu memory")
        try fs.write("+memory", to: .subtreeControl, of: x)
        // A controller a child still uses cannot be disabled.
        let inUse = #expect(throws: CgroupError.self) { try fs.write("-memory", to: .subtreeControl, of: .anchor) }
        #expect(inUse?.errno == .resourceBusy)
    }

    @Test func theNoInternalProcessRule() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, procs: [1], subtreeControl: ["memory", "pids"])
        fs.seed(x, procs: [10])
        fs.seed(CgroupPath(["z"]))

        // Enabling in a non-root cgroup with processes: EBUSY.
        let enable = #expect(throws: CgroupError.self) { try fs.write("+memory", to: .subtreeControl, of: x) }
        #expect(enable?.code == .internalProcesses)
        #expect(enable?.message.contains("/sys/fs/cgroup/x") == true)
        // Moving a process into a cgroup with subtree_control set: EBUSY.
        fs.seed(CgroupPath(["z"]), subtreeControl: ["memory"])
        let move = #expect(throws: CgroupError.self) { try fs.write("10", to: .procs, of: CgroupPath(["z"])) }
        #expect(move?.code == .busy)
        #expect(move?.message.contains("'10'") == true)
        // The root is exempt; a process that does not exist is ESRCH.
        try fs.write("+memory +cpu", to: .subtreeControl, of: .anchor)
        let missing = #expect(throws: CgroupError.self) { try fs.write("999", to: .procs, of: x) }
        #expect(missing?.errno == .noSuchProcess)

        try fs.makeDirectory(xy)
        try fs.write("10", to: .procs, of: xy)
        #expect(fs.procs(x) == [] && fs.procs(xy) == [10])
        #expect(fs.value(.events, at: x) == "populated 1\nfrozen 0")
        #expect(fs.value(.pidsCurrent, at: x) == "1")
    }

    @Test func directoriesFollowTheKernel() throws {
        let fs = FakeCgroupFilesystem()
        try fs.makeDirectory(x)
        let exists = #expect(throws: CgroupError.self) { try fs.makeDirectory(x) }
        #expect(exists?.code == .alreadyExists)
        let noParent = #expect(throws: CgroupError.self) { try fs.makeDirectory(CgroupPath(["q", "r"])) }
        #expect(noParent?.code == .notFound)
        try fs.makeDirectory(xy)
        #expect(try fs.children(of: x) == ["y"])
        let withChild = #expect(throws: CgroupError.self) { try fs.removeDirectory(x) }
        #expect(withChild?.code == .busy)
        fs.seed(xy, procs: [5])
        let withProcs = #expect(throws: CgroupError.self) { try fs.removeDirectory(xy) }
        #expect(withProcs?.code == .busy)
        let gone = #expect(throws: CgroupError.self) { try fs.removeDirectory(CgroupPath(["q"])) }
        #expect(gone?.code == .notFound)
        let listGone = #expect(throws: CgroupError.self) { try fs.children(of: CgroupPath(["q"])) }
        #expect(listGone?.code == .notFound)
    }

    @Test(arguments: [
        (CgroupFile.memoryMax, "100M"), (.memoryMax, "-1"), (.memoryHigh, "lots"), (.memoryOOMGroup, "2"),
        (.cpuMax, "500 100000"), (.cpuMax, "10000 2000000"), (.cpuMax, "10000 500"), (.cpuMax, "a b c"),
        (.cpuMaxBurst, "-5"), (.cpuMaxBurst, "20000"), (.cpuWeight, "0"), (.cpuWeight, "10001"),
        (.pidsMax, "-1"), (.pidsMax, "many"), (.freeze, "2"), (.kill, "0"), (.procs, "abc"), (.procs, "0"),
    ])
    func junkIsRejectedWithEINVAL(file: CgroupFile, value: String) throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["memory", "cpu", "pids"])
        fs.seed(x)
        try fs.write("10000 100000", to: .cpuMax, of: x)
        let error = #expect(throws: CgroupError.self) { try fs.write(value, to: file, of: x) }
        #expect(error?.errno == .invalidArgument)
        #expect(error?.code == .invalidValue)
        #expect(error?.value == value)
        #expect(fs.writes == [.write("x", .cpuMax, "10000 100000")])
    }

    @Test(arguments: [
        (CgroupFile.memoryMax, "100000000\n", "100000000"), (.memoryHigh, "max", "max"), (.memoryOOMGroup, "1", "1"),
        (.cpuMax, "10000 100000", "10000 100000"), (.cpuMax, "max", "max 100000"), (.cpuMaxBurst, "5000", "5000"),
        (.cpuWeight, "10000", "10000"), (.pidsMax, "20", "20"),
    ])
    func validValuesAreStored(file: CgroupFile, value: String, stored: String) throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["memory", "cpu", "pids"])
        fs.seed(x)
        try fs.write("10000 100000", to: .cpuMax, of: x)
        try fs.write(value, to: file, of: x)
        #expect(fs.value(file, at: x) == stored)
    }

    @Test func readOnlyFilesAndMissingFiles() throws {
        let fs = FakeCgroupFilesystem(missingFiles: [.kill, .memoryPeak])
        fs.seed(.anchor, subtreeControl: ["memory"])
        fs.seed(x)
        let readOnly = #expect(throws: CgroupError.self) { try fs.write("1", to: .memoryCurrent, of: x) }
        #expect(readOnly?.code == .permissionDenied)
        #expect(!fs.contains(.kill, in: x))
        let kill = #expect(throws: CgroupError.self) { try fs.write("1", to: .kill, of: x) }
        #expect(kill?.code == .notFound)
        let peak = #expect(throws: CgroupError.self) { try fs.read(.memoryPeak, of: x) }
        #expect(peak?.code == .controllerUnavailable)
    }

    @Test func freezeAndKill() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(xy, procs: [7, 8])
        try fs.write("1", to: .freeze, of: xy)
        #expect(fs.value(.events, at: xy) == "populated 1\nfrozen 1")
        fs.freezeCompletes = false
        try fs.write("0", to: .freeze, of: xy)
        try fs.write("1", to: .freeze, of: xy)
        #expect(fs.value(.freeze, at: xy) == "1")
        #expect(fs.value(.events, at: xy) == "populated 1\nfrozen 0")
        try fs.write("1", to: .kill, of: x)
        #expect(fs.killed == [7, 8])
        #expect(fs.value(.events, at: x) == "populated 0\nfrozen 0")
    }

    @Test func injectedErrorsFireOnceOrAlways() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(x)
        fs.inject(.permissionDenied, on: .makeDirectory, path: xy)
        let once = #expect(throws: CgroupError.self) { try fs.makeDirectory(xy) }
        #expect(once?.code == .permissionDenied)
        #expect(once?.fix != nil)
        try fs.makeDirectory(xy)

        fs.inject(.resourceTemporarilyUnavailable, on: .makeDirectory, times: nil)
        for name in ["a", "b"] {
            let error = #expect(throws: CgroupError.self) { try fs.makeDirectory(x.appending(name)) }
            #expect(error?.code == .limitReached)
            #expect(error?.message.contains("/sys/fs/cgroup/x/\(name)") == true)
        }

        fs.inject(.notSupported, on: .write, file: .kill, times: 2)
        for _ in 0..<2 {
            let error = #expect(throws: CgroupError.self) { try fs.write("1", to: .kill, of: xy) }
            #expect(error?.message.contains("threaded") == true)
        }
        try fs.write("1", to: .kill, of: xy)

        fs.inject(.operationNotSupportedByDevice, on: .read, path: x, file: .events)
        let removed = #expect(throws: CgroupError.self) { try fs.read(.events, of: x) }
        #expect(removed?.code == .removed)
        #expect(try fs.read(.events, of: x) == "populated 0\nfrozen 0\n")

        fs.inject(.tooManySymbolicLinkLevels, on: .open, path: x)
        let outside = #expect(throws: CgroupError.self) { try fs.exists(x) }
        #expect(outside?.code == .outsideRoot)

        #expect(
            fs.log == [
                .failed(.permissionDenied, .makeDirectory, "x/y", nil), .mkdir("x/y"),
                .failed(.resourceTemporarilyUnavailable, .makeDirectory, "x/a", nil),
                .failed(.resourceTemporarilyUnavailable, .makeDirectory, "x/b", nil),
                .failed(.notSupported, .write, "x/y", .kill), .failed(.notSupported, .write, "x/y", .kill),
                .write("x/y", .kill, "1"),
                .failed(.operationNotSupportedByDevice, .read, "x", .events),
                .failed(.tooManySymbolicLinkLevels, .open, "x", nil),
            ])
    }

    @Test func theLockIsCountedAndReleased() throws {
        let fs = FakeCgroupFilesystem()
        do {
            let lock = try fs.lockTree()
            withExtendedLifetime(lock) { #expect(fs.lockCount == 1) }
        }
        #expect(fs.lockCount == 0)
        fs.inject(.permissionDenied, on: .lock)
        #expect(throws: CgroupError.self) { try fs.lockTree() }
    }
}
