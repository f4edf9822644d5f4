/// What an agent may do beyond its resource limits: the syscall filter, the
/// user it runs as, its cgroup namespace and rlimits. Set per group, overridden
/// per agent (configuration) and per run (`corral run --user/--seccomp`).
public struct SecurityPolicy: Equatable, Hashable, Codable, Sendable {
    /// Run as this user (name or numeric uid); nil: as the caller (root for the daemon).
    public var user: String?
    /// Primary group (name or gid); nil: the user's own.
    public var group: String?
    public var seccomp: SeccompPolicy
    /// PR_SET_NO_NEW_PRIVS before exec (always set when a filter is loaded).
    public var noNewPrivileges: Bool
    /// A cgroup namespace rooted at the agent's cgroup (`CLONE_NEWCGROUP`).
    public var cgroupNamespace: Bool
    public var rlimits: [ResourceLimitName: RlimitValue]
    /// What an agent running as root keeps of root's capabilities.
    public var capabilities: CapabilityPolicy

    public init(
        user: String? = nil, group: String? = nil, seccomp: SeccompPolicy = .init(), noNewPrivileges: Bool = true,
        cgroupNamespace: Bool = true, rlimits: [ResourceLimitName: RlimitValue] = [:], capabilities: CapabilityPolicy = .default
    ) {
        self.capabilities = capabilities
        self.user = user
        self.group = group
        self.seccomp = seccomp
        self.noNewPrivileges = noNewPrivileges
        self.cgroupNamespace = cgroupNamespace
        self.rlimits = rlimits
    }

    /// What agents get when nothing is configured: the `default` filter with
    /// denials answered EPERM, no_new_privs, a cgroup namespace, the caller's user.
    public static let standard = SecurityPolicy()

    /// No filter, no namespace, no_new_privs off: how Corral ran agents before policies existed.
    public static let unconfined = SecurityPolicy(
        seccomp: .init(base: .none), noNewPrivileges: false, cgroupNamespace: false, capabilities: .all)

    /// One line for `agents show` and logs: "seccomp default (errno), user nobody, cgroupns".
    public var summary: String {
        var parts = ["seccomp \(seccomp.summary)"]
        if let user { parts.append("user \(user)" + (group.map { ":\($0)" } ?? "")) }
        if noNewPrivileges { parts.append("no_new_privs") }
        if cgroupNamespace { parts.append("cgroupns") }
        if capabilities == .all { parts.append("all capabilities") }
        for (name, value) in rlimits.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            parts.append("\(name.rawValue)=\(value.description)")
        }
        return parts.joined(separator: ", ")
    }
}

/// Fields an agent's configuration or a run's flags set on top of its group's policy.
public struct SecurityOverride: Equatable, Sendable {
    public var user: String?
    public var group: String?
    public var seccomp: SeccompPolicy?
    /// A flag's profile (`--seccomp`, the API's `seccomp`): the base changes, the
    /// group's deny and allow lists and action stay; `none` drops the lists too.
    public var seccompBase: SeccompProfile?
    public var seccompAction: SeccompAction?
    public var noNewPrivileges: Bool?
    public var cgroupNamespace: Bool?
    public var rlimits: [ResourceLimitName: RlimitValue] = [:]
    public var capabilities: CapabilityPolicy?

    public init() {}

    public var isEmpty: Bool { self == SecurityOverride() }

    public func apply(to base: SecurityPolicy) -> SecurityPolicy {
        var policy = base
        if let user { policy.user = user }
        if let group { policy.group = group }
        if let seccomp { policy.seccomp = seccomp }
        if let seccompBase {
            policy.seccomp.base = seccompBase
            if seccompBase == .none {
                policy.seccomp.deny = []
                policy.seccomp.allow = []
            }
        }
        if let seccompAction { policy.seccomp.action = seccompAction }
        if let noNewPrivileges { policy.noNewPrivileges = noNewPrivileges }
        if let cgroupNamespace { policy.cgroupNamespace = cgroupNamespace }
        if let capabilities { policy.capabilities = capabilities }
        policy.rlimits.merge(rlimits) { $1 }
        return policy
    }
}

/// What a root agent keeps of root's capabilities (an agent of another user has none).
public enum CapabilityPolicy: String, Codable, Sendable, CaseIterable, CaseHashable {
    /// Docker's default set less MKNOD and NET_RAW (Docker has a device cgroup and a
    /// network namespace to contain them; an agent has neither): CHOWN, DAC_OVERRIDE,
    /// FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT,
    /// AUDIT_WRITE, SETFCAP. Without CAP_SYS_ADMIN, CAP_SYS_PTRACE and the rest it cannot
    /// mount, trace, load modules, make device nodes or reach other processes' mounts
    /// through /proc/PID/root.
    case `default`
    /// Every capability Corral itself has.
    case all

    /// capability(7) numbers of the default set.
    public static let defaultSet: [Int] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 29, 31]

    public var keptMask: UInt64? {
        switch self {
        case .default: Self.defaultSet.reduce(0) { $0 | (1 << UInt64($1)) }
        case .all: nil
        }
    }
}

/// What happens to a denied syscall.
public enum SeccompAction: String, Codable, Sendable, CaseIterable, CaseHashable {
    /// The call fails with EPERM (and is recorded by the supervisor).
    case errno
    /// The process is killed by SIGSYS (SECCOMP_RET_KILL_PROCESS).
    case kill
}

/// The built-in profiles.
public enum SeccompProfile: String, Codable, Sendable, CaseIterable, CaseHashable {
    case `default`
    case strict
    case none
}

/// A syscall filter: a profile, with syscalls denied or allowed on top.
public struct SeccompPolicy: Equatable, Hashable, Codable, Sendable {
    public var base: SeccompProfile
    /// Denied in addition to the profile's list.
    public var deny: [String]
    /// Taken out of the profile's list (they run unfiltered).
    public var allow: [String]
    public var action: SeccompAction

    public init(base: SeccompProfile = .default, deny: [String] = [], allow: [String] = [], action: SeccompAction = .errno) {
        self.base = base
        self.deny = deny
        self.allow = allow
        self.action = action
    }

    /// Whether any syscall is filtered at all.
    public var filters: Bool { base != .none || !deny.isEmpty }

    public var summary: String {
        guard filters else { return "none" }
        var text = base.rawValue
        if !deny.isEmpty { text += " +deny[\(deny.joined(separator: ","))]" }
        if !allow.isEmpty { text += " +allow[\(allow.joined(separator: ","))]" }
        return text + " (\(action.rawValue))"
    }

    /// Every rule of the filter, in the order they are added: the profile's
    /// denials less `allow`, then `deny`.
    public var rules: [SyscallRule] {
        let allowed = Set(allow)
        var result = SyscallProfiles.rules(for: base).filter { !allowed.contains($0.syscall) }
        let present = Set(result.filter { $0.condition == nil }.map(\.syscall))
        for name in deny where !present.contains(name) {
            result.append(SyscallRule(name))
        }
        return result
    }

    /// Every syscall name the policy mentions (to check against libseccomp).
    public var mentionedNames: [String] { deny + allow }
}

/// One rule of a filter: deny `syscall` (when `condition` holds on an argument).
public struct SyscallRule: Equatable, Hashable, Sendable {
    public var syscall: String
    public var condition: ArgumentCondition?
    /// What the call answers instead of the policy's action (clone3's ENOSYS):
    /// such a rule redirects and is not a denial to record.
    public var fixedErrno: Int32?

    public init(_ syscall: String, _ condition: ArgumentCondition? = nil, fixedErrno: Int32? = nil) {
        self.syscall = syscall
        self.condition = condition
        self.fixedErrno = fixedErrno
    }
}

/// A test on one syscall argument (libseccomp's scmp_arg_cmp).
public struct ArgumentCondition: Equatable, Hashable, Sendable {
    public enum Operation: Equatable, Hashable, Sendable {
        /// (arg & mask) == value
        case maskedEqual(mask: UInt64, value: UInt64)
        case equal(UInt64)
        case greaterThan(UInt64)
    }
    public var argument: Int
    public var operation: Operation

    public init(argument: Int, _ operation: Operation) {
        self.argument = argument
        self.operation = operation
    }
}

/// The profiles' lists (see README "Agent isolation" for what each leaves agents).
public enum SyscallProfiles {
    /// CLONE_NEWUSER: user-namespace creation, the door to every namespaced capability.
    public static let cloneNewUser: UInt64 = 0x1000_0000
    /// ENOSYS, for clone3: glibc then falls back to clone, whose flags a filter can see.
    public static let enosys: Int32 = 38

    /// systemd's @mount.
    public static let mount = [
        "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree",
        "mount_setattr",
    ]
    public static let modules = ["init_module", "finit_module", "delete_module"]
    public static let reboot = ["reboot", "kexec_load", "kexec_file_load"]
    public static let swap = ["swapon", "swapoff"]
    public static let clock = ["settimeofday", "clock_settime", "adjtimex", "clock_adjtime"]
    public static let rawIO = ["ioperm", "iopl"]
    /// Tracing other processes and the kernel.
    public static let debug = ["ptrace", "process_vm_readv", "process_vm_writev", "perf_event_open", "pidfd_getfd", "lookup_dcookie"]
    public static let keyring = ["keyctl", "add_key", "request_key"]
    /// io_uring performs file and socket operations the filter never sees.
    public static let ioUring = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
    /// Entering other namespaces.
    public static let namespaces = ["setns"]
    public static let misc = ["bpf", "open_by_handle_at", "userfaultfd"]
    /// systemd's @cpu-emulation and @obsolete calls an agent has no use for.
    public static let obsolete = ["modify_ldt", "uselib", "_sysctl"]

    /// ioctl requests that push input into a terminal (TIOCSTI) or drive the
    /// console (TIOCLINUX): an agent sharing `corral run`'s terminal could type
    /// commands into the user's shell (bubblewrap's CVE-2017-5226). Compared on
    /// the low 32 bits only: the kernel ignores the rest (Flatpak's CVE-2019-10063).
    public static let terminalInjection: [UInt64] = [0x5412, 0x541C]
    /// AF_VSOCK: talks to the hypervisor (Docker's default profile refuses it).
    public static let vsock: UInt64 = 40
    /// S_IFMT bits of mknod's mode for block and character devices.
    public static let deviceTypes: [UInt64] = [0x6000, 0x2000]

    /// systemd's @privileged-style calls that `strict` adds.
    public static let privileged = [
        "acct", "capset", "fanotify_init", "quotactl", "quotactl_fd", "sethostname", "setdomainname", "setuid", "setgid", "setreuid",
        "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups", "vhangup", "name_to_handle_at", "syslog",
        "memfd_secret",
    ]

    /// Address families `strict` leaves to `socket`: AF_UNIX, AF_INET, AF_INET6.
    public static let strictSocketFamilies: [UInt64] = [1, 2, 10]

    /// personality(2) flags that weaken the address-space layout.
    /// ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT, READ_IMPLIES_EXEC.
    public static let personalityFlags: [UInt64] = [0x0040000, 0x0100000, 0x0200000, 0x0400000]

    public static func rules(for profile: SeccompProfile) -> [SyscallRule] {
        switch profile {
        case .none:
            return []
        case .default:
            var rules = (mount + modules + reboot + swap + clock + rawIO + debug + keyring + ioUring + namespaces + misc + obsolete).map {
                SyscallRule($0)
            }
            rules.append(SyscallRule("unshare", ArgumentCondition(argument: 0, .maskedEqual(mask: cloneNewUser, value: cloneNewUser))))
            rules.append(SyscallRule("clone", ArgumentCondition(argument: 0, .maskedEqual(mask: cloneNewUser, value: cloneNewUser))))
            // Setting a flag is refused; the query personality(0xffffffff) (bit 31 set,
            // which no real persona has) is not.
            for flag in personalityFlags {
                rules.append(
                    SyscallRule("personality", ArgumentCondition(argument: 0, .maskedEqual(mask: flag | 0x8000_0000, value: flag))))
            }
            for request in terminalInjection {
                rules.append(SyscallRule("ioctl", ArgumentCondition(argument: 1, .maskedEqual(mask: 0xffff_ffff, value: request))))
            }
            rules.append(SyscallRule("socket", ArgumentCondition(argument: 0, .equal(vsock))))
            // Device nodes: a root agent could otherwise make one for the host's disk.
            for type in deviceTypes {
                rules.append(SyscallRule("mknod", ArgumentCondition(argument: 1, .maskedEqual(mask: 0xF000, value: type))))
                rules.append(SyscallRule("mknodat", ArgumentCondition(argument: 2, .maskedEqual(mask: 0xF000, value: type))))
            }
            rules.append(SyscallRule("clone3", fixedErrno: enosys))
            return rules
        case .strict:
            var rules = rules(for: .default) + privileged.map { SyscallRule($0) }
            // socket(domain, …): everything but the three families.
            let allowed = strictSocketFamilies
            rules.append(SyscallRule("socket", ArgumentCondition(argument: 0, .greaterThan(allowed.max()!))))
            for family in 0..<allowed.max()! where !allowed.contains(family) && family != vsock {
                rules.append(SyscallRule("socket", ArgumentCondition(argument: 0, .equal(family))))
            }
            return rules
        }
    }
}

/// An rlimit an agent's policy may set (setrlimit's RLIMIT_*, by their usual names).
public enum ResourceLimitName: String, Codable, CodingKeyRepresentable, Sendable, CaseIterable, Comparable, CaseHashable {
    case cpu, fsize, data, stack, core, rss, nproc, nofile, memlock, `as`, locks, sigpending, msgqueue, nice, rtprio, rttime

    /// The RLIMIT_* number on Linux (asm-generic).
    public var number: Int32 {
        switch self {
        case .cpu: 0
        case .fsize: 1
        case .data: 2
        case .stack: 3
        case .core: 4
        case .rss: 5
        case .nproc: 6
        case .nofile: 7
        case .memlock: 8
        case .as: 9
        case .locks: 10
        case .sigpending: 11
        case .msgqueue: 12
        case .nice: 13
        case .rtprio: 14
        case .rttime: 15
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public static let acceptedNames = allCases.map(\.rawValue).joined(separator: ", ")
}

/// A soft and hard rlimit; nil is "unlimited" (RLIM_INFINITY).
public struct RlimitValue: Equatable, Hashable, Codable, Sendable, CustomStringConvertible {
    public var soft: UInt64?
    public var hard: UInt64?

    public init(soft: UInt64?, hard: UInt64?) {
        self.soft = soft
        self.hard = hard
    }

    public var description: String {
        let soft = soft.map(String.init) ?? "unlimited"
        let hard = hard.map(String.init) ?? "unlimited"
        return soft == hard ? soft : "\(soft):\(hard)"
    }

    public static let accepted = "N (soft and hard), unlimited, or SOFT:HARD, e.g. 1024, 1024:4096, 0 (core), unlimited"

    /// "1024", "unlimited", "1024:4096", "1024:unlimited"; nil with the reason when not one of these.
    public static func parse(_ text: String) -> Result<RlimitValue, Quantity.ParseError> {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingSpaces() }
        guard parts.count == 1 || parts.count == 2 else {
            return .failure(Quantity.ParseError(value: text, reason: "not an rlimit", accepted: accepted))
        }
        var values: [UInt64?] = []
        for part in parts {
            if part == "unlimited" || part == "infinity" {
                values.append(nil)
            } else if let number = UInt64(part) {
                values.append(number)
            } else {
                return .failure(
                    Quantity.ParseError(value: text, reason: "'\(part)' is not a whole number or unlimited", accepted: accepted))
            }
        }
        let value = RlimitValue(soft: values[0], hard: values.count == 2 ? values[1] : values[0])
        if let hard = value.hard, value.soft == nil || value.soft! > hard {
            return .failure(Quantity.ParseError(value: text, reason: "the soft limit is above the hard limit", accepted: accepted))
        }
        return .success(value)
    }
}

/// One syscall an agent was refused, counted (the supervisor folds repeats).
public struct SyscallDenial: Equatable, Codable, Sendable {
    public var agent: String
    public var syscall: String
    public var count: Int
    public var firstAt: Timestamp
    public var lastAt: Timestamp
    /// errno: the call failed with EPERM; kill: the process was killed by SIGSYS.
    public var action: SeccompAction
    /// The process that made the last denied call.
    public var pid: Int32?

    public init(agent: String, syscall: String, count: Int, firstAt: Timestamp, lastAt: Timestamp, action: SeccompAction, pid: Int32?) {
        self.agent = agent
        self.syscall = syscall
        self.count = count
        self.firstAt = firstAt
        self.lastAt = lastAt
        self.action = action
        self.pid = pid
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

/// /proc/self/mounts, for the cgroup2 mount's options (doctor's nsdelegate check).
public enum MountTable {
    /// The options of the cgroup2 mount at `mountPoint` ("rw,nosuid,…,nsdelegate"); nil when none is there.
    public static func cgroup2Options(_ mounts: String, at mountPoint: String = "/sys/fs/cgroup") -> [String]? {
        var found: [String]?
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4, fields[2] == "cgroup2", fields[1] == mountPoint else { continue }
            found = fields[3].split(separator: ",").map(String.init)  // the last mount on a path wins
        }
        return found
    }
}

/// /etc/passwd and /etc/group, read as container runtimes read them: a local user is
/// found without loading NSS modules (dlopen of libnss_* costs milliseconds per launch).
public enum UserDatabase {
    public struct User: Equatable, Sendable {
        public var name: String
        public var uid: UInt32
        public var gid: UInt32
        public var home: String

        public init(name: String, uid: UInt32, gid: UInt32, home: String) {
            self.name = name
            self.uid = uid
            self.gid = gid
            self.home = home
        }
    }

    /// The entry whose name (or, for a number, uid) is `user`.
    public static func user(_ user: String, in passwd: String) -> User? {
        let uid = UInt32(user)
        for line in passwd.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, let entryUID = UInt32(fields[2]), let entryGID = UInt32(fields[3]) else { continue }
            if fields[0] == user || (uid != nil && entryUID == uid) {
                return User(name: String(fields[0]), uid: entryUID, gid: entryGID, home: String(fields[5]))
            }
        }
        return nil
    }

    /// The gid of group `name`.
    public static func group(_ name: String, in group: String) -> UInt32? {
        for line in group.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count >= 3, fields[0] == name, let gid = UInt32(fields[2]) { return gid }
        }
        return nil
    }

    /// `primary` and every group listing `user` as a member, in file order.
    public static func groups(of user: String, primary: UInt32, in group: String) -> [UInt32] {
        var result = [primary]
        for line in group.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 4, let gid = UInt32(fields[2]), !result.contains(gid) else { continue }
            if fields[3].split(separator: ",").contains(where: { $0 == user }) { result.append(gid) }
        }
        return result
    }
}
