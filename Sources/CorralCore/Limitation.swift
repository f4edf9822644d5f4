/// Linux capabilities, as the effective set in /proc/PID/status (`CapEff:`, hex).
public struct CapabilitySet: Equatable, Codable, Sendable {
    public var bits: UInt64

    public init(bits: UInt64) { self.bits = bits }

    /// From /proc/self/status; nil when it has no CapEff line.
    public init?(status: String) {
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmingSpaces()
            guard let bits = UInt64(hex, radix: 16) else { return nil }
            self.bits = bits
            return
        }
        return nil
    }

    /// The capabilities Corral's features depend on (capability(7) numbers).
    public enum Capability: Int, CaseIterable, Codable, Sendable {
        case kill = 5
        case setgid = 6
        case setuid = 7
        case ipcLock = 14
        case sysAdmin = 21
        case sysNice = 23
        case sysResource = 24

        public var name: String {
            switch self {
            case .kill: "CAP_KILL"
            case .setgid: "CAP_SETGID"
            case .setuid: "CAP_SETUID"
            case .ipcLock: "CAP_IPC_LOCK"
            case .sysAdmin: "CAP_SYS_ADMIN"
            case .sysNice: "CAP_SYS_NICE"
            case .sysResource: "CAP_SYS_RESOURCE"
            }
        }
    }

    public func contains(_ capability: Capability) -> Bool { bits & (1 << UInt64(capability.rawValue)) != 0 }

    /// The named capabilities present, in capability(7) order.
    public var names: [String] { Capability.allCases.filter(contains).map(\.name) }
}

/// Something Corral cannot do where it runs, what it does instead, and the fix. Reported by
/// `corral doctor`, logged at start and listed in `/v1/health`.
public struct Limitation: Equatable, Codable, Sendable {
    public enum Feature: String, Codable, Sendable {
        /// PSI triggers on memory.pressure and cpu.pressure.
        case pressureTriggers = "pressure_triggers"
        /// mlockall: the daemon's pages stay resident under memory pressure.
        case memoryLock = "memory_lock"
        /// RLIMIT_NOFILE: descriptors per watched agent.
        case openFiles = "open_files"
        /// A cgroup namespace (and cgroup2 mount) of each agent's own.
        case cgroupNamespace = "cgroup_namespace"
        /// Seccomp filters, and user notification (denials recorded).
        case seccomp
    }

    public var feature: Feature
    /// Why it is not available here.
    public var reason: String
    /// What Corral does instead.
    public var effect: String
    public var fix: String

    public init(feature: Feature, reason: String, effect: String, fix: String) {
        self.feature = feature
        self.reason = reason
        self.effect = effect
        self.fix = fix
    }

    /// PSI triggers could not be armed at all (`reason` from the watcher): a kernel without
    /// PSI (CONFIG_PSI, psi=0), or pressure files this process may not write.
    public static func pressureTriggers(reason: String) -> Limitation {
        Limitation(
            feature: .pressureTriggers, reason: reason,
            effect:
                "memory and cpu pressure are read at each sample instead of waking the watcher: events and sampling still see every limit",
            fix: "boot a kernel with PSI (CONFIG_PSI=y, without psi=0 on its command line) and give Corral a writable cgroup2 mount")
    }

    /// A process without CAP_SYS_RESOURCE may only arm triggers whose window is a multiple of
    /// 2 s on kernels with the unprivileged-PSI change (Linux 6.5, backported to stable
    /// kernels such as Debian's 6.1.0-57, where the container e2e sees it); the watcher then
    /// uses `used` instead of `configured`. Older kernels take any trigger from whoever may
    /// write the pressure file.
    public static func coarsePressureTriggers(configured: String, used: String) -> Limitation {
        Limitation(
            feature: .pressureTriggers,
            reason: "without CAP_SYS_RESOURCE this kernel takes only 2 s trigger windows ('\(configured)' refused)",
            effect: "the triggers armed are '\(used)': a pressure stall wakes the watcher up to 2 s later than configured",
            fix: "grant CAP_SYS_RESOURCE (securityContext.capabilities.add: [SYS_RESOURCE], docker run --cap-add SYS_RESOURCE)")
    }

    /// mlockall failed (`error`); the daemon runs unlocked.
    public static func memoryLock(error: String, capabilities: CapabilitySet?) -> Limitation {
        Limitation(
            feature: .memoryLock,
            reason: "mlockall failed: \(error)" + (capabilities.map { $0.contains(.ipcLock) ? "" : " (no CAP_IPC_LOCK)" } ?? ""),
            effect: "the daemon's pages can be evicted: under host memory pressure it may react hundreds of milliseconds later",
            fix:
                "grant CAP_IPC_LOCK (securityContext.capabilities.add: [IPC_LOCK], docker run --cap-add IPC_LOCK) or raise RLIMIT_MEMLOCK; --no-memory-lock silences this"
        )
    }

    /// Policies ask for cgroup namespaces, and this process may not create them.
    public static func cgroupNamespace(capabilities: CapabilitySet?) -> Limitation {
        Limitation(
            feature: .cgroupNamespace,
            reason: "creating a cgroup namespace needs CAP_SYS_ADMIN"
                + (capabilities.map { $0.contains(.sysAdmin) ? "" : ", which this process does not have" } ?? ""),
            effect:
                "agents see the host's cgroup tree: an agent running as root can write the cgroup files root owns (its own limits, another agent's cgroup.freeze); agents running as another user are kept out by file permissions",
            fix:
                "run agents as a user of their own (security.user: e.g. nobody), or grant CAP_SYS_ADMIN; security.cgroup_namespace: false silences this"
        )
    }

    /// The kernel has no seccomp filters (`filters` false) or no user notification.
    public static func seccomp(filters: Bool, apiLevel: UInt32) -> Limitation {
        filters
            ? Limitation(
                feature: .seccomp, reason: "libseccomp reports API level \(apiLevel): this kernel has no seccomp user notification",
                effect: "denied syscalls fail with EPERM but are not counted or recorded",
                fix: "run Linux 5.5 or later (user notification) with libseccomp 2.5 or later")
            : Limitation(
                feature: .seccomp, reason: "this kernel has no seccomp filters (libseccomp API level 0)",
                effect: "agents whose group has a seccomp profile cannot start",
                fix: "boot a kernel with CONFIG_SECCOMP_FILTER=y, or set security.seccomp: none")
    }

    /// Descriptors the daemon holds per watched agent (cgroup event files, PSI triggers,
    /// pidfd, log files, the seccomp listener of an agent it launched): 10 measured in the VM
    /// with `ls /proc/PID/fd` by the container e2e (9 before the listener), which fails when
    /// it grows past this.
    public static let descriptorsPerAgent = 10

    /// The open-file hard limit caps how many agents can be watched; nil when it does not bite.
    public static func openFiles(hardLimit: UInt64, wantedAgents: Int = 1000) -> Limitation? {
        let wanted = UInt64(wantedAgents * descriptorsPerAgent + 64)
        guard hardLimit < wanted else { return nil }
        let agents = max(0, (Int(hardLimit) - 64) / descriptorsPerAgent)
        return Limitation(
            feature: .openFiles, reason: "the open-file hard limit is \(hardLimit)",
            effect: "about \(agents) agents can be watched at once (\(descriptorsPerAgent) descriptors each); more fail to start",
            fix:
                "raise RLIMIT_NOFILE for the daemon: LimitNOFILE= in the unit, docker run --ulimit nofile=65536, or the container runtime's default_ulimits"
        )
    }
}
