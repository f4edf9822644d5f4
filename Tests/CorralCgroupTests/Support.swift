import CorralCgroup
import CorralCore
import CorralTestSupport
import Synchronization

/// Collects what an injected closure was called with.
final class Recorder<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])

    func append(_ item: Element) { items.withLock { $0.append(item) } }

    var all: [Element] { items.withLock { $0 } }
}

/// One call of the injected `signal` closure.
struct SentSignal: Equatable, Sendable {
    var pid: Int32
    var signal: Int32
    /// Whether the target cgroup reported `frozen 1` when the signal was sent.
    var whileFrozen: Bool
}

/// A `CgroupTree` on a fake filesystem, with recorded sleeps and signals.
struct Harness {
    static let root = CgroupPath(["corral"])
    static let group = root.appending("lightweight_agent")
    static let leaf = group.appending("crawler-1")

    let fs: FakeCgroupFilesystem
    let sleeps: Recorder<Duration>
    let signals: Recorder<SentSignal>
    let tree: CgroupTree

    /// `deadPIDs`: the signal closure fails (ESRCH) for these.
    init(
        fs: FakeCgroupFilesystem = FakeCgroupFilesystem(), root: CgroupPath = Harness.root,
        rootIsHierarchyRoot: Bool = false, deadPIDs: Set<Int32> = [], frozenProbe: CgroupPath = Harness.leaf
    ) {
        let sleeps = Recorder<Duration>()
        let signals = Recorder<SentSignal>()
        self.fs = fs
        self.sleeps = sleeps
        self.signals = signals
        tree = CgroupTree(
            fs: fs, root: root, rootIsHierarchyRoot: rootIsHierarchyRoot,
            sleep: { sleeps.append($0) },
            signal: { pid, signal in
                let frozen = fs.value(.events, at: frozenProbe).map { CgroupEvents(parsing: $0).frozen } ?? false
                signals.append(SentSignal(pid: pid, signal: signal, whileFrozen: frozen))
                return deadPIDs.contains(pid) ? -1 : 0
            })
    }

    /// A harness whose root and `lightweight_agent` group are already in
    /// place, with memory, cpu, pids and io enabled down to the agents.
    static func prepared(missingFiles: Set<CgroupFile> = [], deadPIDs: Set<Int32> = []) -> Harness {
        let fs = FakeCgroupFilesystem(missingFiles: missingFiles)
        let all: Set<String> = ["memory", "cpu", "pids", "io"]
        fs.seed(.anchor, subtreeControl: all)
        fs.seed(root, subtreeControl: all)
        fs.seed(group, subtreeControl: all)
        return Harness(fs: fs, deadPIDs: deadPIDs)
    }
}

extension CgroupError {
    /// The message, fix and path in one string, for `contains` checks.
    var everything: String { "\(message) | \(fix ?? "") | \(path)" }
}
