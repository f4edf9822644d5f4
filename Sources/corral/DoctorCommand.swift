import ArgumentParser
import CorralCgroup
import CorralCore
import CorralLinux
import CorralRuntime
import CorralSeccomp
import CorralWatcher

#if canImport(Glibc)
    import Glibc
#endif

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check whether this host can run agents under cgroup v2 quotas, and say how to fix what is missing.",
        discussion: """
            Checks the cgroup mode (unified, hybrid, legacy), the memory, cpu, pids and io controllers,
            the cgroup root (exists or can be created; cgroup.procs and cgroup.subtree_control writable;
            memory, cpu and pids enabled for it or enableable in its parent; no foreign processes in it),
            the kernel features Corral uses, and the libsystemd and libseccomp libraries.
            In a container: the runtime, the cgroup namespace and a read-only cgroup mount (with
            each runtime's fix). Everywhere: the capabilities Corral's features use (CAP_SYS_RESOURCE
            for short PSI trigger windows, CAP_IPC_LOCK for locked pages), the open-file limit, and
            whether the daemon's state directory and socket directory can be written.
            cgroup.kill, cgroup.freeze, memory.peak, pids.peak and PSI (memory.pressure) are looked up as
            files in the cgroup v2 hierarchy (the root, its children, this process's cgroup); a feature
            with no cgroup to look in is reported as not checked. clone3 into a cgroup has no
            side-effect-free probe and is judged from the kernel version, and says so.
            Exits 0 when `corral run` can work here, 1 otherwise. Changes nothing.
            """
    )

    @OptionGroup var root: CgroupRootOption

    @Option(name: .long, help: ArgumentHelp("YAML configuration (for its cgroup_root).", valueName: "FILE"))
    var config: String?

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("The daemon's state directory, checked for writing.", valueName: "DIR"))
    var stateDirectory = "/var/lib/corral"

    @Option(name: .long, help: ArgumentHelp("The daemon's socket; its directory is checked for writing.", valueName: "PATH"))
    var socketPath = "/run/corral/corral.sock"

    @Flag(name: .long, help: "Print the report as JSON on stdout.")
    var json = false

    struct Check: Codable {
        /// `unchecked`: there was nothing to look at; neither confirmed nor ruled out.
        enum Status: String, Codable { case ok, warning, failed, unchecked }
        var name: String
        var status: Status
        var detail: String
        var fix: String?
        /// How a kernel feature was decided: "file" or "kernel version".
        var basis: String?
    }

    struct Report: Codable {
        var ready: Bool
        var cgroupMode: CgroupMode
        var kernel: String
        var controllers: [String]
        var missingControllers: [String]
        var cgroupRoot: String
        var checks: [Check]
    }

    func run() throws {
        let configuration = try loadConfiguration(config)
        let report = Self.examine(rootPath: root.resolve(configuration), stateDirectory: stateDirectory, socketPath: socketPath)
        if json {
            try printJSON(report)
        } else {
            var lines = [
                "corral doctor: " + (report.ready ? "this host can run agents under cgroup v2 quotas" : "this host cannot run agents yet")
            ]
            let width = report.checks.map(\.name.count).max() ?? 10
            for check in report.checks {
                let mark =
                    switch check.status {
                    case .ok: "ok  "
                    case .warning: "warn"
                    case .failed: "FAIL"
                    case .unchecked: "?   "
                    }
                lines.append("  \(mark)  \(check.name.padding(to: width))  \(check.detail)")
                if let fix = check.fix { lines.append("        \(String(repeating: " ", count: width))  fix: \(fix)") }
            }
            let text = lines.joined(separator: "\n") + "\n"
            writeOut(text, to: report.ready ? 1 : 2)
        }
        if !report.ready { throw ExitCode(1) }
    }

    static func examine(rootPath: String, stateDirectory: String, socketPath: String) -> Report {
        let facts = HostProbe.facts()
        var checks: [Check] = []
        let mode = facts.mode
        let hostProblems = facts.problems

        switch mode {
        case .unified:
            checks.append(Check(name: "cgroup mode", status: .ok, detail: "unified: cgroup v2 at /sys/fs/cgroup"))
        default:
            let problem = hostProblems.first
            checks.append(
                Check(name: "cgroup mode", status: .failed, detail: "\(mode.rawValue): " + (problem?.message ?? ""), fix: problem?.fix))
        }

        let present = Controller.allCases.filter { facts.v2RootControllers.contains($0.rawValue) }.map(\.rawValue)
        let missing = facts.missingControllers.map(\.rawValue)
        if missing.isEmpty {
            checks.append(Check(name: "controllers", status: .ok, detail: "cgroup v2 offers " + present.joined(separator: ", ")))
        } else {
            checks.append(
                Check(
                    name: "controllers", status: .failed,
                    detail: "cgroup v2 lacks \(missing.joined(separator: ", "))"
                        + (present.isEmpty ? "" : " (has \(present.joined(separator: ", ")))")
                        + (facts.v1Controllers.isEmpty
                            ? "" : "; bound to cgroup v1: \(facts.v1Controllers.sorted().joined(separator: ", "))"),
                    fix: mode == .unified ? hostProblems.first?.fix : "see cgroup mode above"))
        }
        if !facts.v2RootControllers.contains(Controller.io.rawValue) && mode == .unified {
            checks.append(Check(name: "io controller", status: .warning, detail: "not available: io.max disk limits cannot be used"))
        }

        let release = HostProbe.kernelRelease
        let version = HostProbe.kernelVersion
        let modern = (version.major, version.minor) >= (5, 7)
        checks.append(
            Check(
                name: "kernel", status: modern ? .ok : .warning,
                detail: release + (modern ? "" : ": older than 5.7, agents are placed through cgroup.procs instead of clone3"),
                fix: modern ? nil : "use a 5.14 or newer kernel"))

        // Features are looked up as files in the cgroup v2 hierarchy there is
        // (on a hybrid host the controller-less one at /sys/fs/cgroup/unified).
        let hierarchyRoot: String? =
            switch mode {
            case .unified: HostProbe.mountPoint
            case .hybrid: HostProbe.mountPoint + "/unified"
            case .legacy, .unavailable: nil
            }
        let files = HostFiles.system
        let candidates = hierarchyRoot.map {
            KernelFeatureProbe.candidates(hierarchyRoot: $0, cgroupRoot: rootPath, ownCgroup: HostProbe.ownCgroup, files: files)
        }
        let features = KernelFeatureProbe.probe(
            hierarchyRoot: hierarchyRoot, candidates: candidates ?? [], kernel: version, release: release, files: files)
        for feature in features {
            switch feature.availability {
            case .available:
                checks.append(Check(name: feature.name, status: .ok, detail: feature.evidence, basis: feature.basis.rawValue))
            case .absent:
                checks.append(
                    Check(
                        name: feature.name, status: .warning, detail: "absent: \(feature.evidence); \(feature.consequence)",
                        basis: feature.basis.rawValue))
            case .unchecked:
                checks.append(
                    Check(
                        name: feature.name, status: .unchecked, detail: "\(feature.evidence); without it \(feature.consequence)",
                        basis: feature.basis.rawValue))
            }
        }

        checks += containerChecks(HostProbe.container())
        checks += directoryChecks(stateDirectory: stateDirectory, socketPath: socketPath, inContainer: HostProbe.container().isContainer)

        let euid = geteuid()
        checks.append(
            Check(
                name: "privileges", status: .ok,
                detail: euid == 0 ? "running as root" : "running as uid \(euid): the cgroup root must be delegated to this user"))

        if mode == .unified && missing.isEmpty {
            checks += rootChecks(rootPath, facts: facts, files: files)
        } else {
            checks.append(
                Check(name: "cgroup root", status: .failed, detail: "\(rootPath): not usable until the host problems above are fixed"))
        }

        // corrald links libsystemd (this CLI does not, to start faster): loaded here
        // to show which file corrald gets. libsystemd has no call that reports the
        // systemd version: the library file name is labelled as what it is.
        let loaded = dlopen("libsystemd.so.0", RTLD_LAZY | RTLD_LOCAL) != nil
        let library = loaded ? LoadedLibraries.find(prefix: "libsystemd.so") : nil
        let underSystemd = getenv("NOTIFY_SOCKET") != nil
        checks.append(
            Check(
                name: "libsystemd", status: loaded ? .ok : .warning,
                detail: (loaded
                    ? (library.map { "\($0) (library file name; libsystemd reports no systemd version)" }
                        ?? "libsystemd.so.0 (file not found in /proc/self/maps)")
                    : "libsystemd.so.0 cannot be loaded: corrald needs it (apt install libsystemd0)")
                    + (underSystemd ? ", running under systemd (NOTIFY_SOCKET set)" : ", not running under systemd")))
        checks += isolationChecks(mounts: (try? readWholeFile(atPath: "/proc/self/mounts")) ?? "", mode: mode)

        let ready = !checks.contains { $0.status == .failed }
        return Report(
            ready: ready, cgroupMode: mode, kernel: release, controllers: present, missingControllers: missing,
            cgroupRoot: rootPath, checks: checks)
    }

    /// Agent isolation: seccomp filters and user notification (from libseccomp's
    /// probe of this kernel), the cgroup2 mount's nsdelegate, cgroup namespaces.
    static func isolationChecks(mounts: String, mode: CgroupMode) -> [Check] {
        var checks: [Check] = []
        let level = Seccomp.apiLevel
        checks.append(
            Check(
                name: "seccomp filters", status: Seccomp.kernelSupportsFilters ? .ok : .warning,
                detail: "libseccomp \(Seccomp.libraryVersion), kernel API level \(level)"
                    + (Seccomp.kernelSupportsFilters
                        ? ": agents' syscall profiles are enforced"
                        : ": this kernel has no seccomp filters; agents with a profile cannot start"),
                fix: Seccomp.kernelSupportsFilters ? nil : "boot a kernel with CONFIG_SECCOMP_FILTER=y, or set security.seccomp: none"))
        if Seccomp.kernelSupportsFilters {
            checks.append(
                Check(
                    name: "seccomp user notification", status: Seccomp.supportsNotification ? .ok : .warning,
                    detail: Seccomp.supportsNotification
                        ? "available: every denied syscall is answered EPERM by Corral and recorded"
                        : "absent (API level \(level) < 5): denied syscalls fail with EPERM unrecorded",
                    fix: Seccomp.supportsNotification ? nil : "Linux 5.5 or later"))
        }
        if mode == .unified {
            let options = MountTable.cgroup2Options(mounts)
            let delegated = options?.contains("nsdelegate") ?? false
            checks.append(
                Check(
                    name: "nsdelegate", status: delegated ? .ok : .warning,
                    detail: delegated
                        ? "the cgroup2 mount has nsdelegate: an agent in its cgroup namespace cannot move processes out of it or write its own limits"
                        : "the cgroup2 mount has no nsdelegate (options: \(options?.joined(separator: ",") ?? "not found")): a root agent could write its namespace root's limits",
                    fix: delegated ? nil : "mount -o remount,nsdelegate /sys/fs/cgroup (systemd mounts it so)"))
        }
        let capabilities = HostProbe.capabilities
        let namespaces = Isolation.canCreateCgroupNamespaces(capabilities)
        checks.append(
            Check(
                name: "cgroup namespaces", status: namespaces ? .ok : .warning,
                detail: namespaces
                    ? "agents get a cgroup namespace and their own cgroup2 mount (security.cgroup_namespace, on by default)"
                    : Limitation.cgroupNamespace(capabilities: capabilities).reason + "; "
                        + Limitation.cgroupNamespace(capabilities: capabilities).effect,
                fix: namespaces ? nil : Limitation.cgroupNamespace(capabilities: capabilities).fix))
        return checks
    }

    /// In a container: the runtime, the cgroup namespace, a read-only cgroup mount (with the
    /// fix per runtime); everywhere: the capabilities Corral's features need and the open-file
    /// limit, each missing one with what Corral does without it.
    static func containerChecks(_ container: ContainerContext) -> [Check] {
        var checks: [Check] = []
        if let problem = container.problems.first {
            checks.append(Check(name: "cgroup mount", status: .failed, detail: problem.message, fix: problem.fix))
        }
        if container.isContainer {
            checks.append(
                Check(
                    name: "container", status: .ok,
                    detail: "\(container.runtime ?? "a container")"
                        + (container.privateCgroupNamespace
                            ? ", private cgroup namespace: agents go below this container's cgroup and the daemon moves into /sys/fs/cgroup/supervisor; everything ends with the container"
                            : ", host cgroup namespace")))
        }
        let capabilities = HostProbe.capabilities
        if let capabilities {
            var missing: [Limitation] = []
            let configured = CgroupWatcher.Configuration(samplingInterval: .seconds(1)).pressureThreshold
            // Whether this kernel refuses short windows without it cannot be known without
            // arming a trigger (the change was backported to some stable kernels): say "may".
            if !capabilities.contains(.sysResource), let configured, let coarse = configured.unprivilegedVariant {
                var limitation = Limitation.coarsePressureTriggers(configured: configured.triggerText, used: coarse.triggerText)
                limitation.reason =
                    "no CAP_SYS_RESOURCE: kernels with unprivileged PSI (6.5+, and stable kernels it was backported to) take only 2 s trigger windows"
                limitation.effect =
                    "the daemon may arm '\(coarse.triggerText)' instead of '\(configured.triggerText)' (corral serve logs which)"
                missing.append(limitation)
            }
            if !capabilities.contains(.ipcLock), !memoryLockUnlimited() {
                missing.append(.memoryLock(error: "RLIMIT_MEMLOCK is limited", capabilities: capabilities))
            }
            let held = capabilities.names
            checks.append(
                Check(
                    name: "capabilities", status: missing.isEmpty ? .ok : .warning,
                    detail: (held.isEmpty ? "none of those Corral uses" : held.joined(separator: " "))
                        + missing.map { "; \($0.feature.rawValue): \($0.reason), so \($0.effect)" }.joined(),
                    fix: missing.isEmpty ? nil : missing.map(\.fix).joined(separator: "; ")))
        }
        var files = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0 {
            if let limitation = Limitation.openFiles(hardLimit: UInt64(files.rlim_max)) {
                checks.append(
                    Check(name: "open files", status: .warning, detail: "\(limitation.reason): \(limitation.effect)", fix: limitation.fix))
            }
        }
        return checks
    }

    static func memoryLockUnlimited() -> Bool {
        var limit = rlimit()
        return getrlimit(Int32(__RLIMIT_MEMLOCK.rawValue), &limit) == 0 && limit.rlim_cur == rlim_t.max
    }

    /// The daemon's state directory and socket directory: writable, or creatable.
    static func directoryChecks(stateDirectory: String, socketPath: String, inContainer: Bool) -> [Check] {
        let socketDirectory = String(socketPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
        return [
            ("state directory", stateDirectory, "the state directory", "--state-dir"),
            ("socket directory", socketDirectory.isEmpty ? "/" : socketDirectory, "the socket's directory", "--socket"),
        ].map { name, path, purpose, flag in
            // The nearest existing ancestor decides: the daemon creates what is missing.
            var existing = path
            while access(existing, F_OK) != 0, existing != "/" {
                existing = "/" + existing.split(separator: "/").dropLast().joined(separator: "/")
            }
            var stats = statvfs()
            let readOnly = statvfs(existing, &stats) == 0 && stats.f_flag & UInt(ST_RDONLY) != 0
            let writable = faccessat(AT_FDCWD, existing, W_OK | X_OK, AT_EACCESS) == 0 && !readOnly
            if writable {
                return Check(
                    name: name, status: .ok, detail: existing == path ? "\(path) is writable" : "\(path) can be created in \(existing)")
            }
            let problem = unwritableDirectoryProblem(
                path, purpose: purpose, flag: flag, inContainer: inContainer,
                reason: readOnly ? "\(existing) is on a read-only filesystem" : "\(existing) is not writable for uid \(geteuid())")
            return Check(
                name: name, status: .warning, detail: problem.message + " (the daemon needs it; corral run does not)", fix: problem.fix)
        }
    }

    /// Can Corral use `rootPath`: exists or can be created, its cgroup.procs
    /// and cgroup.subtree_control writable, controllers reachable, no foreign
    /// processes. Judged from files; nothing is created or enabled.
    static func rootChecks(_ rootPath: String, facts: HostFacts, files: HostFiles) -> [Check] {
        let location: CgroupRootLocation
        do {
            location = try CgroupRootLocation.resolve(rootPath, facts: facts)
        } catch {
            return [Check(name: "cgroup root", status: .failed, detail: error.message, fix: error.fix)]
        }
        return CgroupRootReadiness.assess(location, selfPID: getpid(), files: files).map { finding in
            let status: Check.Status =
                switch finding.status {
                case .ok: .ok
                case .warning: .warning
                case .failed: .failed
                }
            return Check(name: finding.name, status: status, detail: finding.detail, fix: finding.fix)
        }
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
