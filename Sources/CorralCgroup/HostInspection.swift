internal import CorralCore
internal import CorralLinux

#if canImport(Glibc)
    internal import Glibc
#endif

/// Read-only access to files by absolute path, for `corral doctor`'s checks;
/// injected so tests can point it at a temporary tree and pretend a file is
/// not writable (root passes every permission check on a real one).
public struct HostFiles: Sendable {
    public var exists: @Sendable (String) -> Bool
    /// Whether the effective user may write `path` (faccessat W_OK, AT_EACCESS):
    /// permission and read-only mounts, without opening or writing anything.
    public var isWritable: @Sendable (String) -> Bool
    public var read: @Sendable (String) -> String?
    /// Names of the subdirectories of `path`, sorted.
    public var directories: @Sendable (String) -> [String]
    /// Whether the cgroup at `path` carries Corral's creation mark.
    public var isMarkedCreatedByCorral: @Sendable (String) -> Bool

    public init(
        exists: @escaping @Sendable (String) -> Bool, isWritable: @escaping @Sendable (String) -> Bool,
        read: @escaping @Sendable (String) -> String?, directories: @escaping @Sendable (String) -> [String],
        isMarkedCreatedByCorral: @escaping @Sendable (String) -> Bool = DirectoryCgroupFilesystem.hasCreationMark(atPath:)
    ) {
        self.exists = exists
        self.isWritable = isWritable
        self.read = read
        self.directories = directories
        self.isMarkedCreatedByCorral = isMarkedCreatedByCorral
    }

    /// The real filesystem.
    public static let system = HostFiles(
        exists: { access($0, F_OK) == 0 },
        isWritable: { faccessat(AT_FDCWD, $0, W_OK, AT_EACCESS) == 0 },
        read: { try? readWholeFile(atPath: $0) },
        directories: { path in
            guard let dir = opendir(path) else { return [] }
            defer { closedir(dir) }
            var names: [String] = []
            while let entry = readdir(dir) {
                guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            return names.sorted()
        })
}

/// A kernel feature Corral uses, as found on this host.
public struct KernelFeature: Equatable, Codable, Sendable {
    public enum Availability: String, Codable, Sendable {
        /// Seen (a file exists), or expected from the kernel version where nothing can be looked at.
        case available
        /// Looked for where it must be, and not there.
        case absent
        /// Nowhere to look on this host: neither seen nor ruled out.
        case unchecked
    }

    /// How the answer was reached.
    public enum Basis: String, Codable, Sendable {
        /// A file was looked for (`evidence` names where).
        case file
        /// Only the kernel version: there is no side-effect-free probe.
        case kernelVersion = "kernel version"
    }

    /// "cgroup.kill", "memory.peak", …
    public var name: String
    public var availability: Availability
    public var basis: Basis
    /// What was found where, or why nothing could be looked at.
    public var evidence: String
    /// What Corral does without the feature.
    public var consequence: String

    public init(name: String, availability: Availability, basis: Basis, evidence: String, consequence: String) {
        self.name = name
        self.availability = availability
        self.basis = basis
        self.evidence = evidence
        self.consequence = consequence
    }
}

/// Finds which kernel features exist by looking for their files in the
/// cgroup v2 hierarchy; changes nothing.
public enum KernelFeatureProbe {
    /// At most this many cgroups are looked into.
    static let candidateLimit = 32

    /// The non-root cgroups to look in, best first: the configured root (when
    /// it exists inside the hierarchy), its children, this process's own
    /// cgroup, the hierarchy root's children.
    public static func candidates(
        hierarchyRoot: String, cgroupRoot: String?, ownCgroup: String?, files: HostFiles
    ) -> [String] {
        var result: [String] = []
        func add(_ path: String) {
            guard result.count < candidateLimit, path != hierarchyRoot, !result.contains(path), files.exists(path + "/cgroup.procs")
            else { return }
            result.append(path)
        }
        if let cgroupRoot, cgroupRoot.hasPrefix(hierarchyRoot + "/") {
            add(cgroupRoot)
            for child in files.directories(cgroupRoot) { add(cgroupRoot + "/" + child) }
        }
        if let ownCgroup, ownCgroup != "/" { add(hierarchyRoot + ownCgroup) }
        for child in files.directories(hierarchyRoot) { add(hierarchyRoot + "/" + child) }
        return result
    }

    /// Each feature `corral doctor` reports, decided from files in
    /// `hierarchyRoot` (the cgroup2 mount, nil when there is none) and
    /// `candidates` (non-root cgroups in it); clone3(CLONE_INTO_CGROUP) from
    /// `kernel` alone.
    public static func probe(
        hierarchyRoot: String?, candidates: [String], kernel: (major: Int, minor: Int), release: String,
        procPressure: String = "/proc/pressure/memory", files: HostFiles
    ) -> [KernelFeature] {
        func atLeast(_ major: Int, _ minor: Int) -> Bool { (kernel.major, kernel.minor) >= (major, minor) }
        let looked: String = {
            guard let first = candidates.first else { return "" }
            return candidates.count == 1 ? first : "\(first) and \(candidates.count - 1) other cgroup\(candidates.count == 2 ? "" : "s")"
        }()

        /// A core file every non-root cgroup has on kernels that know it.
        func coreFile(_ name: String, since: String, consequence: String) -> KernelFeature {
            if let found = candidates.first(where: { files.exists($0 + "/" + name) }) {
                return KernelFeature(
                    name: name, availability: .available, basis: .file, evidence: "\(found)/\(name) exists", consequence: consequence)
            }
            guard hierarchyRoot != nil, !candidates.isEmpty else {
                return KernelFeature(
                    name: name, availability: .unchecked, basis: .file,
                    evidence: hierarchyRoot.map {
                        "not checked: \($0) has no child cgroup to look in (\(name) exists only below the root; kernels since \(since) have it, this one is \(release))"
                    } ?? "not checked: no cgroup v2 hierarchy is mounted", consequence: consequence)
            }
            return KernelFeature(
                name: name, availability: .absent, basis: .file,
                evidence: "not in \(looked): the kernel (\(release)) predates it (\(since))", consequence: consequence)
        }

        /// A controller file that exists only where the controller is enabled.
        func controllerFile(_ name: String, controller: Controller, since: String, consequence: String) -> KernelFeature {
            let offered = hierarchyRoot.flatMap { files.read($0 + "/cgroup.controllers") }.map(ControllerList.parse) ?? []
            guard let hierarchyRoot, offered.contains(controller.rawValue) else {
                return KernelFeature(
                    name: name, availability: .absent, basis: .file,
                    evidence: hierarchyRoot.map {
                        "cgroup v2 has no \(controller.rawValue) controller here (\($0)/cgroup.controllers does not list it)"
                    } ?? "no cgroup v2 hierarchy is mounted", consequence: consequence)
            }
            let enabled = candidates.filter {
                files.read($0 + "/cgroup.controllers").map(ControllerList.parse)?.contains(controller.rawValue) == true
            }
            if let found = enabled.first(where: { files.exists($0 + "/" + name) }) {
                return KernelFeature(
                    name: name, availability: .available, basis: .file, evidence: "\(found)/\(name) exists", consequence: consequence)
            }
            if let first = enabled.first {
                return KernelFeature(
                    name: name, availability: .absent, basis: .file,
                    evidence:
                        "not in \(first)\(enabled.count > 1 ? " or \(enabled.count - 1) other cgroup\(enabled.count == 2 ? "" : "s")" : "") with the \(controller.rawValue) controller: the kernel (\(release)) predates it (\(since))",
                    consequence: consequence)
            }
            return KernelFeature(
                name: name, availability: .unchecked, basis: .file,
                evidence:
                    "not checked: no cgroup below \(hierarchyRoot) has the \(controller.rawValue) controller enabled to look in (kernels since \(since) have it, this one is \(release))",
                consequence: consequence)
        }

        func pressure() -> KernelFeature {
            let consequence = "the daemon arms no pressure triggers and sees memory trouble only through memory.events and sampling"
            let places = (hierarchyRoot.map { [$0] } ?? []) + candidates
            if let found = places.first(where: { files.exists($0 + "/memory.pressure") }) {
                return KernelFeature(
                    name: "PSI", availability: .available, basis: .file, evidence: "\(found)/memory.pressure exists",
                    consequence: consequence)
            }
            if files.exists(procPressure) {
                return KernelFeature(
                    name: "PSI", availability: .absent, basis: .file,
                    evidence:
                        "\(procPressure) exists but no cgroup here has memory.pressure (per-cgroup PSI is off: cgroup.pressure is 0, or the kernel lacks it)",
                    consequence: consequence)
            }
            return KernelFeature(
                name: "PSI", availability: .absent, basis: .file,
                evidence: "neither \(procPressure) nor a cgroup memory.pressure exists: boot with psi=1 (CONFIG_PSI)",
                consequence: consequence)
        }

        let clone3 = atLeast(5, 7)
        return [
            KernelFeature(
                name: "clone3 into cgroup", availability: clone3 ? .available : .absent, basis: .kernelVersion,
                evidence: clone3
                    ? "expected from the kernel version (\(release), 5.7+); not probed: the only test is to start a process in a cgroup"
                    : "the kernel (\(release)) predates 5.7", consequence: "agents join their cgroup through cgroup.procs before exec"),
            coreFile("cgroup.kill", since: "5.14", consequence: "kills freeze the cgroup and signal each process"),
            coreFile("cgroup.freeze", since: "5.2", consequence: "agents cannot be suspended, and kills signal without freezing"),
            controllerFile("memory.peak", controller: .memory, since: "5.19", consequence: "peak memory is sampled instead"),
            controllerFile("pids.peak", controller: .pids, since: "6.1", consequence: "the process peak is sampled instead"),
            pressure(),
        ]
    }
}

/// Whether Corral could prepare `location` as its root, judged from files
/// only (nothing is created, enabled or written).
public enum CgroupRootReadiness {
    /// One finding about the root.
    public struct Finding: Equatable, Codable, Sendable {
        public enum Status: String, Codable, Sendable { case ok, warning, failed }
        public var name: String
        public var status: Status
        public var detail: String
        public var fix: String?

        public init(name: String, status: Status, detail: String, fix: String? = nil) {
            self.name = name
            self.status = status
            self.detail = detail
            self.fix = fix
        }
    }

    static let delegateFix =
        "run as root, or point --cgroup-root at a cgroup delegated to you (systemd-run --user --scope -p Delegate=yes …)"

    /// Checks, in order: the root exists or its parent lets Corral create it;
    /// cgroup.procs and cgroup.subtree_control of the root (or, before it
    /// exists, of its parent) are writable; the required controllers reach
    /// the root or can be enabled in the parent; whether its limits are
    /// Corral's to write; the root has no processes of its own besides this one.
    public static func assess(_ location: CgroupRootLocation, selfPID: Int32?, files: HostFiles) -> [Finding] {
        var findings: [Finding] = []
        let root = location.rootPath
        let parent = location.isHierarchyRoot ? nil : location.anchor
        let exists = files.exists(root + "/cgroup.procs")

        // 1. The directory.
        if exists {
            findings.append(Finding(name: "cgroup root", status: .ok, detail: "\(root) exists"))
        } else if let parent {
            if files.isWritable(parent) {
                findings.append(Finding(name: "cgroup root", status: .ok, detail: "\(root) will be created in \(parent)"))
            } else {
                findings.append(
                    Finding(
                        name: "cgroup root", status: .failed,
                        detail: "\(root) does not exist and \(parent) is not writable, so it cannot be created",
                        fix: delegateFix))
            }
        }

        // 2. Write access to the files Corral writes at the root: it moves
        // itself through cgroup.procs and enables controllers through
        // cgroup.subtree_control. Before the root exists its parent's must do.
        let owner = exists ? root : (parent ?? root)
        let unwritable = ["cgroup.procs", "cgroup.subtree_control"].map { owner + "/" + $0 }.filter { !files.isWritable($0) }
        if unwritable.isEmpty {
            findings.append(
                Finding(name: "root write access", status: .ok, detail: "\(owner)/cgroup.procs and cgroup.subtree_control are writable"))
        } else {
            findings.append(
                Finding(
                    name: "root write access", status: .failed,
                    detail: "\(unwritable.joined(separator: " and ")) \(unwritable.count == 1 ? "is" : "are") not writable by this user",
                    fix: delegateFix))
        }

        // 3. Controllers: the root's cgroup.controllers is its parent's
        // cgroup.subtree_control; what is missing there must be enableable.
        let required = Controller.required.map(\.rawValue)
        let reaching = exists ? files.read(root + "/cgroup.controllers").map(ControllerList.parse) : nil
        let parentEnabled = parent.flatMap { files.read($0 + "/cgroup.subtree_control") }.map(ControllerList.parse)
        let present = reaching ?? parentEnabled ?? []
        let missing = required.filter { !present.contains($0) }
        if missing.isEmpty {
            findings.append(
                Finding(
                    name: "root controllers", status: .ok,
                    detail:
                        "\(required.joined(separator: ", ")) are enabled for \(root) in \(parent.map { $0 + "/cgroup.subtree_control" } ?? "the hierarchy root")"
                ))
        } else if let parent {
            let parentOffers = files.read(parent + "/cgroup.controllers").map(ControllerList.parse) ?? []
            let unavailable = missing.filter { !parentOffers.contains($0) }
            let parentProcesses = ProcessList.parse(files.read(parent + "/cgroup.procs") ?? "")
            let parentIsHierarchyRoot = !files.exists(parent + "/cgroup.events")
            let plus = missing.map { "+" + $0 }.joined(separator: " ")
            if !unavailable.isEmpty {
                findings.append(
                    Finding(
                        name: "root controllers", status: .failed,
                        detail:
                            "\(unavailable.joined(separator: ", ")) cannot reach \(root): \(parent)/cgroup.controllers does not list \(unavailable.count == 1 ? "it" : "them")",
                        fix:
                            "enable \(unavailable.map { "+" + $0 }.joined(separator: " ")) in the cgroup.subtree_control of every ancestor of \(root), or run Corral under a systemd unit with Delegate=yes"
                    ))
            } else if !files.isWritable(parent + "/cgroup.subtree_control") {
                findings.append(
                    Finding(
                        name: "root controllers", status: .failed,
                        detail:
                            "\(missing.joined(separator: ", ")) must be enabled in \(parent)/cgroup.subtree_control, which is not writable",
                        fix: "write '\(plus)' to \(parent)/cgroup.subtree_control as root, or " + delegateFix))
            } else if !parentIsHierarchyRoot && !parentProcesses.isEmpty {
                findings.append(
                    Finding(
                        name: "root controllers", status: .failed,
                        detail:
                            "\(missing.joined(separator: ", ")) must be enabled in \(parent)/cgroup.subtree_control, but \(parent) has processes of its own (\(parentProcesses.prefix(8).map(String.init).joined(separator: ", "))), which the no-internal-process rule forbids",
                        fix:
                            "move those processes into a child cgroup of \(parent), or choose a --cgroup-root whose parent has no processes"
                    ))
            } else {
                findings.append(
                    Finding(
                        name: "root controllers", status: .ok,
                        detail:
                            "\(missing.joined(separator: ", ")) not yet enabled for \(root): Corral will write '\(plus)' to \(parent)/cgroup.subtree_control"
                    ))
            }
        }

        // 4. Limits: Corral writes its system reservation only to a root of
        // its own (created by Corral, marked user.corral.created), and
        // removes only such a root once it is empty.
        if !location.isHierarchyRoot {
            if !exists {
                findings.append(
                    Finding(
                        name: "root limits", status: .ok,
                        detail:
                            "Corral will create \(root), mark it as its own and write the system reservation (memory.max, cpu.max, pids.max) to it; it removes the root again when no agent is left"
                    ))
            } else if files.isMarkedCreatedByCorral(root) {
                findings.append(
                    Finding(
                        name: "root limits", status: .ok,
                        detail:
                            "\(root) was created by Corral (\(DirectoryCgroupFilesystem.creationMark)): the system reservation is rewritten on each start, and the root is removed when no agent is left"
                    ))
            } else {
                let current = ["memory.max", "cpu.max", "pids.max"].compactMap { name in
                    files.read(root + "/" + name).map { "\(name) \($0.trimmingSpaces())" }
                }
                findings.append(
                    Finding(
                        name: "root limits", status: .warning,
                        detail:
                            "\(root) was not created by Corral: its limits\(current.isEmpty ? "" : " (\(current.joined(separator: ", ")))") are left as they are, Corral's system reservation is not written, and the directory is never removed",
                        fix:
                            "to have Corral apply the reservation, point --cgroup-root at a path that does not exist yet; or set the limits on \(root) yourself (for a systemd unit: MemoryMax=, CPUQuota=, TasksMax=)"
                    ))
            }
        }

        // 5. Processes in the root itself (the hierarchy root is exempt).
        if exists && !location.isHierarchyRoot {
            let processes = ProcessList.parse(files.read(root + "/cgroup.procs") ?? "")
            let others = processes.filter { $0 != selfPID }
            if !others.isEmpty {
                findings.append(
                    Finding(
                        name: "root processes", status: .failed,
                        detail:
                            "\(root) has processes of its own (\(others.prefix(8).map(String.init).joined(separator: ", "))\(others.count > 8 ? ", …" : "")), so cgroup v2 will not enable controllers for its children (the no-internal-process rule)",
                        fix: "move them into a child cgroup, or choose an empty --cgroup-root"))
            }
        }
        return findings
    }
}
