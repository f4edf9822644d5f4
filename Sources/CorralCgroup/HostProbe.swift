public import CorralCore
internal import CorralLinux

#if canImport(Glibc)
    internal import Glibc
#endif

/// Reads what the host offers: cgroup mode and controllers, capacity, kernel
/// features. Only reads; never mounts or changes anything.
public enum HostProbe {
    public static let mountPoint = "/sys/fs/cgroup"

    /// statfs type of `path`, `.missing` when it does not exist.
    public static func filesystem(at path: String) -> FilesystemKind {
        (try? filesystemType(atPath: path)).map(FilesystemKind.init(magic:)) ?? .missing
    }

    /// The facts `HostFacts` judges: mount types, v1-bound controllers, v2 root controllers.
    public static func facts(mountPoint: String = HostProbe.mountPoint) -> HostFacts {
        let mount = filesystem(at: mountPoint)
        let unified = filesystem(at: mountPoint + "/unified")
        var v1: Set<String> = []
        if let table = try? readWholeFile(atPath: "/proc/cgroups") {
            for line in table.split(separator: "\n") where !line.hasPrefix("#") {
                let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
                if fields.count >= 4, let hierarchy = Int(fields[1]), hierarchy != 0, fields[3] == "1" {
                    v1.insert(String(fields[0]))
                }
            }
        }
        let v2Root = mount == .cgroup2 ? mountPoint : (unified == .cgroup2 ? mountPoint + "/unified" : nil)
        let controllers = v2Root.flatMap { try? readWholeFile(atPath: $0 + "/cgroup.controllers") }.map(ControllerList.parse) ?? []
        return HostFacts(cgroupMount: mount, unifiedMount: unified, v1Controllers: v1, v2RootControllers: controllers)
    }

    /// What the agents may use all together at most: total memory, CPUs and
    /// pid_max of the host, each lowered to the tightest limit on this
    /// process's own cgroup v2 path (memory.max, cpu.max rounded up to whole
    /// CPUs, pids.max, from its cgroup up to the hierarchy root), so that in a
    /// container or a limited slice the reservation is a share of what is
    /// really there. Files that do not exist or cannot be read are skipped.
    /// Corral's own root is not counted: when this process lives in
    /// `<root>/supervisor`, the walk starts above `<root>`, whose limits are
    /// the reservation computed from this very capacity.
    public static func capacity() -> HostCapacity {
        capacity(
            files: .system, hierarchyRoot: v2Hierarchy(mountPoint: mountPoint),
            onlineCPUs: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// What a cgroup root at `rootPath` (absolute, e.g. /sys/fs/cgroup/corral)
    /// can hand out: the host, bounded by the limits of the root's ancestors
    /// (not the root's own, which are the reservation itself, nor those of
    /// whoever runs `corral run` — a login session's `TasksMax` is not the
    /// agents' business).
    public static func capacity(forRootAt rootPath: String) -> HostCapacity {
        capacity(
            files: .system, hierarchyRoot: v2Hierarchy(mountPoint: mountPoint),
            onlineCPUs: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), rootPath: rootPath)
    }

    /// The cgroup2 mount: `mountPoint` itself (unified), its `unified/` (hybrid), or nil.
    public static func v2Hierarchy(mountPoint: String) -> String? {
        if filesystem(at: mountPoint) == .cgroup2 { return mountPoint }
        if filesystem(at: mountPoint + "/unified") == .cgroup2 { return mountPoint + "/unified" }
        return nil
    }

    /// `capacity()` with its inputs given: files read through `files`
    /// (/proc/meminfo, /proc/sys/kernel/pid_max, /proc/self/cgroup and the
    /// cgroup files below `hierarchyRoot`).
    public static func capacity(files: HostFiles, hierarchyRoot: String?, onlineCPUs: Int, rootPath: String? = nil) -> HostCapacity {
        var memory: Int64 = 0
        if let meminfo = files.read("/proc/meminfo") {
            for line in meminfo.split(separator: "\n") where line.hasPrefix("MemTotal:") {
                let fields = line.split(separator: " ")
                if fields.count >= 2, let kib = Int64(fields[1]) { memory = kib * 1024 }
            }
        }
        var cpus = max(1, onlineCPUs)
        var pidMax = files.read("/proc/sys/kernel/pid_max").flatMap { Int64($0.trimmingSpaces()) } ?? 32768

        let directories =
            rootPath.map { ancestorDirectories(of: $0, hierarchyRoot: hierarchyRoot) }
            ?? limitDirectories(files: files, hierarchyRoot: hierarchyRoot)
        for directory in directories {
            if let limit = files.read(directory + "/memory.max").flatMap(CgroupValue.init(parsing:))?.value, limit > 0 {
                memory = memory > 0 ? min(memory, limit) : limit
            }
            if let cpuMax = files.read(directory + "/cpu.max").flatMap(CPUMax.init(parsing:)), let quota = cpuMax.quota {
                let whole = Int((Double(quota) / Double(cpuMax.period)).rounded(.up))
                cpus = min(cpus, max(1, whole))
            }
            if let limit = files.read(directory + "/pids.max").flatMap(CgroupValue.init(parsing:))?.value, limit > 0 {
                pidMax = min(pidMax, limit)
            }
        }
        return HostCapacity(memoryBytes: memory, cpus: cpus, pidMax: pidMax)
    }

    /// The directories whose limits bound this process: its cgroup and every
    /// ancestor up to and including the hierarchy root (inside a cgroup
    /// namespace the mount's top is the container's cgroup, with limits),
    /// starting above Corral's root when this process is in its supervisor/.
    static func limitDirectories(files: HostFiles, hierarchyRoot: String?) -> [String] {
        guard let hierarchyRoot, let own = files.read("/proc/self/cgroup").flatMap(ProcCgroup.unifiedPath) else { return [] }
        var components = own.split(separator: "/").map(String.init)
        // "/../.." outside the namespace's root, or anything odd: no walk.
        guard components.allSatisfy(CgroupPath.isSafeComponent) else { return [] }
        if let supervisor = components.lastIndex(of: CgroupTree.supervisorName), supervisor > 0 {
            components = Array(components[..<(supervisor - 1)])
        }
        var directories: [String] = []
        for count in stride(from: components.count, through: 0, by: -1) {
            let relative = components[..<count].joined(separator: "/")
            directories.append(relative.isEmpty ? hierarchyRoot : hierarchyRoot + "/" + relative)
        }
        return directories
    }

    /// The directories above the cgroup at `rootPath`, up to and including
    /// the hierarchy root; nothing when `rootPath` is not below it.
    static func ancestorDirectories(of rootPath: String, hierarchyRoot: String?) -> [String] {
        guard let hierarchyRoot, rootPath == hierarchyRoot || rootPath.hasPrefix(hierarchyRoot + "/") else { return [] }
        let components = rootPath.dropFirst(hierarchyRoot.count).split(separator: "/").map(String.init)
        guard components.allSatisfy(CgroupPath.isSafeComponent), !components.isEmpty else { return [] }
        var directories: [String] = []
        for count in stride(from: components.count - 1, through: 0, by: -1) {
            let relative = components[..<count].joined(separator: "/")
            directories.append(relative.isEmpty ? hierarchyRoot : hierarchyRoot + "/" + relative)
        }
        return directories
    }

    /// Whether the cgroup2 directory `path`, the top of its mount, is a cgroup below the
    /// hierarchy's root (a container's cgroup seen through a private cgroup namespace, or a
    /// subtree mounted on its own): the kernel shows `cgroup.type` in every cgroup but the root.
    public static func isNamespaceTop(_ path: String) -> Bool {
        access(path + "/cgroup.type", F_OK) == 0
    }

    /// The container this process runs in, as far as cgroups are concerned (see ContainerContext).
    public static func container(mountPoint: String = HostProbe.mountPoint) -> ContainerContext {
        var runtime: String?
        if getenv("KUBERNETES_SERVICE_HOST") != nil {
            runtime = "kubernetes"
        } else if access("/run/.containerenv", F_OK) == 0 {
            runtime = "podman"
        } else if access("/.dockerenv", F_OK) == 0 {
            runtime = "docker"
        } else if let value = getenv("container").map({ String(cString: $0) }), !value.isEmpty {
            runtime = value
        }
        var stats = statvfs()
        let readOnly = statvfs(mountPoint, &stats) == 0 && stats.f_flag & UInt(ST_RDONLY) != 0
        let namespaceTop = filesystem(at: mountPoint) == .cgroup2 && ownCgroup == "/" && isNamespaceTop(mountPoint)
        return ContainerContext(runtime: runtime, privateCgroupNamespace: namespaceTop, cgroupMountReadOnly: readOnly)
    }

    /// This process's effective capabilities (/proc/self/status), nil when unreadable.
    public static var capabilities: CapabilitySet? {
        (try? readWholeFile(atPath: "/proc/self/status")).flatMap(CapabilitySet.init(status:))
    }

    /// `uname -r`.
    public static var kernelRelease: String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// (major, minor) of the running kernel.
    public static var kernelVersion: (major: Int, minor: Int) {
        let parts = kernelRelease.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return (parts.first ?? 0, parts.count > 1 ? parts[1] : 0)
    }

    /// This process's cgroup v2 path (from /proc/self/cgroup), e.g. "/user.slice/…".
    public static var ownCgroup: String? {
        (try? readWholeFile(atPath: "/proc/self/cgroup")).flatMap(ProcCgroup.unifiedPath)
    }
}

/// Where Corral's root lives: an anchor directory that exists, and the root
/// below it (created on demand).
public struct CgroupRootLocation: Equatable, Sendable {
    /// The directory opened as the filesystem's anchor.
    public var anchor: String
    public var root: CgroupPath
    /// The root is the hierarchy root (the cgroup2 mount itself).
    public var isHierarchyRoot: Bool
    /// The full path of the root.
    public var rootPath: String

    public init(anchor: String, root: CgroupPath, isHierarchyRoot: Bool, rootPath: String) {
        self.anchor = anchor
        self.root = root
        self.isHierarchyRoot = isHierarchyRoot
        self.rootPath = rootPath
    }

    /// The default for `corral run` and `corral serve` outside systemd.
    public static let defaultRootPath = "/sys/fs/cgroup/corral"

    /// Resolves `path` (absolute). The root itself may not exist yet; its
    /// parent must be a cgroup2 directory. Errors name the path and the fix.
    public static func resolve(_ path: String, facts: HostFacts) throws(CgroupError) -> CgroupRootLocation {
        var normalized = path
        while normalized.count > 1 && normalized.hasSuffix("/") { normalized.removeLast() }
        guard normalized.hasPrefix("/") else {
            throw CgroupError(
                code: .invalidValue, operation: .open, path: path,
                message: "cgroup root '\(path)' is not an absolute path",
                fix: "give the full path, e.g. --cgroup-root \(defaultRootPath)")
        }
        let here = HostProbe.filesystem(at: normalized)
        let parentPath = normalized.split(separator: "/").dropLast().joined(separator: "/")
        let parent = "/" + parentPath
        let name = String(normalized.split(separator: "/").last ?? "")
        let parentKind = HostProbe.filesystem(at: parent)

        if here == .cgroup2 && parentKind != .cgroup2 {
            // The top of the mount is the hierarchy's root, exempt from the no-internal-process
            // rule, unless it is a container's cgroup seen through a private cgroup namespace.
            return CgroupRootLocation(
                anchor: normalized, root: .anchor, isHierarchyRoot: !HostProbe.isNamespaceTop(normalized), rootPath: normalized)
        }
        guard parentKind == .cgroup2 else {
            if let problem = facts.problems.first {
                throw CgroupError(
                    code: .hostUnsupported, operation: .open, path: normalized,
                    message: "cannot use \(normalized) as the cgroup root: " + problem.message, fix: problem.fix)
            }
            throw CgroupError(
                code: .hostUnsupported, operation: .open, path: normalized,
                message:
                    "cannot use \(normalized) as the cgroup root: its parent \(parent) is not in a cgroup v2 hierarchy (\(parentKind.rawValue))",
                fix: "choose a directory inside the cgroup2 mount, e.g. --cgroup-root \(defaultRootPath)")
        }
        guard CgroupPath.isSafeComponent(name) else {
            throw CgroupError(
                code: .invalidValue, operation: .open, path: normalized,
                message: "cgroup root '\(path)' does not end in a directory name",
                fix: "give a path like \(defaultRootPath)")
        }
        return CgroupRootLocation(anchor: parent, root: CgroupPath([name]), isHierarchyRoot: false, rootPath: normalized)
    }
}
