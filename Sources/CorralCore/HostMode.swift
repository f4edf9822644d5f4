/// How cgroups are mounted on a host.
public enum CgroupMode: String, Codable, Sendable {
    /// Pure cgroup v2 at /sys/fs/cgroup: what Corral needs.
    case unified
    /// v1 controllers at /sys/fs/cgroup/*, a controller-less v2 at /sys/fs/cgroup/unified.
    case hybrid
    /// Only cgroup v1.
    case legacy
    /// No cgroup filesystem mounted at /sys/fs/cgroup.
    case unavailable
}

/// A filesystem type as `statfs` reports it, reduced to what matters here.
public enum FilesystemKind: String, Codable, Sendable {
    case cgroup2
    case cgroup1
    case tmpfs
    case other
    case missing

    /// From `statfs.f_type`.
    public init(magic: Int) {
        switch magic {
        case 0x6367_7270: self = .cgroup2
        case 0x0002_7e0b: self = .cgroup1
        case 0x0102_1994: self = .tmpfs
        default: self = .other
        }
    }
}

/// What a host probe found, gathered by the cgroup layer and judged here.
public struct HostFacts: Equatable, Codable, Sendable {
    /// `statfs("/sys/fs/cgroup")`.
    public var cgroupMount: FilesystemKind
    /// `statfs("/sys/fs/cgroup/unified")`, when it exists.
    public var unifiedMount: FilesystemKind
    /// Controllers bound to a v1 hierarchy (`/proc/cgroups`, hierarchy ≠ 0).
    public var v1Controllers: Set<String>
    /// The v2 root's `cgroup.controllers` (empty when there is no v2 hierarchy).
    public var v2RootControllers: Set<String>

    public init(
        cgroupMount: FilesystemKind, unifiedMount: FilesystemKind, v1Controllers: Set<String>,
        v2RootControllers: Set<String>
    ) {
        self.cgroupMount = cgroupMount
        self.unifiedMount = unifiedMount
        self.v1Controllers = v1Controllers
        self.v2RootControllers = v2RootControllers
    }

    public var mode: CgroupMode {
        switch cgroupMount {
        case .cgroup2: .unified
        case .tmpfs: unifiedMount == .cgroup2 ? .hybrid : (v1Controllers.isEmpty ? .unavailable : .legacy)
        case .cgroup1: .legacy
        case .other, .missing: .unavailable
        }
    }

    /// Required controllers the v2 hierarchy does not offer.
    public var missingControllers: [Controller] {
        Controller.required.filter { !v2RootControllers.contains($0.rawValue) }
    }
}

/// A problem with the host or the cgroup root, with the fix.
public struct HostProblem: Equatable, Codable, Sendable, CustomStringConvertible {
    public enum Severity: String, Codable, Sendable { case fatal, warning }

    public var severity: Severity
    public var message: String
    public var fix: String

    public init(_ severity: Severity, _ message: String, fix: String) {
        self.severity = severity
        self.message = message
        self.fix = fix
    }

    public var description: String { "\(message)\n  fix: \(fix)" }
}

extension HostFacts {
    static let unifiedFix =
        "boot the kernel with systemd.unified_cgroup_hierarchy=1 (or cgroup_no_v1=all) so that memory, cpu and pids are cgroup v2 controllers: add it to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot. To try Corral without rebooting, use scripts/vm/run-in-vm (a VM with a pure cgroup v2 kernel)"

    /// The problems that stop Corral from enforcing limits on this host; empty when it can.
    public var problems: [HostProblem] {
        let missing = missingControllers.map(\.rawValue)
        switch mode {
        case .unified:
            if missing.isEmpty { return [] }
            return [
                HostProblem(
                    .fatal,
                    "the cgroup v2 hierarchy at /sys/fs/cgroup lacks the \(missing.joined(separator: ", ")) controller\(missing.count == 1 ? "" : "s")"
                        + (v1Controllers.isEmpty ? "" : " (bound to cgroup v1: \(v1Controllers.sorted().joined(separator: ", ")))"),
                    fix: v1Controllers.isEmpty
                        ? "use a kernel built with CONFIG_MEMCG, CONFIG_CGROUP_SCHED and CONFIG_CGROUP_PIDS"
                        : HostFacts.unifiedFix)
            ]
        case .hybrid:
            let bound = missing.filter { v1Controllers.contains($0) }
            return [
                HostProblem(
                    .fatal,
                    "this host mounts cgroups in hybrid mode: the cgroup v2 hierarchy at /sys/fs/cgroup/unified has no \(missing.joined(separator: ", ")) controller\(missing.count == 1 ? "" : "s")"
                        + (bound.isEmpty
                            ? ""
                            : " (\(bound.joined(separator: ", ")) \(bound.count == 1 ? "is" : "are") bound to cgroup v1 under /sys/fs/cgroup)")
                        + ", so Corral cannot set memory.max, cpu.max or pids.max",
                    fix: HostFacts.unifiedFix)
            ]
        case .legacy:
            return [
                HostProblem(
                    .fatal,
                    "this host mounts only cgroup v1 (legacy mode); Corral needs cgroup v2 with the memory, cpu and pids controllers",
                    fix: HostFacts.unifiedFix)
            ]
        case .unavailable:
            return [
                HostProblem(
                    .fatal, "no cgroup filesystem is mounted at /sys/fs/cgroup",
                    fix:
                        "mount cgroup2 there (mount -t cgroup2 none /sys/fs/cgroup), or boot a systemd host with systemd.unified_cgroup_hierarchy=1"
                )
            ]
        }
    }
}
