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
        abstract: "Check whether this host can run agents under cgroup v2 quotas, and say how to fix what is missing.",
        discussion: """
            Checks the cgroup mode (unified, hybrid, legacy), the memory, cpu, pids and io controllers,
            access to the cgroup root, the kernel features Corral uses (clone3 into a cgroup, cgroup.kill,
            memory.peak, pids.peak, PSI) and the libsystemd and libseccomp libraries. Exits 0 when
            `corral run` can work here, 1 otherwise. Changes nothing.
            """
    )

    @OptionGroup var root: CgroupRootOption

    @Option(name: .long, help: ArgumentHelp("YAML configuration (for its cgroup_root).", valueName: "FILE"))
    var config: String?

    @Flag(name: .long, help: "Print the report as JSON on stdout.")
    var json = false

    struct Check: Codable {
        enum Status: String, Codable { case ok, warning, failed }
        var name: String
        var status: Status
        var detail: String
        var fix: String?
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
        func atLeast(_ major: Int, _ minor: Int) -> Bool { (version.major, version.minor) >= (major, minor) }
        checks.append(
            Check(
                name: "kernel", status: atLeast(5, 7) ? .ok : .warning,
                detail: "\(release)" + (atLeast(5, 7) ? "" : ": older than 5.7, agents are placed through cgroup.procs instead of clone3"),
                fix: atLeast(5, 7) ? nil : "use a 5.14 or newer kernel"))
        let features: [(String, Bool, String)] = [
            ("clone3 into cgroup", atLeast(5, 7), "needs 5.7: agents join their cgroup through cgroup.procs before exec"),
            ("cgroup.kill", atLeast(5, 14), "needs 5.14: kills freeze the cgroup and signal each process"),
            ("memory.peak", atLeast(5, 19), "needs 5.19: peak memory is sampled instead"),
            ("PSI", HostProbe.hasPressureStallInformation, "no /proc/pressure: boot with psi=1 (CONFIG_PSI)"),
        ]
        for (name, available, consequence) in features {
            checks.append(Check(name: name, status: available ? .ok : .warning, detail: available ? "available" : consequence))
        }

        let euid = geteuid()
        checks.append(
            Check(
                name: "privileges", status: .ok,
                detail: euid == 0 ? "running as root" : "running as uid \(euid): the cgroup root must be delegated to this user"))

        if mode == .unified && missing.isEmpty {
            checks.append(rootCheck(rootPath, facts: facts, euid: euid))
        } else {
            checks.append(
                Check(name: "cgroup root", status: .failed, detail: "\(rootPath): not usable until the host problems above are fixed"))
        }

        let systemdLibrary = Systemd.loadedLibrary ?? "libsystemd (version unknown)"
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

    /// Can Corral use `rootPath`: exists or can be created, writable, controllers reachable.
    static func rootCheck(_ rootPath: String, facts: HostFacts, euid: uid_t) -> Check {
        let location: CgroupRootLocation
        do {
            location = try CgroupRootLocation.resolve(rootPath, facts: facts)
        } catch {
            return Check(name: "cgroup root", status: .failed, detail: error.message, fix: error.fix)
        }
        let exists = access(location.rootPath, F_OK) == 0
        let target = exists ? location.rootPath : location.anchor
        guard access(target, W_OK) == 0 else {
            return Check(
                name: "cgroup root", status: .failed,
                detail: "\(target) is not writable by uid \(euid)" + (exists ? "" : " (needed to create \(location.rootPath))"),
                fix: "run as root, or point --cgroup-root at a cgroup delegated to you (systemd-run --user --scope -p Delegate=yes …)")
        }
        let controllersFile = (exists ? location.rootPath : location.anchor) + "/cgroup.controllers"
        var detail = "\(location.rootPath) " + (exists ? "exists and is writable" : "will be created in \(location.anchor)")
        if let text = readSmallFile(controllersFile) {
            let available = ControllerList.parse(text)
            let lacking = Controller.required.filter { !available.contains($0.rawValue) }.map(\.rawValue)
            if !lacking.isEmpty {
                detail +=
                    "; \(lacking.joined(separator: ", ")) not yet enabled for it (Corral enables them in \(location.anchor)/cgroup.subtree_control)"
            }
        }
        return Check(name: "cgroup root", status: .ok, detail: detail)
    }
}

func readSmallFile(_ path: String) -> String? {
    guard case .success(let text) = readTextFile(path) else { return nil }
    return text
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
