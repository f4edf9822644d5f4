import ArgumentParser
import CorralCgroup
import CorralCore
import CorralSeccomp
import CorralSystemd

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
        let report = Self.examine(rootPath: root.resolve(configuration))
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

    static func examine(rootPath: String) -> Report {
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

        // libsystemd has no call that reports the systemd version: show the
        // library file that was loaded, labelled as what it is.
        let systemdLibrary =
            Systemd.loadedLibrary.map { "\($0) (library file name; libsystemd reports no systemd version)" }
            ?? "libsystemd (library file not found in /proc/self/maps)"
        checks.append(
            Check(
                name: "libsystemd", status: .ok,
                detail: systemdLibrary
                    + (Systemd.underServiceManager ? ", running under systemd (NOTIFY_SOCKET set)" : ", not running under systemd")))
        let level = Seccomp.apiLevel
        checks.append(
            Check(
                name: "libseccomp", status: Seccomp.kernelSupportsFilters ? .ok : .warning,
                detail: "libseccomp \(Seccomp.libraryVersion), kernel API level \(level)"
                    + (Seccomp.kernelSupportsFilters ? "" : ": this kernel has no seccomp filters")))

        let ready = !checks.contains { $0.status == .failed }
        return Report(
            ready: ready, cgroupMode: mode, kernel: release, controllers: present, missingControllers: missing,
            cgroupRoot: rootPath, checks: checks)
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
