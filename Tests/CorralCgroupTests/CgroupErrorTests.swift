import CorralCgroup
import CorralCore
import SystemPackage
import Testing

/// One errno from one operation, and what the user must be told.
struct ExplainCase: Sendable, CustomTestStringConvertible {
    var errno: Errno
    var operation: CgroupError.Operation
    var file: CgroupFile?
    var value: String?
    var code: CgroupError.Code
    /// Phrases the message must contain (besides the path and the value).
    var says: [String] = []
    /// Phrases the fix must contain; nil when no fix is expected.
    var fix: [String]?

    var testDescription: String {
        "\(errno.name) on \(operation.rawValue) \(file?.rawValue ?? "<dir>")\(value.map { " '\($0.trimmingSpaces())'" } ?? "")"
    }
}

@Suite struct CgroupErrorTests {
    static let path = "/sys/fs/cgroup/corral/lightweight_agent/crawler-1"

    static let cases: [ExplainCase] = [
        // EBUSY means a different rule per file.
        ExplainCase(
            errno: .resourceBusy, operation: .write, file: .subtreeControl, value: "+memory +cpu\n",
            code: .internalProcesses, says: ["no-internal-process rule", "processes of its own"],
            fix: ["supervisor/", "child cgroup"]),
        ExplainCase(
            errno: .resourceBusy, operation: .write, file: .procs, value: "4242", code: .busy,
            says: ["cgroup.subtree_control is not empty", "leaf"], fix: ["leaf cgroup"]),
        ExplainCase(
            errno: .resourceBusy, operation: .removeDirectory, file: nil, value: nil, code: .busy,
            says: ["cannot remove", "still has processes or child cgroups"], fix: ["cgroup.kill", "retry"]),
        ExplainCase(
            errno: .resourceBusy, operation: .write, file: .memoryMax, value: "100000000", code: .busy,
            says: ["busy"]),
        // ENOENT: a controller that is not there, or a missing file or cgroup.
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .write, file: .subtreeControl, value: "+memory +cpu +pids",
            code: .controllerUnavailable, says: ["cgroup.controllers"],
            fix: ["parent's cgroup.subtree_control", "systemd.unified_cgroup_hierarchy=1"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .write, file: .memoryMax, value: "100000000",
            code: .controllerUnavailable, says: ["memory.max", "the memory controller is not enabled"],
            fix: ["+memory", "cgroup.controllers"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .write, file: .cpuMax, value: "10000 100000",
            code: .controllerUnavailable, says: ["the cpu controller"], fix: ["+cpu"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .read, file: .pidsPeak, value: nil,
            code: .controllerUnavailable, says: ["pids.peak", "the pids controller"], fix: ["+pids"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .read, file: .events, value: nil, code: .notFound,
            says: ["cgroup.events does not exist"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .write, file: .kill, value: "1", code: .notFound,
            says: ["cgroup.kill"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .makeDirectory, file: nil, value: nil, code: .notFound,
            says: ["does not exist"]),
        // EINVAL / ERANGE: a value the kernel does not take.
        ExplainCase(
            errno: .invalidArgument, operation: .write, file: .subtreeControl, value: "+memory +bogus",
            code: .invalidValue, says: ["does not know a controller"], fix: ["memory, cpu, pids, io"]),
        ExplainCase(
            errno: .invalidArgument, operation: .write, file: .cpuMax, value: "500 100000", code: .invalidValue,
            says: ["at least 1 ms", "cpu.max.burst"], fix: ["0.1%"]),
        ExplainCase(
            errno: .outOfRange, operation: .write, file: .cpuMax, value: "2000 2000000", code: .invalidValue,
            says: ["period between 1 ms and 1 s"], fix: []),
        ExplainCase(
            errno: .invalidArgument, operation: .write, file: .memoryMax, value: "lots", code: .invalidValue,
            says: ["rejected"], fix: ["memory.max"]),
        ExplainCase(
            errno: .invalidArgument, operation: .write, file: .memoryOOMGroup, value: "2", code: .invalidValue,
            says: ["memory.oom.group"], fix: ["memory.oom.group"]),
        // EOPNOTSUPP: threaded cgroups and invalid topologies.
        ExplainCase(
            errno: .notSupported, operation: .write, file: .kill, value: "1", code: .notSupported,
            says: ["threaded"], fix: ["cgroup.type", "domain"]),
        ExplainCase(
            errno: .notSupported, operation: .write, file: .subtreeControl, value: "+memory", code: .notSupported,
            says: ["threaded", "invalid topology"], fix: ["domain"]),
        // EAGAIN on mkdir is the descendants/depth limit, not ENOSPC.
        ExplainCase(
            errno: .resourceTemporarilyUnavailable, operation: .makeDirectory, file: nil, value: nil,
            code: .limitReached, says: ["cgroup.max.descendants", "cgroup.max.depth"],
            fix: ["cgroup.max.descendants"]),
        ExplainCase(
            errno: .noSpace, operation: .makeDirectory, file: nil, value: nil, code: .limitReached,
            says: ["cgroup.max.descendants"], fix: []),
        ExplainCase(
            errno: .resourceTemporarilyUnavailable, operation: .write, file: .pidsMax, value: "20", code: .io,
            says: ["failed"]),
        // Permissions.
        ExplainCase(
            errno: .permissionDenied, operation: .write, file: .procs, value: "4242", code: .permissionDenied,
            says: ["common ancestor"], fix: ["sudo", "Delegate=yes"]),
        ExplainCase(
            errno: .permissionDenied, operation: .write, file: .memoryMax, value: "100000000",
            code: .permissionDenied, says: ["permission denied"], fix: ["sudo", "Delegate=yes"]),
        ExplainCase(
            errno: .notPermitted, operation: .makeDirectory, file: nil, value: nil, code: .permissionDenied,
            says: ["permission denied", "mkdir"], fix: ["sudo"]),
        ExplainCase(
            errno: .notPermitted, operation: .removeDirectory, file: nil, value: nil, code: .permissionDenied,
            says: ["rmdir"], fix: ["sudo"]),
        ExplainCase(
            errno: .readOnlyFileSystem, operation: .write, file: .cpuMax, value: "10000 100000",
            code: .permissionDenied, says: ["read-only"], fix: ["writable"]),
        // Leaving the root.
        ExplainCase(
            errno: .tooManySymbolicLinkLevels, operation: .read, file: .procs, value: nil, code: .outsideRoot,
            says: ["symbolic link"], fix: ["remove the link"]),
        ExplainCase(
            errno: .tooManySymbolicLinkLevels, operation: .write, file: .memoryMax, value: "100000000",
            code: .outsideRoot, says: ["symbolic link"], fix: ["beneath the root"]),
        ExplainCase(
            errno: .improperLink, operation: .open, file: nil, value: nil, code: .outsideRoot,
            says: ["leaves the cgroup root"], fix: []),
        // A cgroup removed under an open fd.
        ExplainCase(
            errno: .operationNotSupportedByDevice, operation: .read, file: .events, value: nil, code: .removed,
            says: ["has been removed"]),
        ExplainCase(
            errno: .operationNotSupportedByDevice, operation: .write, file: .freeze, value: "1", code: .removed,
            says: ["has been removed"]),
        ExplainCase(
            errno: .fileExists, operation: .makeDirectory, file: nil, value: nil, code: .alreadyExists,
            says: ["already exists"]),
        // Cases that used to end without a fix.
        ExplainCase(
            errno: .resourceBusy, operation: .write, file: .freeze, value: "1", code: .busy,
            says: ["busy", "in progress"], fix: ["retry", "another program"]),
        ExplainCase(
            errno: .resourceBusy, operation: .write, file: .memoryPressure, value: "some 150000 1000000", code: .busy,
            says: ["pressure trigger is already registered"], fix: ["open", "memory.pressure again"]),
        ExplainCase(
            errno: .operationNotSupportedByDevice, operation: .read, file: .memoryCurrent, value: nil, code: .removed,
            says: ["memory.current belongs to a cgroup that has been removed"], fix: ["the cgroup is gone", "start the agent again"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .read, file: .procs, value: nil, code: .notFound,
            says: ["cgroup.procs does not exist", "not a cgroup v2 directory"], fix: ["stat -f -c %T", "cgroup2"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .write, file: .kill, value: "1", code: .notFound,
            says: ["Linux 5.14"], fix: ["5.14", "freezing the cgroup"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .write, file: .freeze, value: "1", code: .notFound,
            says: ["Linux 5.2"], fix: ["5.2"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .read, file: .cpuPressure, value: nil, code: .notFound,
            says: ["PSI"], fix: ["psi=1"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .makeDirectory, file: nil, value: nil, code: .notFound,
            says: ["its parent cgroup does not exist"], fix: ["--cgroup-root"]),
        ExplainCase(
            errno: .noSuchFileOrDirectory, operation: .list, file: nil, value: nil, code: .notFound,
            says: ["list", "does not exist"], fix: ["check the path"]),
        ExplainCase(
            errno: .resourceTemporarilyUnavailable, operation: .write, file: .procs, value: "4242", code: .io,
            says: ["try again"], fix: ["retry"]),
        ExplainCase(
            errno: .noSuchProcess, operation: .write, file: .procs, value: "4242", code: .io,
            says: ["process '4242' no longer exists"], fix: ["exited"]),
        ExplainCase(
            errno: .readOnlyFileSystem, operation: .makeDirectory, file: nil, value: nil, code: .permissionDenied,
            says: ["read-only"], fix: ["Delegate=yes", "cgroupns"]),
        ExplainCase(
            errno: .fileExists, operation: .makeDirectory, file: nil, value: nil, code: .alreadyExists,
            says: ["already exists"], fix: ["another name", "rmdir"]),
        ExplainCase(
            errno: .ioError, operation: .read, file: .memoryStat, value: nil, code: .io, says: ["failed"], fix: ["dmesg"]),
        ExplainCase(
            errno: .ioError, operation: .write, file: .cpuWeight, value: "100", code: .io, says: ["failed"]),
    ]

    @Test(arguments: cases)
    func explain(_ c: ExplainCase) {
        let error = CgroupError.explain(c.errno, operation: c.operation, path: Self.path, file: c.file, value: c.value)
        #expect(error.code == c.code)
        #expect(error.errno == c.errno)
        #expect(error.operation == c.operation)
        #expect(error.value == c.value)
        #expect(error.path == Self.path + (c.file.map { "/" + $0.rawValue } ?? ""))
        #expect(error.message.contains(Self.path), "the message names the cgroup")
        if let value = c.value {
            #expect(error.message.contains("'\(value.trimmingSpaces())'"), "the message names the value")
        }
        for phrase in c.says {
            #expect(error.message.contains(phrase), "message: \(error.message)")
        }
        #expect(error.fix?.isEmpty == false, "every error says what to do: \(error.message)")
        if let fix = c.fix {
            for phrase in fix {
                #expect(error.fix?.contains(phrase) == true, "fix: \(error.fix ?? "none")")
            }
        }
        #expect(error.description.contains("(\(c.errno.name))"))
        #expect(!error.message.contains("\n"), "values are trimmed into one line")
    }

    /// Every errno cgroupfs is known to return (and the ones around them), on every
    /// kind of operation Corral performs: the message names the path and the
    /// value written, and there is a fix.
    static let kernelErrnos: [Errno] = [
        .resourceBusy, .noSuchFileOrDirectory, .invalidArgument, .notSupported, .resourceTemporarilyUnavailable, .noSpace,
        .permissionDenied, .notPermitted, .operationNotSupportedByDevice, .fileExists, .readOnlyFileSystem, .outOfRange,
        .noSuchProcess, .tooManySymbolicLinkLevels, .improperLink, .ioError, .badFileDescriptor,
    ]
    static let operations: [(CgroupError.Operation, CgroupFile?, String?)] = [
        (.makeDirectory, nil, nil), (.removeDirectory, nil, nil), (.open, nil, nil), (.list, nil, nil),
        (.write, .subtreeControl, "+memory +cpu +pids"), (.write, .procs, "4242"), (.write, .memoryMax, "104857600"),
        (.write, .cpuMax, "20000 100000"), (.write, .kill, "1"), (.write, .freeze, "1"),
        (.write, .memoryPressure, "some 150000 1000000"), (.read, .events, nil), (.read, .memoryStat, nil),
        (.wait, .events, nil), (.read, .pidsPeak, nil),
    ]

    @Test(arguments: kernelErrnos)
    func everyErrnoNamesPathValueAndFix(errno: Errno) {
        for (operation, file, value) in Self.operations {
            let error = CgroupError.explain(errno, operation: operation, path: Self.path, file: file, value: value)
            let context = "\(errno.name) \(operation.rawValue) \(file?.rawValue ?? "<dir>"): \(error.description)"
            #expect(error.message.contains(Self.path), "\(context)")
            if let value { #expect(error.message.contains("'\(value)'"), "\(context)") }
            #expect(error.fix?.isEmpty == false, "\(context)")
            #expect(error.errno == errno)
        }
    }

    @Test func descriptionShowsErrnoAndFix() {
        let error = CgroupError.explain(
            .resourceBusy, operation: .write, path: "/sys/fs/cgroup/corral", file: .subtreeControl,
            value: "+memory +cpu +pids")
        #expect(error.description.hasPrefix(error.message + " (EBUSY)\n  fix: "))
        #expect(error.description.hasSuffix(error.fix ?? "missing"))
    }

    @Test(arguments: [
        (Errno.permissionDenied, "EACCES"), (.notPermitted, "EPERM"), (.resourceBusy, "EBUSY"),
        (.noSuchFileOrDirectory, "ENOENT"), (.invalidArgument, "EINVAL"), (.notSupported, "EOPNOTSUPP"),
        (.resourceTemporarilyUnavailable, "EAGAIN"), (.fileExists, "EEXIST"),
        (.operationNotSupportedByDevice, "ENODEV"), (.tooManySymbolicLinkLevels, "ELOOP"), (.improperLink, "EXDEV"),
        (.noSpace, "ENOSPC"), (.outOfRange, "ERANGE"), (.noSuchProcess, "ESRCH"), (Errno(rawValue: 4242), "errno 4242"),
    ])
    func errnoNames(errno: Errno, name: String) {
        #expect(errno.name == name)
    }

    @Test(arguments: [
        (CgroupFile.memoryMax, Controller?.some(.memory)), (.memoryPeak, .memory), (.memoryPressure, nil),
        (.cpuMax, .cpu), (.cpuStat, nil), (.cpuPressure, nil), (.pidsPeak, .pids), (.ioMax, .io),
        (.ioPressure, nil), (.procs, nil), (.kill, nil),
    ])
    func fileController(file: CgroupFile, controller: Controller?) {
        #expect(file.controller == controller)
    }
}
