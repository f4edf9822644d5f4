import CCorralLinux
import CorralCgroup
public import CorralCore
import CorralLinux
public import CorralSeccomp
import CorralThreads

#if canImport(Glibc)
    import Glibc
#endif

/// What the child applies between fork and exec, all of it prepared here in
/// the parent: compiled filters, resolved ids and groups, rlimits.
public struct Isolation: Sendable {
    /// Loaded when no listener can be had (or none is wanted).
    public var filter: CompiledFilter?
    /// The same policy with user notification: denied calls reach the supervisor.
    public var notifyFilter: CompiledFilter?
    public var cgroupNamespace: Bool
    /// With the namespace: where a cgroup2 mount of the agent's own namespace
    /// covers the host's (a mount namespace of its own); nil: none.
    public var cgroupMount: String?
    public var noNewPrivileges: Bool
    public var identity: UserIdentity?
    /// For an agent that stays root: the capabilities it keeps (nil: all of Corral's).
    public var keptCapabilities: UInt64?
    public var rlimits: [(resource: Int32, soft: UInt64?, hard: UInt64?)]
    /// The policy this came from (for summaries and records).
    public var policy: SecurityPolicy

    /// No filter, no namespace, the caller's user: how agents ran before policies.
    public static let none = Isolation(
        filter: nil, notifyFilter: nil, cgroupNamespace: false, cgroupMount: nil, noNewPrivileges: false, identity: nil,
        keptCapabilities: nil, rlimits: [], policy: .unconfined)

    /// Where the cgroup2 hierarchy is mounted (the agent's own mount covers it).
    public static let cgroupMountPoint = "/sys/fs/cgroup"

    /// Whether this process can give agents a cgroup namespace (CAP_SYS_ADMIN:
    /// unshare and the namespace's cgroup2 mount need it).
    public static func canCreateCgroupNamespaces(_ capabilities: CapabilitySet?) -> Bool {
        capabilities?.contains(.sysAdmin) ?? (getuid() == 0)
    }

    /// Compiles `policy`'s filters into `cache` on a thread of its own, so that a
    /// `prepare` of the same policy later finds them (or waits for this compile
    /// instead of starting its own): `corral run` starts it before asking the daemon,
    /// which names the agent's policy, usually this one. Errors are left to `prepare`.
    public static func warm(_ policy: SecurityPolicy, cache: FilterCache, supervised: Bool) {
        guard policy.seccomp.filters, Seccomp.kernelSupportsFilters else { return }
        let seccomp = policy.seccomp
        let notify = supervised && seccomp.action == .errno && Seccomp.supportsNotification
        OSThread.start(name: "corral-seccomp") {
            _ = try? cache.filter(for: seccomp, notify: notify)
        }
    }

    /// Prepares `policy`: compiles its filter through `cache` (with a
    /// notifying variant when `supervised`: someone will answer denied calls)
    /// and resolves its user. Fails with the value at fault and the fix.
    ///
    /// A policy that asks for a cgroup namespace where this process lacks
    /// CAP_SYS_ADMIN (the hardened unit, a container's default capabilities)
    /// gets none: `Limitation.cgroupNamespace` says so once, at start.
    /// `compile: false` checks everything but compiles nothing (`warm` does).
    public static func prepare(
        _ policy: SecurityPolicy, cache: FilterCache, supervised: Bool, capabilities: CapabilitySet? = nil, compile: Bool = true
    ) throws(SpawnError) -> Isolation {
        var filter: CompiledFilter?
        var notifyFilter: CompiledFilter?
        if policy.seccomp.filters {
            guard Seccomp.kernelSupportsFilters else {
                throw SpawnError(
                    message:
                        "this kernel has no seccomp filters (libseccomp API level 0), so the '\(policy.seccomp.base.rawValue)' profile cannot be applied",
                    fix:
                        "use a kernel with CONFIG_SECCOMP_FILTER, or set security.seccomp: none for the group (or corral run --no-seccomp)",
                    exitStatus: 125)
            }
            do {
                // `compile: false` only checks (`warm` compiles on a thread of its own). The
                // notifying filter first: the plain one (used when the kernel refuses a
                // second listener) is then derived from it rather than compiled.
                if compile, supervised && policy.seccomp.action == .errno && Seccomp.supportsNotification {
                    notifyFilter = try cache.filter(for: policy.seccomp, notify: true)
                }
                if compile { filter = try cache.filter(for: policy.seccomp, notify: false) }
            } catch {
                throw SpawnError(message: "cannot build the seccomp filter (\(policy.seccomp.summary)): \(error)", exitStatus: 125)
            }
        }
        let identity = try policy.user.map { user throws(SpawnError) in try UserIdentity.resolve(user: user, group: policy.group) }
        if identity == nil, let group = policy.group {
            throw SpawnError(
                message: "security.group '\(group)' is set without security.user",
                fix: "set security.user as well (the group alone is not changed)",
                exitStatus: 125)
        }
        let namespace = policy.cgroupNamespace && canCreateCgroupNamespaces(capabilities ?? HostProbe.capabilities)
        // What the agent really gets (summaries and records show this, not the request).
        var policy = policy
        policy.cgroupNamespace = namespace
        let mountPoint = namespace && corral_statfs_type(cgroupMountPoint) == cgroup2Magic ? cgroupMountPoint : nil
        return Isolation(
            filter: filter, notifyFilter: notifyFilter, cgroupNamespace: namespace, cgroupMount: mountPoint,
            noNewPrivileges: policy.noNewPrivileges, identity: identity,
            keptCapabilities: identity.map { $0.uid == 0 } ?? (getuid() == 0) ? policy.capabilities.keptMask : nil,
            rlimits: policy.rlimits.sorted { $0.key < $1.key }.map { ($0.key.number, $0.value.soft, $0.value.hard) }, policy: policy)
    }

    /// What the groups' policies ask for that this process cannot give here.
    public static func limitations(for policies: [SecurityPolicy], capabilities: CapabilitySet?) -> [Limitation] {
        var result: [Limitation] = []
        if policies.contains(where: \.cgroupNamespace), !canCreateCgroupNamespaces(capabilities) {
            result.append(.cgroupNamespace(capabilities: capabilities))
        }
        if policies.contains(where: { $0.seccomp.filters }) {
            if !Seccomp.kernelSupportsFilters {
                result.append(.seccomp(filters: false, apiLevel: Seccomp.apiLevel))
            } else if !Seccomp.supportsNotification, policies.contains(where: { $0.seccomp.action == .errno }) {
                result.append(.seccomp(filters: true, apiLevel: Seccomp.apiLevel))
            }
        }
        return result
    }

    /// CGROUP2_SUPER_MAGIC.
    static let cgroup2Magic = 0x6367_7270

    /// The agent's environment: HOME, USER and LOGNAME of its user, and
    /// CORRAL_CGROUP, its cgroup directory as the agent sees it (`hostPath`,
    /// or the mount point when its own cgroup2 mount covers the host's).
    public func environment(_ base: [String], cgroup hostPath: String) -> [String] {
        var replaced: Set<String> = ["CORRAL_CGROUP"]
        var added = ["CORRAL_CGROUP=\(cgroupMount ?? hostPath)"]
        if let identity {
            replaced.formUnion(["HOME", "USER", "LOGNAME"])
            added += ["HOME=\(identity.home)", "USER=\(identity.name)", "LOGNAME=\(identity.name)"]
        }
        return base.filter { entry in !replaced.contains(String(entry.prefix { $0 != "=" })) } + added
    }
}

/// A user to run an agent as: ids, supplementary groups and home, from the
/// user database (getpwnam_r, getgrnam_r, getgrouplist).
public struct UserIdentity: Sendable, Equatable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    public var home: String

    /// Local users from /etc/passwd and /etc/group first (no NSS module is
    /// loaded: measured ≈ 30 ms per launch under emulation), others through NSS.
    public static func resolve(user: String, group: String?) throws(SpawnError) -> UserIdentity {
        if let passwd = try? readWholeFile(atPath: "/etc/passwd"), let local = UserDatabase.user(user, in: passwd) {
            let groups = (try? readWholeFile(atPath: "/etc/group")) ?? ""
            var identity = UserIdentity(name: local.name, uid: local.uid, gid: local.gid, groups: [], home: local.home)
            if let group {
                if let gid = UInt32(group) ?? UserDatabase.group(group, in: groups) {
                    identity.gid = gid
                } else {
                    identity.gid = try resolveGroup(group)
                }
            }
            identity.groups = UserDatabase.groups(of: local.name, primary: identity.gid, in: groups)
            return identity
        }
        return try resolveThroughNSS(user: user, group: group)
    }

    static func resolveThroughNSS(user: String, group: String?) throws(SpawnError) -> UserIdentity {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc: Int32
        if let uid = UInt32(user) {
            rc = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        } else {
            rc = getpwnam_r(user, &entry, &buffer, buffer.count, &result)
        }
        var identity: UserIdentity
        if rc == 0, result != nil {
            identity = UserIdentity(
                name: String(cString: entry.pw_name), uid: entry.pw_uid, gid: entry.pw_gid, groups: [],
                home: String(cString: entry.pw_dir))
        } else if let uid = UInt32(user) {
            // A numeric uid without an entry (as in many containers): its own group, home /.
            identity = UserIdentity(name: user, uid: uid, gid: uid, groups: [], home: "/")
        } else {
            throw SpawnError(
                message: "security.user '\(user)' does not exist on this host",
                fix: "create it (useradd --system \(user)), give a numeric uid, or change security.user", exitStatus: 125)
        }
        if let group {
            identity.gid = try resolveGroup(group)
        }
        identity.groups = supplementaryGroups(of: identity.name, primary: identity.gid, known: rc == 0 && result != nil)
        return identity
    }

    static func resolveGroup(_ group: String) throws(SpawnError) -> UInt32 {
        if let gid = UInt32(group) { return gid }
        var entry = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrnam_r(group, &entry, &buffer, buffer.count, &result) == 0, result != nil else {
            throw SpawnError(
                message: "security.group '\(group)' does not exist on this host",
                fix: "create it (groupadd --system \(group)), give a numeric gid, or remove security.group", exitStatus: 125)
        }
        return entry.gr_gid
    }

    /// The user's groups from the group database (just `primary` for a bare uid).
    static func supplementaryGroups(of name: String, primary: UInt32, known: Bool) -> [UInt32] {
        guard known else { return [primary] }
        var count: Int32 = 64
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var found = count
            if getgrouplist(name, primary, &groups, &found) >= 0 {
                return Array(groups.prefix(Int(found)))
            }
            guard found > count else { return [primary] }
            count = found
        }
    }
}
