public import CorralCgroup
public import CorralCore
import Synchronization
public import SystemPackage

/// An in-memory cgroup v2 hierarchy that follows the kernel's rules closely
/// enough to test `CgroupTree`: interface files appear with the controllers
/// enabled in the parent, the no-internal-process rule, all-or-nothing
/// `cgroup.subtree_control`, validated limit files, freeze and kill. Any
/// operation can be made to fail with an injected errno; every error goes
/// through `CgroupError.explain`, as the real filesystem's do.
public final class FakeCgroupFilesystem: CgroupFilesystem {
    /// Every controller name the kernel knows, in the order it lists them.
    public static let kernelControllers = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"]

    /// One cgroup.
    public struct Node {
        var procs: [Int32] = []
        var subtreeControl: Set<String> = []
        var values: [CgroupFile: String] = [:]
        var freezeRequested = false
        var frozen = false
    }

    /// A failure to inject.
    struct Injection {
        var errno: Errno
        var operation: CgroupError.Operation
        /// nil: any path.
        var path: CgroupPath?
        /// nil: any file (or the directory itself).
        var file: CgroupFile?
        /// nil: always; otherwise how many more times.
        var remaining: Int?
    }

    /// What happened, in order.
    public enum Entry: Equatable, CustomStringConvertible {
        case mkdir(String)
        case rmdir(String)
        case write(String, CgroupFile, String)
        case failed(Errno, CgroupError.Operation, String, CgroupFile?)

        public var description: String {
            switch self {
            case .mkdir(let path): "mkdir \(path)"
            case .rmdir(let path): "rmdir \(path)"
            case .write(let path, let file, let value): "write \(path)/\(file.rawValue) '\(value)'"
            case .failed(let errno, let operation, let path, let file):
                "\(errno.name) \(operation.rawValue) \(path)\(file.map { "/" + $0.rawValue } ?? "")"
            }
        }
    }

    struct State {
        var nodes: [CgroupPath: Node] = [.anchor: Node()]
        var anchorIsHierarchyRoot: Bool
        /// The anchor's cgroup.controllers.
        var rootControllers: Set<String>
        /// Files this kernel does not have (cgroup.kill before 5.14, memory.peak before 5.19, …).
        var missingFiles: Set<CgroupFile>
        /// Whether writing 1 to cgroup.freeze ever reaches `frozen 1`.
        var freezeCompletes = true
        var injections: [Injection] = []
        var log: [Entry] = []
        /// PIDs removed by cgroup.kill.
        var killed: [Int32] = []
        var lockCount = 0
        var waits: [(CgroupPath, CgroupFile, Duration)] = []
    }

    public let anchorPath: String
    private let state: Mutex<State>

    public init(
        anchorPath: String = "/sys/fs/cgroup", anchorIsHierarchyRoot: Bool = true,
        rootControllers: Set<String> = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"],
        missingFiles: Set<CgroupFile> = []
    ) {
        self.anchorPath = anchorPath
        state = Mutex(
            State(anchorIsHierarchyRoot: anchorIsHierarchyRoot, rootControllers: rootControllers, missingFiles: missingFiles))
    }

    // MARK: Test set-up and inspection (bypass the kernel's rules)

    /// Creates `path` (and its missing ancestors) without logging or rules.
    public func seed(_ path: CgroupPath, procs: [Int32] = [], subtreeControl: Set<String> = []) {
        state.withLock { state in
            var prefix: [String] = []
            for name in path.components {
                prefix.append(name)
                let current = CgroupPath(prefix)
                if state.nodes[current] == nil { state.nodes[current] = Node() }
            }
            state.nodes[path]!.procs += procs
            state.nodes[path]!.subtreeControl.formUnion(subtreeControl)
        }
    }

    /// Sets a file's content (counters, or a limit) without validation.
    public func set(_ file: CgroupFile, _ value: String, at path: CgroupPath) {
        state.withLock { $0.nodes[path]!.values[file] = value }
    }

    public func inject(
        _ errno: Errno, on operation: CgroupError.Operation, path: CgroupPath? = nil, file: CgroupFile? = nil,
        times: Int? = 1
    ) {
        state.withLock {
            $0.injections.append(Injection(errno: errno, operation: operation, path: path, file: file, remaining: times))
        }
    }

    /// The kernel finishes a freeze that `freezeCompletes = false` left
    /// pending: cgroup.events says `frozen 1` from now on.
    public func completeFreeze(at path: CgroupPath) {
        state.withLock { state in
            if state.nodes[path]?.freezeRequested == true { state.nodes[path]!.frozen = true }
        }
    }

    public var freezeCompletes: Bool {
        get { state.withLock { $0.freezeCompletes } }
        set { state.withLock { $0.freezeCompletes = newValue } }
    }

    public var log: [Entry] { state.withLock { $0.log } }
    public var writes: [Entry] { log.filter { if case .write = $0 { true } else { false } } }
    public var killed: [Int32] { state.withLock { $0.killed } }
    public var lockCount: Int { state.withLock { $0.lockCount } }
    public var waitTimeouts: [Duration] { state.withLock { $0.waits.map(\.2) } }

    public func clearLog() { state.withLock { $0.log.removeAll() } }

    public func procs(_ path: CgroupPath) -> [Int32] { state.withLock { $0.nodes[path]?.procs ?? [] } }

    public func subtreeControl(_ path: CgroupPath) -> Set<String> { state.withLock { $0.nodes[path]?.subtreeControl ?? [] } }

    /// The file's content as a test would `cat` it, nil when absent.
    public func value(_ file: CgroupFile, at path: CgroupPath) -> String? {
        (try? state.withLock { state throws(CgroupError) in try state.content(file, path, anchorPath: anchorPath) })?
            .trimmingSpaces()
    }

    // MARK: CgroupFilesystem

    public func absolutePath(_ path: CgroupPath) -> String {
        path.components.isEmpty ? anchorPath : anchorPath + "/" + path.relative
    }

    public func exists(_ path: CgroupPath) throws(CgroupError) -> Bool {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.open, path, nil, anchorPath: anchorPath)
            return state.nodes[path] != nil
        }
    }

    public func makeDirectory(_ path: CgroupPath) throws(CgroupError) {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.makeDirectory, path, nil, anchorPath: anchorPath)
            guard let parent = path.parent, state.nodes[parent] != nil else {
                throw state.reject(.noSuchFileOrDirectory, .makeDirectory, path.parent ?? path, nil, anchorPath: anchorPath)
            }
            guard state.nodes[path] == nil else {
                throw state.reject(.fileExists, .makeDirectory, path, nil, anchorPath: anchorPath)
            }
            state.nodes[path] = Node()
            state.log.append(.mkdir(path.relative))
        }
    }

    public func removeDirectory(_ path: CgroupPath) throws(CgroupError) {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.removeDirectory, path, nil, anchorPath: anchorPath)
            guard path != .anchor else {
                throw CgroupError(
                    code: .notSupported, operation: .removeDirectory, path: anchorPath,
                    message: "refusing to remove the anchor \(anchorPath)")
            }
            guard let node = state.nodes[path] else {
                throw state.reject(.noSuchFileOrDirectory, .removeDirectory, path, nil, anchorPath: anchorPath)
            }
            guard node.procs.isEmpty, state.childNames(path).isEmpty else {
                throw state.reject(.resourceBusy, .removeDirectory, path, nil, anchorPath: anchorPath)
            }
            state.nodes[path] = nil
            state.log.append(.rmdir(path.relative))
        }
    }

    public func children(of path: CgroupPath) throws(CgroupError) -> [String] {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.list, path, nil, anchorPath: anchorPath)
            guard state.nodes[path] != nil else {
                throw state.fail(.noSuchFileOrDirectory, .list, path, nil, anchorPath: anchorPath)
            }
            return state.childNames(path)
        }
    }

    public func contains(_ file: CgroupFile, in path: CgroupPath) -> Bool {
        state.withLock { $0.has(file, path) }
    }

    public func read(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> String {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.read, path, file, anchorPath: anchorPath)
            return try state.content(file, path, anchorPath: anchorPath)
        }
    }

    public func write(_ value: String, to file: CgroupFile, of path: CgroupPath) throws(CgroupError) {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.write, path, file, value: value, anchorPath: anchorPath)
            if let errno = state.applyWrite(value, file, path) {
                throw state.reject(errno, .write, path, file, value: value, anchorPath: anchorPath)
            }
            state.log.append(.write(path.relative, file, value))
        }
    }

    /// Evaluates `condition` once: the fake's state only changes when the
    /// test or Corral changes it, so a condition that does not hold now
    /// would not hold before the timeout either.
    public func wait(
        for file: CgroupFile, of path: CgroupPath, timeout: Duration, until condition: (String) -> Bool
    ) throws(CgroupError) -> String? {
        let text = try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.wait, path, file, anchorPath: anchorPath)
            state.waits.append((path, file, timeout))
            return try state.content(file, path, anchorPath: anchorPath)
        }
        return condition(text) ? text : nil
    }

    public func openDirectory(_ path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.open, path, nil, anchorPath: anchorPath)
            guard state.nodes[path] != nil else {
                throw state.fail(.noSuchFileOrDirectory, .open, path, nil, anchorPath: anchorPath)
            }
        }
        return try Self.openNull(path: absolutePath(path))
    }

    public func openForWriting(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.open, path, file, anchorPath: anchorPath)
            guard state.has(file, path) else {
                throw state.fail(.noSuchFileOrDirectory, .open, path, file, anchorPath: anchorPath)
            }
        }
        return try Self.openNull(path: absolutePath(path))
    }

    public func lockTree() throws(CgroupError) -> TreeLock {
        try state.withLock { state throws(CgroupError) in
            try state.checkInjection(.lock, .anchor, nil, anchorPath: anchorPath)
            state.lockCount += 1
        }
        return TreeLock { [self] in self.state.withLock { $0.lockCount -= 1 } }
    }

    private static func openNull(path: String) throws(CgroupError) -> FileDescriptor {
        do {
            return try FileDescriptor.open("/dev/null", .readWrite, options: .closeOnExec)
        } catch {
            throw CgroupError.explain((error as? Errno) ?? .ioError, operation: .open, path: path, file: nil)
        }
    }
}

// MARK: The kernel's rules

extension FakeCgroupFilesystem.State {
    public func fail(
        _ errno: Errno, _ operation: CgroupError.Operation, _ path: CgroupPath, _ file: CgroupFile?,
        value: String? = nil, anchorPath: String
    ) -> CgroupError {
        let absolute = path.components.isEmpty ? anchorPath : anchorPath + "/" + path.relative
        return CgroupError.explain(errno, operation: operation, path: absolute, file: file, value: value)
    }

    mutating func checkInjection(
        _ operation: CgroupError.Operation, _ path: CgroupPath, _ file: CgroupFile?, value: String? = nil,
        anchorPath: String
    ) throws(CgroupError) {
        guard
            let index = injections.firstIndex(where: {
                $0.operation == operation && ($0.path == nil || $0.path == path) && ($0.file == nil || $0.file == file)
            })
        else { return }
        let errno = injections[index].errno
        if let remaining = injections[index].remaining {
            if remaining <= 1 { injections.remove(at: index) } else { injections[index].remaining = remaining - 1 }
        }
        throw reject(errno, operation, path, file, value: value, anchorPath: anchorPath)
    }

    /// `fail`, logged.
    mutating func reject(
        _ errno: Errno, _ operation: CgroupError.Operation, _ path: CgroupPath, _ file: CgroupFile?,
        value: String? = nil, anchorPath: String
    ) -> CgroupError {
        log.append(.failed(errno, operation, path.relative, file))
        return fail(errno, operation, path, file, value: value, anchorPath: anchorPath)
    }

    public func childNames(_ path: CgroupPath) -> [String] {
        nodes.keys.filter { $0.parent == path }.compactMap(\.name).sorted()
    }

    public func isHierarchyRoot(_ path: CgroupPath) -> Bool { path == .anchor && anchorIsHierarchyRoot }

    /// cgroup.controllers: the parent's subtree_control (the anchor's are configured).
    public func controllers(_ path: CgroupPath) -> Set<String> {
        guard let parent = path.parent else { return rootControllers }
        return nodes[parent]?.subtreeControl ?? []
    }

    public static func ordered(_ names: Set<String>) -> String {
        FakeCgroupFilesystem.kernelControllers.filter(names.contains).joined(separator: " ")
    }

    /// Whether the kernel shows `file` in `path`.
    public func has(_ file: CgroupFile, _ path: CgroupPath) -> Bool {
        guard nodes[path] != nil, !missingFiles.contains(file) else { return false }
        let root = isHierarchyRoot(path)
        switch file {
        case .controllers, .subtreeControl, .procs, .maxDepth, .maxDescendants, .cpuStat, .memoryPressure,
            .cpuPressure, .ioPressure:
            return true
        case .events, .freeze, .kill, .type:
            return !root
        case .memoryStat where root:
            return true
        default:
            guard !root, let controller = file.controller else { return false }
            return controllers(path).contains(controller.rawValue)
        }
    }

    public func subtreeProcs(_ path: CgroupPath) -> [Int32] {
        nodes.filter { $0.key == path || $0.key.components.starts(with: path.components) }.values.flatMap(\.procs)
    }

    public func content(_ file: CgroupFile, _ path: CgroupPath, anchorPath: String) throws(CgroupError) -> String {
        guard has(file, path), let node = nodes[path] else {
            throw fail(.noSuchFileOrDirectory, .read, path, file, anchorPath: anchorPath)
        }
        if let value = node.values[file] { return value + "\n" }
        let text: String
        switch file {
        case .controllers: text = Self.ordered(controllers(path))
        case .subtreeControl: text = Self.ordered(node.subtreeControl)
        case .procs: return node.procs.map { "\($0)\n" }.joined()
        case .events:
            // A frozen ancestor keeps its whole subtree frozen, as in the kernel.
            let frozen = nodes.contains { $0.value.frozen && path.components.starts(with: $0.key.components) }
            text = "populated \(subtreeProcs(path).isEmpty ? 0 : 1)\nfrozen \(frozen ? 1 : 0)"
        case .freeze: text = node.freezeRequested ? "1" : "0"
        case .kill: throw fail(.permissionDenied, .read, path, file, anchorPath: anchorPath)
        case .type: text = "domain"
        case .maxDepth, .maxDescendants, .memoryHigh, .memoryMax, .memorySwapMax, .pidsMax: text = "max"
        case .memoryOOMGroup, .cpuMaxBurst, .memoryCurrent, .memoryPeak, .memoryLow: text = "0"
        case .ioWeight: text = "default 100"
        case .cpuMax: text = "max 100000"
        case .cpuWeight: text = "100"
        case .memoryEvents, .memoryEventsLocal: text = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0"
        case .memoryStat: text = "anon 0\nfile 0\nkernel 0"
        case .cpuStat:
            text =
                "usage_usec 0\nuser_usec 0\nsystem_usec 0"
                + (controllers(path).contains("cpu")
                    ? "\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0" : "")
        case .pidsCurrent, .pidsPeak: text = String(subtreeProcs(path).count)
        case .pidsEvents: text = "max 0"
        case .memoryPressure, .cpuPressure, .ioPressure:
            text =
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0"
        case .ioMax: return ""
        }
        return text + "\n"
    }

    /// Applies a write as the kernel would; the errno it fails with, or nil.
    mutating func applyWrite(_ raw: String, _ file: CgroupFile, _ path: CgroupPath) -> Errno? {
        guard has(file, path) else { return .noSuchFileOrDirectory }
        let value = raw.trimmingSpaces()
        let root = isHierarchyRoot(path)
        switch file {
        case .subtreeControl:
            var enable: Set<String> = []
            var disable: Set<String> = []
            for token in value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) {
                guard let sign = token.first, sign == "+" || sign == "-" else { return .invalidArgument }
                let name = String(token.dropFirst())
                guard FakeCgroupFilesystem.kernelControllers.contains(name) else { return .invalidArgument }
                if sign == "+" { enable.insert(name) } else { disable.insert(name) }
            }
            let available = controllers(path)
            let newlyEnabled = enable.subtracting(nodes[path]!.subtreeControl)
            if !newlyEnabled.isSubset(of: available) { return .noSuchFileOrDirectory }
            if !newlyEnabled.isEmpty && !root && !nodes[path]!.procs.isEmpty { return .resourceBusy }
            let used = childNames(path).reduce(into: Set<String>()) { $0.formUnion(nodes[path.appending($1)]!.subtreeControl) }
            if !disable.isDisjoint(with: used) { return .resourceBusy }
            nodes[path]!.subtreeControl.formUnion(enable)
            nodes[path]!.subtreeControl.subtract(disable)

        case .procs:
            guard let pid = Int32(value), pid > 0 else { return .invalidArgument }
            if !root && !nodes[path]!.subtreeControl.isEmpty { return .resourceBusy }
            guard let from = nodes.first(where: { $0.value.procs.contains(pid) })?.key else { return .noSuchProcess }
            nodes[from]!.procs.removeAll { $0 == pid }
            nodes[path]!.procs.append(pid)

        case .freeze:
            guard value == "0" || value == "1" else { return .invalidArgument }
            nodes[path]!.freezeRequested = value == "1"
            if value == "0" || freezeCompletes { nodes[path]!.frozen = value == "1" }

        case .kill:
            guard value == "1" else { return .invalidArgument }
            for key in nodes.keys where key == path || key.components.starts(with: path.components) {
                killed += nodes[key]!.procs
                nodes[key]!.procs.removeAll()
            }

        case .memoryHigh, .memoryMax, .memorySwapMax, .pidsMax, .maxDepth, .maxDescendants:
            guard value == "max" || UInt64(value) != nil else { return .invalidArgument }
            if file == .pidsMax, let limit = Int64(value), limit > Int64(Int32.max) { return .invalidArgument }
            nodes[path]!.values[file] = value

        case .memoryOOMGroup:
            guard value == "0" || value == "1" else { return .invalidArgument }
            nodes[path]!.values[file] = value

        case .cpuMax:
            let fields = value.split(separator: " ")
            guard (1...2).contains(fields.count) else { return .invalidArgument }
            let period = fields.count == 2 ? Int64(fields[1]) : 100_000
            guard let period, (1000...1_000_000).contains(period) else { return .invalidArgument }
            let quota: Int64?
            if fields[0] == "max" {
                quota = nil
            } else if let parsed = Int64(fields[0]), parsed >= 1000 {
                quota = parsed
            } else {
                return .invalidArgument
            }
            let burst = Int64(nodes[path]!.values[.cpuMaxBurst] ?? "0") ?? 0
            if let quota, burst > quota { return .invalidArgument }
            nodes[path]!.values[file] = "\(quota.map(String.init) ?? "max") \(period)"

        case .cpuMaxBurst:
            guard let burst = Int64(value), burst >= 0 else { return .invalidArgument }
            let quota = (nodes[path]!.values[.cpuMax] ?? "max 100000").split(separator: " ").first.flatMap { Int64($0) }
            if let quota, burst > quota { return .invalidArgument }
            nodes[path]!.values[file] = value

        case .cpuWeight, .ioWeight:
            // io.weight also takes "default N" and "MAJ:MIN N"; Corral writes the bare default.
            guard let weight = Int(value), (1...10000).contains(weight) else { return .invalidArgument }
            nodes[path]!.values[file] = file == .ioWeight ? "default \(value)" : value

        case .memoryLow:
            guard value == "max" || UInt64(value) != nil else { return .invalidArgument }
            nodes[path]!.values[file] = value

        case .ioMax:
            guard !value.isEmpty else { return .invalidArgument }
            nodes[path]!.values[file] = value

        default:
            // A read-only file: kernfs refuses to open it for writing.
            return .permissionDenied
        }
        return nil
    }
}
