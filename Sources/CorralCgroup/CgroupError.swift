public import CorralCore
public import SystemPackage

/// A cgroupfs operation that failed, with a message that names the path, the
/// value and what to do. Shaped like NIOFS's FileSystemError: a code that can
/// grow, a human message, the underlying errno.
public struct CgroupError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        public static let notFound = Code(name: "notFound")
        public static let permissionDenied = Code(name: "permissionDenied")
        public static let busy = Code(name: "busy")
        public static let controllerUnavailable = Code(name: "controllerUnavailable")
        public static let internalProcesses = Code(name: "internalProcesses")
        public static let invalidValue = Code(name: "invalidValue")
        public static let notSupported = Code(name: "notSupported")
        public static let limitReached = Code(name: "limitReached")
        public static let alreadyExists = Code(name: "alreadyExists")
        public static let outsideRoot = Code(name: "outsideRoot")
        public static let removed = Code(name: "removed")
        public static let timedOut = Code(name: "timedOut")
        public static let hostUnsupported = Code(name: "hostUnsupported")
        public static let io = Code(name: "io")
    }

    /// What was being done.
    public enum Operation: String, Sendable {
        case open, read, write
        case makeDirectory = "mkdir"
        case removeDirectory = "rmdir"
        case list, wait, lock
    }

    public var code: Code
    public var operation: Operation
    /// The absolute path involved.
    public var path: String
    /// The value being written, if any.
    public var value: String?
    public var errno: Errno?
    /// What happened, naming the path and value.
    public var message: String
    /// What the user can do about it (always set by `explain`).
    public var fix: String?

    public init(
        code: Code, operation: Operation, path: String, value: String? = nil, errno: Errno? = nil,
        message: String, fix: String? = nil
    ) {
        self.code = code
        self.operation = operation
        self.path = path
        self.value = value
        self.errno = errno
        self.message = message
        self.fix = fix
    }

    public var description: String {
        var text = message
        if let errno { text += " (\(errno.name))" }
        if let fix { text += "\n  fix: \(fix)" }
        return text
    }
}

extension Errno {
    /// The symbolic name ("EBUSY") for messages; Errno's description is the strerror text.
    public var name: String {
        switch self {
        case .permissionDenied: "EACCES"
        case .notPermitted: "EPERM"
        case .resourceBusy: "EBUSY"
        case .noSuchFileOrDirectory: "ENOENT"
        case .invalidArgument: "EINVAL"
        case .notSupported: "EOPNOTSUPP"
        case .resourceTemporarilyUnavailable: "EAGAIN"
        case .fileExists: "EEXIST"
        case .operationNotSupportedByDevice: "ENODEV"
        case .readOnlyFileSystem: "EROFS"
        case .tooManySymbolicLinkLevels: "ELOOP"
        case .improperLink: "EXDEV"
        case .noSpace: "ENOSPC"
        case .outOfRange: "ERANGE"
        case .noSuchProcess: "ESRCH"
        case .badFileDescriptor: "EBADF"
        case .notDirectory: "ENOTDIR"
        case .directoryNotEmpty: "ENOTEMPTY"
        case .interrupted: "EINTR"
        case .noFunction: "ENOSYS"
        case .argListTooLong: "E2BIG"
        default: "errno \(rawValue)"
        }
    }
}

extension CgroupError {
    static let rootFix =
        "run as root (sudo), or point --cgroup-root at a cgroup delegated to your user (systemd-run --user --scope -p Delegate=yes …)"

    /// Turns an errno from `operation` on `file` (nil: the directory itself)
    /// at `path` into the error a user can act on. One errno means different
    /// things per file (EBUSY on subtree_control: the no-internal-process rule).
    /// Every message names the path (and the value, when one was written);
    /// every error carries a fix.
    public static func explain(
        _ errno: Errno, operation: Operation, path: String, file: CgroupFile?, value: String? = nil
    ) -> CgroupError {
        let target = file.map { "\(path)/\($0.rawValue)" } ?? path
        let quoted = value.map { "'\($0.trimmingSpaces())'" }
        let writing = quoted.map { "writing \($0) to \(target)" } ?? "\(operation.rawValue) \(target)"
        // "writing 'v' to <target> failed: " before a cause, when there is a value.
        let failedWrite = value == nil ? "" : "\(writing) failed: "
        func make(_ code: Code, _ message: String, fix: String) -> CgroupError {
            CgroupError(
                code: code, operation: operation, path: target, value: value, errno: errno, message: message, fix: fix)
        }

        switch (errno, file) {
        case (.readOnlyFileSystem, _):
            return make(
                .permissionDenied, "\(writing) failed: the cgroup filesystem is mounted read-only",
                fix:
                    "run Corral where cgroupfs is writable: on the host, or in a container with a private, writable cgroup namespace (docker run --cgroupns=private with a writable /sys/fs/cgroup, or a systemd unit with Delegate=yes)"
            )
        case (.permissionDenied, _), (.notPermitted, _):
            if file == .procs {
                return make(
                    .permissionDenied,
                    "permission denied \(writing): moving a process needs write access to the cgroup.procs of the common ancestor of its old and new cgroup",
                    fix: rootFix)
            }
            return make(.permissionDenied, "permission denied \(writing)", fix: rootFix)

        case (.tooManySymbolicLinkLevels, _), (.improperLink, _):
            return make(
                .outsideRoot,
                "\(failedWrite)refused to follow \(target): it is a symbolic link or leaves the cgroup root",
                fix: "cgroup roots and names must be real directories beneath the root; remove the link")

        case (.operationNotSupportedByDevice, _):
            return make(
                .removed, "\(failedWrite)\(target) belongs to a cgroup that has been removed",
                fix:
                    "nothing to undo: the cgroup is gone (its agent ended, or another program removed \(path)); start the agent again if it should still run"
            )

        case (.resourceBusy, .subtreeControl?):
            return make(
                .internalProcesses,
                "cannot enable \(quoted ?? "controllers") in \(path): it has processes of its own, and cgroup v2 lets only cgroups without processes delegate controllers to children (the no-internal-process rule)",
                fix:
                    "move those processes into a child cgroup first (Corral moves itself into supervisor/ when it lives in its root), or choose an empty --cgroup-root"
            )
        case (.resourceBusy, .procs?):
            return make(
                .busy,
                "cannot move \(quoted.map { "process \($0)" } ?? "a process") into \(path): it has controllers enabled for children (cgroup.subtree_control is not empty), and processes may only live in leaf cgroups",
                fix: "start agents in their own leaf cgroup, never in a group or the root")
        case (.resourceBusy, nil) where operation == .removeDirectory:
            return make(
                .busy, "cannot remove \(path): it still has processes or child cgroups",
                fix: "stop what runs there (corral kill, or write 1 to \(path)/cgroup.kill) and retry")
        case (.resourceBusy, .memoryPressure?), (.resourceBusy, .cpuPressure?), (.resourceBusy, .ioPressure?):
            return make(
                .busy, "\(writing) failed: a pressure trigger is already registered on this open file (one trigger per descriptor)",
                fix: "open \(target) again for each additional trigger")
        case (.resourceBusy, _):
            return make(
                .busy, "\(writing) failed: the kernel reports \(path) busy (another change to it is in progress)",
                fix:
                    "retry in a moment; if it persists, check whether another program (a second corrald, systemd, a container runtime) manages \(path)"
            )

        case (.noSuchFileOrDirectory, .subtreeControl?):
            return make(
                .controllerUnavailable,
                "cannot enable \(quoted ?? "controllers") in \(path): not every controller named is in its cgroup.controllers",
                fix:
                    "enable them in the parent's cgroup.subtree_control first; on a hybrid host they are bound to cgroup v1 — boot with systemd.unified_cgroup_hierarchy=1"
            )
        case (.noSuchFileOrDirectory, let file?) where file.controller != nil:
            let controller = file.controller!.rawValue
            return make(
                .controllerUnavailable,
                "\(failedWrite)\(path) has no \(file.rawValue): the \(controller) controller is not enabled for it",
                fix:
                    "add +\(controller) to the parent's cgroup.subtree_control (Corral does this when it creates the tree; check that \(controller) is listed in the parent's cgroup.controllers)"
            )
        case (.noSuchFileOrDirectory, .kill?):
            return make(
                .notFound, "\(failedWrite)\(target) does not exist: this kernel has no cgroup.kill (it came with Linux 5.14)",
                fix: "use a 5.14 or newer kernel; until then Corral kills by freezing the cgroup and signalling each process")
        case (.noSuchFileOrDirectory, .freeze?):
            return make(
                .notFound,
                "\(failedWrite)\(target) does not exist: this kernel has no cgroup freezer for cgroup v2 (it came with Linux 5.2)",
                fix: "use a 5.2 or newer kernel to suspend agents")
        case (.noSuchFileOrDirectory, let file?)
        where file == .memoryPressure || file == .cpuPressure || file == .ioPressure:
            return make(
                .notFound, "\(failedWrite)\(target) does not exist: this kernel does not report pressure stall information (PSI)",
                fix: "boot with psi=1 (the kernel must be built with CONFIG_PSI)")
        case (.noSuchFileOrDirectory, _?):
            return make(
                .notFound, "\(failedWrite)\(target) does not exist: \(path) was removed, or is not a cgroup v2 directory",
                fix: "check that \(path) exists and lies inside the cgroup2 mount (stat -f -c %T \(path) prints cgroup2)")
        case (.noSuchFileOrDirectory, nil) where operation == .makeDirectory:
            return make(
                .notFound, "cannot create \(path): its parent cgroup does not exist",
                fix: "create the parent first, or check --cgroup-root (the root's parent must exist inside the cgroup2 mount)")
        case (.noSuchFileOrDirectory, nil):
            return make(
                .notFound, "\(operation.rawValue) \(path) failed: \(path) does not exist",
                fix: "check the path; an agent's cgroup exists only while it runs (corral ps lists them)")

        case (.invalidArgument, .subtreeControl?):
            return make(
                .invalidValue, "the kernel does not know a controller in '\(value?.trimmingSpaces() ?? "")' (\(target))",
                fix: "use only memory, cpu, pids, io")
        case (.invalidArgument, .cpuMax?), (.outOfRange, .cpuMax?):
            return make(
                .invalidValue,
                "the kernel rejected cpu.max '\(value?.trimmingSpaces() ?? "")' for \(path): the quota must be at least 1 ms and the period between 1 ms and 1 s, and not below cpu.max.burst",
                fix: "raise the cpu limit to at least 0.1% of one CPU")
        case (.invalidArgument, _), (.outOfRange, _):
            return make(
                .invalidValue, "the kernel rejected \(writing)", fix: "check the value's format for \(file?.rawValue ?? "this file")")

        case (.notSupported, _):
            return make(
                .notSupported,
                "\(writing) is not supported: \(path) is a threaded cgroup or part of an invalid topology",
                fix: "use a domain cgroup as the root (cat \(path)/cgroup.type must say 'domain')")

        case (.resourceTemporarilyUnavailable, nil) where operation == .makeDirectory,
            (.noSpace, nil) where operation == .makeDirectory:
            return make(
                .limitReached,
                "cannot create \(path): an ancestor's cgroup.max.descendants or cgroup.max.depth is reached",
                fix: "remove unused cgroups, or raise cgroup.max.descendants/cgroup.max.depth on the ancestors")
        case (.resourceTemporarilyUnavailable, _):
            return make(
                .io, "\(writing) failed: the kernel asked to try again (a process being moved was exiting or changing its threads)",
                fix: "retry; if it keeps failing, check what else is changing \(path)")

        case (.fileExists, nil):
            return make(
                .alreadyExists, "\(path) already exists",
                fix: "choose another name, or remove \(path) (rmdir) when nothing runs there any more")

        case (.noSuchProcess, _):
            return make(
                .io, "\(writing) failed: \(quoted.map { "process \($0)" } ?? "the process") no longer exists",
                fix: "nothing to move: the process has exited")

        default:
            return make(
                .io, "\(writing) failed: \(errno.description)",
                fix: "check the kernel log (dmesg) for messages about \(path) and retry")
        }
    }
}

extension CgroupFile {
    /// The controller whose files these are (nil for core cgroup.* files).
    public var controller: Controller? {
        let prefix = rawValue.prefix { $0 != "." }
        switch prefix {
        case "memory": return self == .memoryPressure ? nil : .memory
        case "cpu": return self == .cpuStat || self == .cpuPressure ? nil : .cpu
        case "pids": return .pids
        case "io": return self == .ioPressure ? nil : .io
        default: return nil
        }
    }
}
