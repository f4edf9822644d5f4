public import CorralCgroup
public import CorralCore
internal import CorralLinux
internal import CorralSeccomp
public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// Everything `corral run` needs to start one agent.
public struct RunRequest: Sendable {
    public var agent: String
    public var group: QuotaGroup
    public var limits: LimitSet
    /// The command as typed (argv[0] first).
    public var command: [String]
    /// argv[0] resolved against PATH.
    public var executable: String
    public var environment: [String]
    /// Settings for the root (the system reservation); nil leaves the root's limits alone.
    public var reservation: CgroupSettings?
    /// How often usage is sampled while the agent runs.
    public var samplingInterval: Duration
    /// How long stray processes may take to die after cgroup.kill.
    public var killTimeout: Duration
    /// Syscall filter, user, cgroup namespace and rlimits (nil: none).
    public var isolation: Isolation?
    /// Answers and counts the agent's denied syscalls (nil: they fail unrecorded).
    public var denials: DenialSupervisor?
    /// Its priority (cpu.weight, io.weight, memory.low of its leaf).
    public var priority: Priority = .standard
    /// Whether the priority is the agent's own (a flag or its configuration) rather than its group's.
    public var priorityIsOwn = false

    public init(
        agent: String, group: QuotaGroup, limits: LimitSet, command: [String], executable: String,
        environment: [String], reservation: CgroupSettings?, samplingInterval: Duration = .seconds(1),
        killTimeout: Duration = .seconds(5)
    ) {
        self.agent = agent
        self.group = group
        self.limits = limits
        self.command = command
        self.executable = executable
        self.environment = environment
        self.reservation = reservation
        self.samplingInterval = samplingInterval
        self.killTimeout = killTimeout
    }
}

/// Why a run failed before or around the agent, with the exit status `corral` should use.
public enum RunError: Error, CustomStringConvertible, Sendable {
    case cgroup(CgroupError)
    case spawn(SpawnError)
    case agentIDInUse(agent: String, path: String)
    case system(message: String, errno: Errno)
    /// A forwarded signal (^C, SIGTERM…) arrived before the command started: it is not started.
    case interrupted(signal: Int32)

    public var description: String {
        switch self {
        case .cgroup(let error): error.description
        case .spawn(let error): error.description
        case .agentIDInUse(let agent, let path):
            "agent id '\(agent)' is in use: \(path) already exists\n  fix: choose another --name, or stop the agent that has it (its cgroup is \(path))"
        case .system(let message, let errno): "\(message) (\(errno.name))"
        case .interrupted(let signal): "interrupted by \(SignalName.name(signal)) before the command started; nothing was run"
        }
    }

    public var exitStatus: Int32 {
        if case .spawn(let error) = self { return error.exitStatus }
        if case .interrupted(let signal) = self { return 128 + signal }
        return 125
    }
}

/// Runs one agent to completion in its own cgroup and reports what happened.
public struct AgentRunner: Sendable {
    public let tree: CgroupTree

    public init(tree: CgroupTree) {
        self.tree = tree
    }

    /// Signals forwarded to the agent.
    public static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    /// Creates the agent's cgroup in this runner's tree, runs the command in
    /// it (`supervise`) and removes it again with the shared levels nobody
    /// else uses: `corral run` without a daemon.
    public func run(_ request: RunRequest, onStarted: (Int32) -> Void = { _ in }) throws(RunError) -> RunSummary {
        let leaf = try create(request)
        defer {
            try? tree.remove(leaf)
            cleanUpShared(group: request.group.name)
        }
        return try supervise(request, in: tree, leaf: leaf, onStarted: onStarted)
    }

    /// Creates root, group and the agent's leaf with its limits.
    public func create(_ request: RunRequest) throws(RunError) -> CgroupPath {
        let leaf = tree.agentPath(group: request.group.name, agent: request.agent)
        do {
            let lock = try tree.fs.lockTree()
            defer { withExtendedLifetime(lock) {} }
            try tree.prepareRoot(selfPID: getpid(), reservation: request.reservation)
            try tree.prepareGroup(request.group)
            try tree.createAgent(
                request.agent, in: request.group.name, settings: CgroupSettings(agentLimits: request.limits, priority: request.priority))
        } catch {
            cleanUpShared(group: request.group.name)
            if error.code == .alreadyExists && error.path == tree.fs.absolutePath(leaf) {
                throw .agentIDInUse(agent: request.agent, path: error.path)
            }
            throw .cgroup(error)
        }
        return leaf
    }

    /// Something to do once the command has run for `after`, on the thread that waits for
    /// it: quick (start a thread, say), and never for a command that ended sooner. A run of
    /// `/bin/true` then starts no thread it does not need (each one's start and end cost a
    /// short `corral run` ≈ 5 ms of CPU under emulation).
    public struct Milestone {
        public let after: Duration
        public let action: () -> Void

        public init(after: Duration, _ action: @escaping () -> Void) {
            self.after = after
            self.action = action
        }
    }

    /// Starts the command straight into `leaf` of `tree` (which someone
    /// created: this runner or the daemon), tells `onStarted` its pid,
    /// forwards signals, waits (reaching `milestones` meanwhile), kills what it
    /// left behind and reads the kernel's counters. Does not remove the cgroup.
    public func supervise(
        _ request: RunRequest, in tree: CgroupTree, leaf: CgroupPath, milestones: [Milestone] = [],
        onStarted: (Int32) -> Void = { _ in }
    ) throws(RunError) -> RunSummary {
        // Block the forwarded signals before the child exists, so none is lost
        // or acted on by default between spawn and the wait loop.
        // A caller that blocked them already (corral run does, before it starts
        // any thread) keeps them blocked afterwards.
        let signals = Self.forwardedSignals
        let wereBlocked = (try? Signals.block(signals)) ?? false
        let signalFD: FileDescriptor
        do {
            signalFD = try Signals.descriptor(for: signals)
        } catch {
            throw .system(message: "cannot create a signalfd", errno: error)
        }
        defer {
            try? signalFD.close()
            if !wereBlocked { try? Signals.unblock(signals) }
        }

        // A signal that came while Corral was getting ready (corral run blocks
        // them from its first moment) is for Corral, not yet for a command.
        if let early = (try? Signals.next(from: signalFD)) ?? nil { throw .interrupted(signal: early.signal) }

        let start = ContinuousClock.now
        let child: SpawnedProcess
        do {
            let directory = try tree.fs.openDirectory(leaf)
            defer { try? directory.close() }
            let procs = try tree.fs.openForWriting(.procs, of: leaf)
            defer { try? procs.close() }
            let cgroup = tree.fs.absolutePath(leaf)
            var spawn = Spawner.Request(
                executable: request.executable, arguments: request.command,
                environment: (request.isolation ?? .none).environment(request.environment, cgroup: cgroup), cgroupDirectory: directory,
                cgroupProcs: procs)
            spawn.isolation = request.isolation
            child = try Spawner.spawn(spawn)
        } catch let error as SpawnError {
            throw .spawn(error)
        } catch let error as CgroupError {
            throw .cgroup(error)
        } catch {
            throw .system(message: "cannot start \(request.executable): \(error)", errno: .ioError)
        }
        if let listener = child.seccompListener {
            if let denials = request.denials { denials.supervise(listener, agent: request.agent) } else { try? listener.close() }
        }
        onStarted(child.pid)

        var peaks = PeakTracker()
        var forwarded: [String] = []
        // The kernel keeps exact peaks in memory.peak (5.19+) and pids.peak;
        // only without them does the run sample usage to estimate the peaks.
        let needsSampling = !tree.fs.contains(.memoryPeak, in: leaf) || !tree.fs.contains(.pidsPeak, in: leaf)
        let termination = waitForExit(
            child, tree: tree, signalFD: signalFD, leaf: leaf, interval: needsSampling ? request.samplingInterval : nil,
            milestones: milestones.map { (start.advanced(by: $0.after), $0.action) }.sorted { $0.0 < $1.0 },
            peaks: &peaks, forwarded: &forwarded)
        let wall = ContinuousClock.now - start
        // Killed by its filter: the kernel logged which call (no supervisor saw it).
        if termination == .signaled(signal: SIGSYS), let policy = request.isolation?.policy, policy.seccomp.filters,
            policy.seccomp.action == .kill, let denials = request.denials
        {
            let name = KernelLog.seccompKill(pid: child.pid).flatMap(Seccomp.syscallName) ?? KernelLog.unknownSyscall
            denials.recordKill(agent: request.agent, syscall: name, pid: child.pid)
        }
        if let pidfd = child.pidfd { try? pidfd.close() }

        // The main process is gone; anything it left behind goes with its cgroup.
        var strays = false
        if let events = try? tree.fs.read(.events, of: leaf), CgroupEvents(parsing: events).populated {
            strays = true
            _ = try? tree.kill(leaf)
            _ = try? tree.waitUntilEmpty(leaf, timeout: request.killTimeout)
        }
        let final = (try? tree.finalSample(leaf)) ?? CgroupSample()
        peaks.observe(final)

        return RunSummary(
            agent: request.agent, group: request.group.name, cgroup: tree.fs.absolutePath(leaf),
            command: request.command, limits: request.limits, termination: termination,
            wallSeconds: wall.seconds, cpu: final.cpu,
            memoryPeakBytes: final.memoryPeak ?? peaks.memory, memoryPeakExact: final.memoryPeak != nil,
            memoryEvents: final.memoryEvents,
            pidsPeak: final.pidsPeak ?? peaks.pids, pidsPeakExact: final.pidsPeak != nil,
            pidsEvents: final.pidsEvents, spawnMethod: child.method.rawValue, forwardedSignals: forwarded,
            strayProcessesKilled: strays, security: request.isolation?.policy, denials: request.denials?.denials(of: request.agent) ?? [])
    }

    /// Removes the group and the root when no other agent uses them, so a
    /// run leaves no cgroup behind. Serialised with other Corral processes
    /// by the tree lock; a group or root still in use is simply kept.
    public func cleanUpShared(group: String) {
        guard let lock = try? tree.fs.lockTree() else { return }
        defer { withExtendedLifetime(lock) {} }
        tree.removeIfUnused(tree.groupPath(group))
        // Only a root Corral made goes (a --cgroup-root the user made stays).
        tree.removeRootIfUnused()
    }

    /// Polls the child's pidfd and the signalfd; samples usage every `interval` (nil: never).
    private func waitForExit(
        _ child: SpawnedProcess, tree: CgroupTree, signalFD: FileDescriptor, leaf: CgroupPath, interval: Duration?,
        milestones: [(at: ContinuousClock.Instant, action: () -> Void)], peaks: inout PeakTracker, forwarded: inout [String]
    ) -> Termination {
        let clock = ContinuousClock()
        var nextSample = clock.now
        var milestones = milestones[...]
        while true {
            var timeout: Int32 = -1
            if let interval {
                if clock.now >= nextSample {
                    if let sample = try? tree.sample(leaf) { peaks.observe(sample) }
                    nextSample = clock.now.advanced(by: interval)
                }
                timeout = max(1, Int32(clock.now.duration(to: nextSample).microseconds / 1000) + 1)
            }
            while let next = milestones.first, clock.now >= next.at {
                milestones.removeFirst()
                next.action()
            }
            if let next = milestones.first {
                let untilNext = max(1, Int32(clock.now.duration(to: next.at).microseconds / 1000) + 1)
                timeout = timeout < 0 ? untilNext : min(timeout, untilNext)
            }
            var fds = [pollfd(fd: signalFD.rawValue, events: Int16(POLLIN), revents: 0)]
            if let pidfd = child.pidfd { fds.append(pollfd(fd: pidfd.rawValue, events: Int16(POLLIN), revents: 0)) }
            if child.pidfd == nil { timeout = timeout < 0 ? 20 : min(timeout, 20) }
            // Interrupted: the revents are all 0 and the loop goes round.
            if case .failure(let error) = valueOrErrno(poll(&fds, nfds_t(fds.count), timeout)), error != .interrupted { break }

            if fds[0].revents & Int16(POLLIN) != 0 {
                while let received = (try? Signals.next(from: signalFD)) ?? nil {
                    // A terminal's ^C already reached the agent (same process
                    // group); forward only what was sent to Corral itself.
                    guard received.code != Signals.kernelCode else { continue }
                    let signal = received.signal
                    let delivered =
                        if let pidfd = child.pidfd {
                            (try? Signals.send(signal, toPidFD: pidfd)) != nil
                        } else {
                            (try? nothingOrErrno(Glibc.kill(child.pid, signal)).get()) != nil
                        }
                    if delivered { forwarded.append(SignalName.name(signal)) }
                }
            }
            let exited = child.pidfd == nil || (fds.count > 1 && fds[1].revents != 0)
            if exited, let termination = reap(child.pid, block: child.pidfd != nil) {
                return termination
            }
        }
        return reap(child.pid, block: true) ?? .exited(code: 125)
    }

    private func reap(_ pid: Int32, block: Bool) -> Termination? {
        guard let status = (try? ChildStatus.wait(for: pid, block: block)) ?? nil else { return nil }
        return Termination(waitStatus: status)
    }
}

/// Maxima seen while sampling, for kernels without memory.peak or pids.peak.
struct PeakTracker {
    var memory: Int64?
    var pids: Int64?

    mutating func observe(_ sample: CgroupSample) {
        if let current = sample.memoryCurrent { memory = max(memory ?? 0, current) }
        if let current = sample.pidsCurrent { pids = max(pids ?? 0, current) }
    }
}
