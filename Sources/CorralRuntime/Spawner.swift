internal import CCorralLinux
internal import CorralCgroup
internal import CorralCore
internal import CorralLinux
public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// Why a command could not be started, with the conventional exit status
/// (126: found but not runnable, 127: not found; 125: Corral's own failure).
public struct SpawnError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var fix: String?
    public var exitStatus: Int32
    public var errno: Errno?

    public init(message: String, fix: String? = nil, exitStatus: Int32, errno: Errno? = nil) {
        self.message = message
        self.fix = fix
        self.exitStatus = exitStatus
        self.errno = errno
    }

    public var description: String {
        fix.map { "\(message)\n  fix: \($0)" } ?? message
    }
}

/// Finds the executable a command names, as execvp would, before anything
/// is created: an unknown command fails here with nothing left behind.
public enum ExecutableLookup {
    public static func resolve(_ command: String, path: String?) throws(SpawnError) -> String {
        guard !command.isEmpty else {
            throw SpawnError(
                message: "the command is empty", fix: "name a program after --, e.g. corral run -- python3 agent.py", exitStatus: 127)
        }
        if command.contains("/") {
            try check(command, named: command)
            return command
        }
        let directories = (path ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(separator: ":", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "." : String($0) }
        var deniedCandidate: String?
        for directory in directories {
            let candidate = directory + "/" + command
            var info = stat()
            guard stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if access(candidate, X_OK) == 0 { return candidate }
            deniedCandidate = deniedCandidate ?? candidate
        }
        if let deniedCandidate {
            throw SpawnError(
                message: "'\(command)' was found at \(deniedCandidate) but is not executable",
                fix: "chmod +x \(deniedCandidate), or run it through its interpreter", exitStatus: 126)
        }
        throw SpawnError(
            message: "command not found: '\(command)' is not in PATH",
            fix: "check the spelling, or give the full path (PATH is \(path ?? "unset"))", exitStatus: 127)
    }

    private static func check(_ path: String, named command: String) throws(SpawnError) {
        var info = stat()
        if case .failure(let error) = nothingOrErrno(stat(path, &info)) {
            throw SpawnError(message: "command not found: \(path) does not exist", fix: "check the path", exitStatus: 127, errno: error)
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw SpawnError(message: "\(path) is a directory, not a program", exitStatus: 126)
        }
        if case .failure(let error) = nothingOrErrno(access(path, X_OK)) {
            throw SpawnError(message: "\(path) is not executable", fix: "chmod +x \(path)", exitStatus: 126, errno: error)
        }
    }
}

/// A started child process.
public struct SpawnedProcess: Sendable {
    public var pid: Int32
    /// A pidfd (poll it for exit, signal through it); nil on kernels without one.
    public var pidfd: FileDescriptor?
    /// How the child was placed into its cgroup.
    public var method: Method
    /// Why clone3(CLONE_INTO_CGROUP) was not used, when the fallback was.
    public var clone3Error: Errno?
    /// The seccomp user-notification listener of the child's filter (the
    /// caller answers its denied calls); nil without a notifying filter.
    public var seccompListener: FileDescriptor?

    public enum Method: String, Sendable, Codable {
        case clone3
        case cgroupProcs = "cgroup.procs"
        /// No cgroup was asked for: the child stays in the caller's.
        case none
    }
}

/// Starts a program directly inside a cgroup: clone3(CLONE_INTO_CGROUP), or
/// on kernels before 5.7 fork and a write to cgroup.procs before exec. The
/// code between fork and exec is C (`corral_spawn`), async-signal-safe.
public enum Spawner {
    /// This process's environment as "NAME=value" strings (what a child inherits).
    public static func currentEnvironment() -> [String] {
        var result: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            result.append(String(cString: entry))
            pointer += 1
        }
        return result
    }

    public struct Request: Sendable {
        public var executable: String
        public var arguments: [String]
        public var environment: [String]
        public var cgroupDirectory: FileDescriptor?
        public var cgroupProcs: FileDescriptor?
        public var workingDirectory: String?
        public var noNewPrivileges: Bool
        /// Descriptors for the child's stdin, stdout and stderr (nil: inherit).
        public var standardInput: FileDescriptor?
        public var standardOutput: FileDescriptor?
        public var standardError: FileDescriptor?
        /// Start a new session (no controlling terminal), for daemon-launched agents.
        public var newSession: Bool
        /// RLIMIT_NOFILE for the child (default: what this process started with, see `FileLimit`).
        public var fileLimit: FileLimit.Limit? = FileLimit.inherited
        /// Syscall filter, user, cgroup namespace and rlimits (nil: none).
        public var isolation: Isolation?
        /// Skip clone3(CLONE_INTO_CGROUP) and place the child through the
        /// `cgroupProcs` write, as on kernels before 5.7 (for tests of that path).
        public var forceProcsWrite = false

        public init(
            executable: String, arguments: [String], environment: [String], cgroupDirectory: FileDescriptor?,
            cgroupProcs: FileDescriptor?, workingDirectory: String? = nil, noNewPrivileges: Bool = false,
            standardInput: FileDescriptor? = nil, standardOutput: FileDescriptor? = nil, standardError: FileDescriptor? = nil,
            newSession: Bool = false
        ) {
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.cgroupDirectory = cgroupDirectory
            self.cgroupProcs = cgroupProcs
            self.workingDirectory = workingDirectory
            self.noNewPrivileges = noNewPrivileges
            self.standardInput = standardInput
            self.standardOutput = standardOutput
            self.standardError = standardError
            self.newSession = newSession
        }
    }

    static let stageNames: [Int32: String] = [
        1: "clone", 2: "joining the cgroup (cgroup.procs)", 3: "resetting signals", 4: "changing directory",
        5: "setting rlimits", 6: "setting no_new_privs", 7: "loading the seccomp filter", 8: "exec",
        9: "creating the status pipe", 10: "setgid", 11: "setuid", 12: "redirecting stdin/stdout/stderr",
        13: "starting a new session", 14: "creating a cgroup namespace", 15: "setting supplementary groups",
        16: "handing the seccomp listener to the supervisor", 17: "mounting the agent's cgroup namespace", 18: "dropping capabilities",
    ]

    public static func spawn(_ request: Request) throws(SpawnError) -> SpawnedProcess {
        let argv = request.arguments.map { strdup($0) } + [nil]
        let envp = request.environment.map { strdup($0) } + [nil]
        let path = strdup(request.executable)
        let cwd = request.workingDirectory.map { strdup($0) } ?? nil
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
            free(path)
            free(cwd)
        }
        var result = corral_spawn_result()
        var limits: [corral_rlimit] = []
        if let fileLimit = request.fileLimit {
            limits.append(
                corral_rlimit(
                    resource: Int32(RLIMIT_NOFILE.rawValue),
                    limit: rlimit(rlim_cur: rlim_t(fileLimit.soft), rlim_max: rlim_t(fileLimit.hard))))
        }
        let isolation = request.isolation
        for limit in isolation?.rlimits ?? [] {
            limits.removeAll { $0.resource == limit.resource }
            limits.append(
                corral_rlimit(
                    resource: limit.resource,
                    limit: rlimit(
                        rlim_cur: limit.soft.map { rlim_t($0) } ?? rlim_t.max, rlim_max: limit.hard.map { rlim_t($0) } ?? rlim_t.max)))
        }
        // The child's end of a socketpair carries the listener descriptor back before exec.
        var pair: [Int32] = [-1, -1]
        if isolation?.notifyFilter != nil {
            if case .failure(let error) = nothingOrErrno(
                socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair))
            {
                throw SpawnError(
                    message: "cannot start \(request.executable): socketpair for the seccomp listener failed: \(error)", exitStatus: 125,
                    errno: error)
            }
        }
        defer { pair.filter { $0 >= 0 }.forEach { _ = Glibc.close($0) } }
        let groups = isolation?.identity?.groups ?? []
        let cgroupMount = isolation?.cgroupMount.map { strdup($0) } ?? nil
        defer { free(cgroupMount) }
        let filter = isolation?.filter?.program ?? []
        let notifyFilter = isolation?.notifyFilter?.program ?? []
        let rc: Int32 = limits.withUnsafeBufferPointer { limitBuffer in
            argv.withUnsafeBufferPointer { argvBuffer in
                envp.withUnsafeBufferPointer { envpBuffer in
                    groups.withUnsafeBufferPointer { groupBuffer in
                        filter.withUnsafeBytes { filterBytes in
                            notifyFilter.withUnsafeBytes { notifyBytes in
                                var spec = corral_spawn_request()
                                spec.path = UnsafePointer(path)
                                spec.argv = argvBuffer.baseAddress
                                spec.envp = envpBuffer.baseAddress
                                // Without a directory fd clone3 is not tried (EBADF) and the fallback runs.
                                spec.cgroup_fd = request.forceProcsWrite ? -1 : request.cgroupDirectory?.rawValue ?? -1
                                spec.cgroup_procs_fd = request.cgroupProcs?.rawValue ?? -1
                                spec.allow_fallback = 1
                                spec.cwd = UnsafePointer(cwd)
                                spec.no_new_privs = (request.noNewPrivileges || isolation?.noNewPrivileges == true) ? 1 : 0
                                spec.rlimits = limitBuffer.baseAddress
                                spec.rlimit_count = Int32(limitBuffer.count)
                                spec.seccomp_filter = filter.isEmpty ? nil : filterBytes.baseAddress
                                spec.seccomp_filter_count = Int32(filter.count / 8)
                                spec.seccomp_notify_filter = notifyFilter.isEmpty ? nil : notifyBytes.baseAddress
                                spec.seccomp_notify_filter_count = Int32(notifyFilter.count / 8)
                                spec.listener_socket = pair[1]
                                spec.listener_parent = pair[0]
                                spec.cgroup_namespace = isolation?.cgroupNamespace == true ? 1 : 0
                                spec.cgroup_mount = UnsafePointer(cgroupMount)
                                if let kept = isolation?.keptCapabilities {
                                    spec.drop_capabilities = 1
                                    spec.keep_capabilities = kept
                                }
                                if let identity = isolation?.identity {
                                    spec.set_ids = 1
                                    spec.uid = identity.uid
                                    spec.gid = identity.gid
                                    spec.groups = groupBuffer.baseAddress
                                    spec.group_count = Int32(groupBuffer.count)
                                }
                                spec.stdin_fd = request.standardInput?.rawValue ?? -1
                                spec.stdout_fd = request.standardOutput?.rawValue ?? -1
                                spec.stderr_fd = request.standardError?.rawValue ?? -1
                                spec.new_session = request.newSession ? 1 : 0
                                return corral_spawn(&spec, &result)
                            }
                        }
                    }
                }
            }
        }
        guard rc == 0 else {
            let error = Errno(rawValue: result.error)
            let stage = stageNames[result.stage] ?? "setup"
            switch (result.stage, error) {
            case (8, .noSuchFileOrDirectory):
                throw SpawnError(
                    message: "cannot run \(request.executable): it or its interpreter (#! line) does not exist",
                    fix: "check the program's #! line", exitStatus: 127, errno: error)
            case (8, .permissionDenied), (8, .execFormatError):
                throw SpawnError(message: "cannot run \(request.executable): \(error.description)", exitStatus: 126, errno: error)
            case (1, .resourceTemporarilyUnavailable):
                throw SpawnError(
                    message:
                        "cannot start \(request.executable): the kernel refused a new process (EAGAIN: a pids.max limit or RLIMIT_NPROC is reached)",
                    fix: "raise the processes limit of the group or the agent", exitStatus: 125, errno: error)
            case (2, _):
                throw procsWriteError(error, procs: request.cgroupProcs, pid: result.pid, executable: request.executable)
            case (14, .notPermitted):
                throw SpawnError(
                    message: "cannot start \(request.executable): creating its cgroup namespace needs CAP_SYS_ADMIN (EPERM)",
                    fix: "run Corral as root, or set security.cgroup_namespace: false for the group", exitStatus: 125, errno: error)
            case (10, _), (11, _), (15, _):
                let who = request.isolation?.identity.map { "uid \($0.uid) gid \($0.gid)" } ?? "the configured user"
                throw SpawnError(
                    message: "cannot start \(request.executable) as \(who): \(stage) failed: \(error.description)",
                    fix: "changing user needs root (CAP_SETUID, CAP_SETGID); run Corral as root or remove security.user", exitStatus: 125,
                    errno: error)
            case (1, .resourceBusy):
                throw SpawnError(
                    message:
                        "cannot start \(request.executable) in its cgroup: the cgroup has child cgroups with controllers enabled (EBUSY)",
                    fix: "agents must run in leaf cgroups", exitStatus: 125, errno: error)
            default:
                throw SpawnError(
                    message: "cannot start \(request.executable): \(stage) failed: \(error.description)",
                    exitStatus: result.stage == 8 ? 126 : 125, errno: error)
            }
        }
        return SpawnedProcess(
            pid: result.pid,
            pidfd: result.pidfd >= 0 ? FileDescriptor(rawValue: result.pidfd) : nil,
            method: result.method == 1 ? .clone3 : result.method == 2 ? .cgroupProcs : .none,
            clone3Error: result.clone3_errno == 0 ? nil : Errno(rawValue: result.clone3_errno),
            seccompListener: result.listener_fd >= 0 ? FileDescriptor(rawValue: result.listener_fd) : nil)
    }

    /// The child could not write itself ("0") into its cgroup's cgroup.procs
    /// before exec (the fallback placement): the cgroup layer's explanation
    /// of the errno, naming the cgroup.procs path (found through
    /// /proc/self/fd), the process and the fix.
    static func procsWriteError(_ error: Errno, procs: FileDescriptor?, pid: Int32, executable: String) -> SpawnError {
        let procsPath = procs.flatMap { descriptorPath($0.rawValue) }
        let suffix = "/" + CgroupFile.procs.rawValue
        let value = pid > 0 ? String(pid) : "0"
        let explained =
            if let procsPath, procsPath.hasSuffix(suffix) {
                CgroupError.explain(error, operation: .write, path: String(procsPath.dropLast(suffix.count)), file: .procs, value: value)
            } else {
                CgroupError.explain(
                    error, operation: .write, path: procsPath ?? "cgroup.procs (descriptor \(procs?.rawValue ?? -1))", file: nil,
                    value: value)
            }
        return SpawnError(
            message: "cannot start \(executable): joining the cgroup before exec failed: \(explained.message) (\(error.name))",
            fix: explained.fix, exitStatus: 125, errno: error)
    }

    /// What an open descriptor refers to (readlink of /proc/self/fd/N), nil when unknown.
    static func descriptorPath(_ fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
