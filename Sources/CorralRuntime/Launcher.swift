public import CorralCgroup
public import CorralCore
import CorralLinux
public import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Starts agents' commands for the engine: finds the executable, builds the
/// environment, opens the log, spawns straight into the agent's cgroup;
/// and what the engine asks of processes (is it there, what is its command
/// line). Owned by the engine; holds no mutable state.
public struct Launcher: Sendable {
    /// Where launched agents' stdout and stderr go (`<id>.log`); nil: where Corral's go.
    public var logDirectory: String?
    /// Put into agents' environment as CORRAL_SOCKET.
    public var socketPath: String?

    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public init(logDirectory: String? = nil, socketPath: String? = nil) {
        self.logDirectory = logDirectory
        self.socketPath = socketPath
    }

    /// The executable `program` names, on `path` (the request's PATH, else
    /// the default); checked before a cgroup is made, so a typo creates nothing.
    public func executable(for program: String, path: String?) throws(SpawnError) -> String {
        try ExecutableLookup.resolve(program, path: path ?? Self.defaultPath)
    }

    /// The agent's environment: the request's, with Corral's variables.
    public func environment(_ base: [String: String], agent: String, group: String) -> [String] {
        var environment = base
        environment["CORRAL_AGENT_ID"] = agent
        environment["CORRAL_GROUP"] = group
        if let socketPath { environment["CORRAL_SOCKET"] = socketPath }
        if environment["PATH"] == nil { environment["PATH"] = Self.defaultPath }
        return environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// A command to start in a cgroup.
    public struct Launch: Sendable {
        public var agent: String
        public var group: String
        public var executable: String
        public var command: [String]
        public var environment: [String: String]
        public var workingDirectory: String?
        /// Filter, user, cgroup namespace and rlimits (nil: none).
        public var isolation: Isolation?

        public init(
            agent: String, group: String, executable: String, command: [String], environment: [String: String], workingDirectory: String?,
            isolation: Isolation? = nil
        ) {
            self.isolation = isolation
            self.agent = agent
            self.group = group
            self.executable = executable
            self.command = command
            self.environment = environment
            self.workingDirectory = workingDirectory
        }
    }

    /// What starting a command left to say: where its output went, if not to the log.
    public struct Started: Sendable {
        public var pid: Int32
        /// The log could not be opened (the reason): output goes where Corral's does.
        public var logProblem: String?
        /// The listener of the agent's notifying seccomp filter (the caller answers its denials).
        public var seccompListener: FileDescriptor?
    }

    /// Spawns `launch` into `leaf` (clone3 into the cgroup, or cgroup.procs
    /// before exec) in a session of its own, stdin from /dev/null, stdout and
    /// stderr to its log.
    public func start(_ launch: Launch, in leaf: CgroupPath, of tree: CgroupTree) throws -> Started {
        var logProblem: String?
        var output: FileDescriptor?
        if let logDirectory {
            let path = logDirectory + "/" + launch.agent + ".log"
            do {
                output = try FileDescriptor.open(
                    path, .writeOnly, options: [.create, .append, .closeOnExec], permissions: [.ownerReadWrite, .groupRead])
            } catch {
                logProblem = "cannot open \(path) (\(error)); its output goes where the daemon's does"
            }
        }
        let nullInput = try FileDescriptor.open("/dev/null", .readOnly, options: [.closeOnExec])
        defer {
            Self.close(output)
            Self.close(nullInput)
        }
        let directory = try tree.fs.openDirectory(leaf)
        defer { Self.close(directory) }
        let procs = try tree.fs.openForWriting(.procs, of: leaf)
        defer { Self.close(procs) }
        let agentEnvironment = (launch.isolation ?? .none).environment(
            environment(launch.environment, agent: launch.agent, group: launch.group), cgroup: tree.fs.absolutePath(leaf))
        var request = Spawner.Request(
            executable: launch.executable, arguments: launch.command, environment: agentEnvironment,
            cgroupDirectory: directory, cgroupProcs: procs, workingDirectory: launch.workingDirectory, standardInput: nullInput,
            standardOutput: output, standardError: output, newSession: true)
        request.isolation = launch.isolation
        let child = try Spawner.spawn(request)
        // The engine learns of the exit from the cgroup and reaps by pid.
        Self.close(child.pidfd)
        return Started(pid: child.pid, logProblem: logProblem, seccompListener: child.seccompListener)
    }

    /// Whether `pid` names a process (one Corral may not signal counts).
    public static func processExists(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        switch nothingOrErrno(kill(pid, 0)) {
        case .success, .failure(.notPermitted): return true
        case .failure: return false
        }
    }

    /// The command line of `pid` from /proc (empty when it cannot be read:
    /// a kernel thread, or gone).
    public static func commandLine(of pid: Int32) -> [String] {
        let text: String
        do {
            text = try readWholeFile(atPath: "/proc/\(pid)/cmdline", maximumBytes: 1 << 20)
        } catch {
            return []
        }
        return text.utf8.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Closes a descriptor this type opened; a failed close of a descriptor
    /// only read or written here loses nothing.
    private static func close(_ fd: FileDescriptor?) {
        guard let fd else { return }
        do { try fd.close() } catch {}
    }
}

/// Exit statuses of the agents this process started. Owned by the engine.
public struct ChildReaper: Sendable {
    private var exited: [Int32: Termination] = [:]

    public init() {}

    /// Collects the exit status of those of `pids` that have exited (only
    /// these: handler processes are reaped by their runner). `pids` is asked
    /// for only when a child has exited (the list walks every agent).
    public mutating func reap(_ pids: @autoclosure () -> [Int32]) {
        // One syscall to learn whether any child has exited (WNOWAIT: nothing
        // is reaped here), instead of one waitpid per agent on every tick.
        var info = siginfo_t()
        guard case .success = nothingOrErrno(waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT)), info._sifields._sigchld.si_pid != 0
        else { return }
        for pid in pids() where exited[pid] == nil {
            let status: Int32?
            do {
                status = try ChildStatus.wait(for: pid, block: false)
            } catch {
                continue  // ECHILD: not ours (an adopted or re-attached agent), nothing to collect
            }
            guard let status else { continue }
            exited[pid] = Termination(waitStatus: status)
        }
    }

    /// How `pid` ended, once (nil: not reaped, not ours).
    public mutating func take(_ pid: Int32) -> Termination? { exited.removeValue(forKey: pid) }
}

extension Termination {
    /// From a wait(2) status: exited with a code, or killed by a signal.
    public init(waitStatus status: Int32) {
        let signal = status & 0x7f
        self = signal == 0 ? .exited(code: (status >> 8) & 0xff) : .signaled(signal: signal)
    }
}
