public import CorralCore
internal import CorralLinux
import Synchronization

#if canImport(Glibc)
    internal import Glibc
#endif

/// Corral's cgroup tree:
///
///     <root>/                 the directory Corral owns (--cgroup-root)
///       supervisor/           Corral itself, when it must leave <root>
///       <group>/              group totals
///         <agent>/            one agent: its limits, memory.oom.group=1
///
/// All cgroupfs I/O goes through `fs`; time passes only through `sleep`.
public struct CgroupTree: Sendable {
    public let fs: any CgroupFilesystem
    /// Corral's root below the filesystem's anchor (`.anchor` when they coincide).
    public let root: CgroupPath
    /// The root is the hierarchy's root cgroup: it has no limit files and is
    /// exempt from the no-internal-process rule.
    public let rootIsHierarchyRoot: Bool
    /// Whether this process created the root (shared by copies of the tree).
    private let ownership = RootOwnership()
    /// Sleeps between retries (injected so tests do not wait).
    public var sleep: @Sendable (Duration) -> Void
    /// Sends a signal to a pid (injected so tests do not signal real processes).
    public var signal: @Sendable (Int32, Int32) -> Int32

    public static let supervisorName = "supervisor"

    public init(
        fs: any CgroupFilesystem, root: CgroupPath, rootIsHierarchyRoot: Bool = false,
        sleep: @escaping @Sendable (Duration) -> Void = CgroupTree.realSleep,
        signal: @escaping @Sendable (Int32, Int32) -> Int32 = CgroupTree.realSignal
    ) {
        self.fs = fs
        self.root = root
        self.rootIsHierarchyRoot = rootIsHierarchyRoot
        self.sleep = sleep
        self.signal = signal
    }

    public static let realSleep: @Sendable (Duration) -> Void = { duration in
        var request = timespec(tv_sec: Int(duration.components.seconds), tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        // An interrupted sleep goes on for what remains of it.
        _ = retryOnInterrupt {
            let result = nanosleep(&request, &remaining)
            if result < 0 { request = remaining }
            return result
        }
    }

    public static let realSignal: @Sendable (Int32, Int32) -> Int32 = { pid, signal in Glibc.kill(pid, signal) }

    public func groupPath(_ group: String) -> CgroupPath { root.appending(group) }

    public func agentPath(group: String, agent: String) -> CgroupPath { root.appending(group).appending(agent) }

    public var supervisorPath: CgroupPath { root.appending(Self.supervisorName) }

    // MARK: Building the tree

    /// What `prepareRoot` did.
    public struct RootPreparation: Equatable, Sendable {
        public var createdRoot = false
        /// The root is Corral's own: created now, or carrying the mark of a
        /// Corral process that created it (see `ownsRoot`).
        public var rootIsCorrals = false
        public var movedSelfToSupervisor = false
        /// Keeper processes moved to `supervisor/` (see `prepareRoot`).
        public var movedKeepers: [Int32] = []
        /// Where this process and its keepers were moved: `<root>/supervisor`, or
        /// `<parent>/supervisor` when the root's parent is a container's cgroup that held them.
        public var supervisorPath: CgroupPath?
        public var enabledInParent: [Controller] = []
        public var enabledInRoot: [Controller] = []
        public var reservationApplied = false
        /// A reservation was asked for but the root is not Corral's: its own
        /// limits were left as they are.
        public var keptExistingLimits = false
        /// Optional controllers (io) that are not available here.
        public var unavailableOptional: [Controller] = []
    }

    /// Whether the root is Corral's to rewrite and remove: this process
    /// created it, or the Corral process that did marked it so
    /// (`markCreatedByCorral`). A directory the user or systemd made (an
    /// existing --cgroup-root, a `Delegate=yes` unit's cgroup) is not, and
    /// neither is the hierarchy root.
    public var ownsRoot: Bool {
        guard !root.components.isEmpty, !rootIsHierarchyRoot else { return false }
        return ownership.createdHere || fs.isMarkedCreatedByCorral(root)
    }

    /// Makes the root ready for groups: creates (and marks) it when missing,
    /// enables the required controllers (in the parent too, when the root
    /// does not have them), moves this process into `supervisor/` when it
    /// lives in the root (no-internal-process rule), and applies the system
    /// reservation — only to a root that is Corral's own (`ownsRoot`): the
    /// limits of a root someone else made are theirs, and stay.
    /// A root it created is removed again when a later step fails.
    @discardableResult
    /// `keeperPIDs`: other processes of Corral's own that may sit in the root
    /// (the keeper of a systemd scope); they move to `supervisor/` with this one.
    public func prepareRoot(selfPID: Int32?, keeperPIDs: [Int32] = [], reservation: CgroupSettings?) throws(CgroupError)
        -> RootPreparation
    {
        var report = RootPreparation()
        if !root.components.isEmpty, !rootIsHierarchyRoot, try !fs.exists(root) {
            do {
                try fs.makeDirectory(root)
                report.createdRoot = true
                ownership.createdHere = true
                // Without the mark (old kernel, no xattrs) only this process knows.
                try? fs.markCreatedByCorral(root)
            } catch  where error.code == .alreadyExists {}
        }
        report.rootIsCorrals = ownsRoot
        do {
            try prepareExistingRoot(selfPID: selfPID, keeperPIDs: keeperPIDs, reservation: reservation, report: &report)
        } catch {
            // A root created here is still empty: do not leave it behind.
            if report.createdRoot, (try? fs.removeDirectory(root)) != nil { ownership.createdHere = false }
            throw error
        }
        return report
    }

    private func prepareExistingRoot(
        selfPID: Int32?, keeperPIDs: [Int32], reservation: CgroupSettings?, report: inout RootPreparation
    ) throws(CgroupError) {
        var available = try controllers(available: root)
        let requiredMissing = Controller.required.filter { !available.contains($0) }
        if !requiredMissing.isEmpty, let parent = root.parent {
            let parentAvailable = try controllers(available: parent)
            let missingInParent = requiredMissing.filter { !parentAvailable.contains($0) }
            guard missingInParent.isEmpty else {
                throw CgroupError(
                    code: .controllerUnavailable, operation: .write, path: fs.absolutePath(parent),
                    message:
                        "the \(missingInParent.map(\.rawValue).joined(separator: ", ")) controller\(missingInParent.count == 1 ? " is" : "s are") not available to \(fs.absolutePath(root)): \(fs.absolutePath(parent))/cgroup.controllers does not list \(missingInParent.count == 1 ? "it" : "them")",
                    fix:
                        "enable \(missingInParent.map { "+" + $0.rawValue }.joined(separator: " ")) in the cgroup.subtree_control of every ancestor of \(fs.absolutePath(root)), or run Corral under a systemd unit with Delegate=yes"
                )
            }
            do {
                report.enabledInParent = try enable(requiredMissing, in: parent)
            } catch  where error.code == .internalProcesses {
                // A container's cgroup (the top of a private cgroup namespace) holds its
                // init process, this daemon: leave it for `<parent>/supervisor`, a sibling
                // of the root, as crun's run.oci.delegate-cgroup would have started it.
                let ours = Set(keeperPIDs + (selfPID.map { [$0] } ?? []))
                let processes = ProcessList.parse(try fs.read(.procs, of: parent))
                guard !processes.isEmpty, processes.allSatisfy(ours.contains) else { throw error }
                let supervisor = parent.appending(Self.supervisorName)
                if try !fs.exists(supervisor) {
                    do { try fs.makeDirectory(supervisor) } catch  where error.code == .alreadyExists {}
                }
                for pid in processes { try fs.write(String(pid), to: .procs, of: supervisor) }
                report.movedSelfToSupervisor = processes.contains { $0 == selfPID }
                report.movedKeepers = processes.filter { $0 != selfPID }
                report.supervisorPath = supervisor
                report.enabledInParent = try enable(requiredMissing, in: parent)
            }
            available = try controllers(available: root)
        }

        if !rootIsHierarchyRoot {
            let processes = ProcessList.parse(try fs.read(.procs, of: root))
            if !processes.isEmpty {
                let ours = Set(keeperPIDs + (selfPID.map { [$0] } ?? []))
                let others = processes.filter { !ours.contains($0) }
                guard others.isEmpty else {
                    throw CgroupError(
                        code: .internalProcesses, operation: .write, path: fs.absolutePath(root),
                        message:
                            "\(fs.absolutePath(root)) has processes of its own (\(others.prefix(8).map(String.init).joined(separator: ", "))\(others.count > 8 ? ", …" : "")), so cgroup v2 will not enable controllers for its children (the no-internal-process rule)",
                        fix: "move them into a child cgroup, or choose an empty --cgroup-root")
                }
                let moving = processes.filter { ours.contains($0) }
                if !moving.isEmpty {
                    if try !fs.exists(supervisorPath) {
                        do { try fs.makeDirectory(supervisorPath) } catch  where error.code == .alreadyExists {}
                    }
                    for pid in moving { try fs.write(String(pid), to: .procs, of: supervisorPath) }
                    report.supervisorPath = supervisorPath
                    report.movedSelfToSupervisor = moving.contains { $0 == selfPID }
                    report.movedKeepers = moving.filter { $0 != selfPID }
                }
            }
        }

        var wanted = Controller.required
        if available.contains(.io) { wanted.append(.io) } else { report.unavailableOptional.append(.io) }
        report.enabledInRoot = try enable(wanted, in: root)

        if let reservation, !rootIsHierarchyRoot {
            if report.rootIsCorrals {
                try apply(reservation, to: root)
                report.reservationApplied = true
            } else {
                report.keptExistingLimits = true
            }
        }
    }

    /// The root's own memory.max, cpu.max and pids.max (the system reservation, or the limits
    /// of a container's cgroup); none for the hierarchy root, which has no such files.
    public func rootLimits() throws(CgroupError) -> CgroupSettings {
        var limits = CgroupSettings()
        guard !rootIsHierarchyRoot else { return limits }
        func read(_ file: CgroupFile) throws(CgroupError) -> String? {
            do { return try fs.read(file, of: root) } catch  where error.code == .notFound || error.code == .controllerUnavailable {
                return nil
            }
        }
        limits.memoryMax = try read(.memoryMax).flatMap(CgroupValue.init(parsing:))
        limits.cpuMax = try read(.cpuMax).flatMap(CPUMax.init(parsing:))
        limits.pidsMax = try read(.pidsMax).flatMap(CgroupValue.init(parsing:))
        return limits
    }

    /// Creates `<root>/<group>` when missing, enables the controllers its
    /// agents need and writes the group totals. Returns whether it was created.
    @discardableResult
    public func prepareGroup(_ group: QuotaGroup) throws(CgroupError) -> Bool {
        let path = groupPath(group.name)
        var created = false
        if try !fs.exists(path) {
            do {
                try fs.makeDirectory(path)
                created = true
            } catch  where error.code == .alreadyExists {}
        }
        do {
            var wanted = Controller.required
            if try controllers(available: path).contains(.io) { wanted.append(.io) }
            try enable(wanted, in: path)
            try apply(group.totalsSettings.clamped(to: rootLimits()), to: path)
        } catch {
            if created { try? fs.removeDirectory(path) }
            throw error
        }
        return created
    }

    /// Creates the agent's leaf and writes its limits. Fails with
    /// `.alreadyExists` when the agent id is taken; removes the leaf again
    /// when a limit cannot be written, so nothing is half-applied.
    @discardableResult
    public func createAgent(_ agent: String, in group: String, settings: CgroupSettings) throws(CgroupError) -> CgroupPath {
        let path = agentPath(group: group, agent: agent)
        try fs.makeDirectory(path)
        do {
            try apply(settings, to: path)
        } catch {
            try? fs.removeDirectory(path)
            throw error
        }
        return path
    }

    /// Writes `settings` to `path` in a safe order. io.weight is skipped where the
    /// io controller is not enabled (it is optional: not every host delegates it).
    public func apply(_ settings: CgroupSettings, to path: CgroupPath) throws(CgroupError) {
        for write in settings.writes {
            do {
                try fs.write(write.value, to: write.file, of: path)
            } catch  where write.file == .ioWeight && (error.code == .notFound || error.code == .controllerUnavailable) {
                continue
            }
        }
    }

    /// Controllers listed in `path`'s cgroup.controllers that Corral knows.
    public func controllers(available path: CgroupPath) throws(CgroupError) -> Set<Controller> {
        Set(ControllerList.parse(try fs.read(.controllers, of: path)).compactMap(Controller.init(rawValue:)))
    }

    /// Enables the controllers of `wanted` that are not yet in `path`'s
    /// cgroup.subtree_control, in one write (the kernel applies it all or nothing).
    @discardableResult
    public func enable(_ wanted: [Controller], in path: CgroupPath) throws(CgroupError) -> [Controller] {
        let enabled = ControllerList.parse(try fs.read(.subtreeControl, of: path))
        let missing = wanted.filter { !enabled.contains($0.rawValue) }
        guard !missing.isEmpty else { return [] }
        try fs.write(missing.map { "+" + $0.rawValue }.joined(separator: " "), to: .subtreeControl, of: path)
        return missing
    }

    // MARK: Reading

    /// Reads usage, the memory.stat breakdown and event counters of `path`;
    /// files a kernel (or a disabled controller) lacks are nil.
    public func sample(_ path: CgroupPath) throws(CgroupError) -> CgroupSample {
        func optional(_ file: CgroupFile) throws(CgroupError) -> String? {
            do { return try fs.read(file, of: path) } catch  where error.code == .notFound || error.code == .controllerUnavailable {
                return nil
            }
        }
        var sample = CgroupSample()
        sample.memoryCurrent = try optional(.memoryCurrent).flatMap(CgroupCounter.parse)
        sample.memoryPeak = try optional(.memoryPeak).flatMap(CgroupCounter.parse)
        sample.memoryEvents = try optional(.memoryEvents).map(MemoryEvents.init(parsing:)) ?? MemoryEvents()
        sample.memoryStat = try optional(.memoryStat).map(MemoryStat.init(parsing:))
        sample.cpu = try optional(.cpuStat).map(CPUStat.init(parsing:)) ?? CPUStat()
        sample.pidsCurrent = try optional(.pidsCurrent).flatMap(CgroupCounter.parse)
        sample.pidsPeak = try optional(.pidsPeak).flatMap(CgroupCounter.parse)
        sample.pidsEvents = try optional(.pidsEvents).map(PidsEvents.init(parsing:)) ?? PidsEvents()
        sample.events = CgroupEvents(parsing: try fs.read(.events, of: path))
        sample.inactiveFile = sample.memoryStat?["inactive_file"]
        sample.pressure = try Self.pressureTotals { file throws(CgroupError) in try optional(file) }
        return sample
    }

    /// What a run's summary reads of its cgroup once the command has ended: the kernel's
    /// peaks, events and CPU time, 5 files where `sample` reads 12 (each an open, a read and a
    /// close on the way out of every `corral run`). Without the peak files (kernels before
    /// 5.19), the whole `sample`, whose current values estimate them.
    public func finalSample(_ path: CgroupPath) throws(CgroupError) -> CgroupSample {
        func optional(_ file: CgroupFile) throws(CgroupError) -> String? {
            do { return try fs.read(file, of: path) } catch  where error.code == .notFound || error.code == .controllerUnavailable {
                return nil
            }
        }
        var sample = CgroupSample()
        guard let memoryPeak = try optional(.memoryPeak).flatMap(CgroupCounter.parse),
            let pidsPeak = try optional(.pidsPeak).flatMap(CgroupCounter.parse)
        else { return try self.sample(path) }
        sample.memoryPeak = memoryPeak
        sample.pidsPeak = pidsPeak
        sample.memoryEvents = try optional(.memoryEvents).map(MemoryEvents.init(parsing:)) ?? MemoryEvents()
        sample.cpu = try optional(.cpuStat).map(CPUStat.init(parsing:)) ?? CPUStat()
        sample.pidsEvents = try optional(.pidsEvents).map(PidsEvents.init(parsing:)) ?? PidsEvents()
        return sample
    }

    /// The three PSI files' totals, read through `read` (nil for a file that is absent).
    public static func pressureTotals(_ read: (CgroupFile) throws(CgroupError) -> String?) throws(CgroupError) -> PressureTotals? {
        let cpu = try read(.cpuPressure).map(PressureTotals.totals(parsing:))
        let memory = try read(.memoryPressure).map(PressureTotals.totals(parsing:))
        let io = try read(.ioPressure).map(PressureTotals.totals(parsing:))
        guard cpu != nil || memory != nil || io != nil else { return nil }
        return PressureTotals(
            cpuSome: cpu?.some, cpuFull: cpu?.full, memorySome: memory?.some, memoryFull: memory?.full, ioSome: io?.some, ioFull: io?.full)
    }

    // MARK: Acting on a cgroup

    /// Freezes `path` and waits until cgroup.events says `frozen 1`. On
    /// timeout the freeze is rolled back (thawed) and `.timedOut` thrown, so
    /// an agent is never left half-frozen. Returns how long confirmation took.
    @discardableResult
    public func freeze(_ path: CgroupPath, timeout: Duration = .seconds(2)) throws(CgroupError) -> Duration {
        let start = ContinuousClock.now
        try fs.write("1", to: .freeze, of: path)
        let frozen: String?
        do {
            frozen = try fs.wait(for: .events, of: path, timeout: timeout) { CgroupEvents(parsing: $0).frozen }
        } catch {
            try? fs.write("0", to: .freeze, of: path)
            throw error
        }
        guard frozen != nil else {
            try? fs.write("0", to: .freeze, of: path)
            throw freezeTimedOut(path, after: timeout)
        }
        return ContinuousClock.now - start
    }

    /// Writes `cgroup.freeze` 1 and says whether `cgroup.events` reports
    /// `frozen 1` already, without waiting: the kernel freezes each task on
    /// its way back to user space, so the confirmation may come later, with
    /// the next change of cgroup.events (for callers that must not block).
    public func requestFreeze(_ path: CgroupPath) throws(CgroupError) -> Bool {
        try fs.write("1", to: .freeze, of: path)
        return try isFrozen(path)
    }

    /// Whether `cgroup.events` reports `frozen 1`.
    public func isFrozen(_ path: CgroupPath) throws(CgroupError) -> Bool {
        CgroupEvents(parsing: try fs.read(.events, of: path)).frozen
    }

    /// Rolls back a freeze that was not confirmed in time (`cgroup.freeze` 0).
    public func cancelFreeze(_ path: CgroupPath) throws(CgroupError) {
        try fs.write("0", to: .freeze, of: path)
    }

    /// What a freeze not confirmed within `timeout` (and rolled back) is.
    public func freezeTimedOut(_ path: CgroupPath, after timeout: Duration) -> CgroupError {
        CgroupError(
            code: .timedOut, operation: .wait, path: fs.absolutePath(path) + "/cgroup.events",
            message:
                "\(fs.absolutePath(path)) did not report 'frozen 1' within \(Quantity.formatDuration(timeout)) (a task may be stuck in the kernel); the freeze was rolled back",
            fix: "retry later, or use kill instead of suspend")
    }

    /// Thaws `path` without waiting: writing `cgroup.freeze` 0 clears the
    /// cgroup's frozen state within the write itself (the kernel drops
    /// `frozen` as soon as the cgroup no longer asks to be frozen; the tasks
    /// wake on their own), so `cgroup.events` says `frozen 0` when the write
    /// returns. If it still says `frozen 1`, an ancestor's `cgroup.freeze`
    /// holds it and no wait would change that: the thaw is reported as failed.
    public func thaw(_ path: CgroupPath) throws(CgroupError) {
        try fs.write("0", to: .freeze, of: path)
        guard try isFrozen(path) else { return }
        throw CgroupError(
            code: .busy, operation: .write, path: fs.absolutePath(path) + "/cgroup.freeze", value: "0",
            message: "\(fs.absolutePath(path)) still reports 'frozen 1' after writing 0 to its cgroup.freeze: a parent cgroup is frozen",
            fix: "find the frozen ancestor (grep -l 1 on cgroup.freeze above \(fs.absolutePath(path))) and write 0 to it, or kill the agent"
        )
    }

    /// How `kill` ended the processes.
    public enum KillMethod: Equatable, Sendable {
        /// `cgroup.kill` (5.14+): SIGKILL to the whole subtree, race-free against forks.
        case cgroupKill
        /// Older kernels or threaded cgroups: freeze, SIGKILL every pid, thaw.
        case freezeAndSignal(processes: Int)
    }

    /// SIGKILLs every process in `path` and below. Without `cgroup.kill`:
    /// freezes (when the kernel can), signals every pid, and thaws again,
    /// also when listing the pids fails.
    @discardableResult
    public func kill(_ path: CgroupPath) throws(CgroupError) -> KillMethod {
        if fs.contains(.kill, in: path) {
            do {
                try fs.write("1", to: .kill, of: path)
                return .cgroupKill
            } catch  where error.code == .notSupported {
                // Threaded cgroup: fall through to the signal loop.
            }
        }
        var frozen = false
        do {
            try freeze(path)
            frozen = true
        } catch {
            // Freezing only keeps the pids from forking while they are
            // signalled: when it times out (already rolled back) or the
            // kernel has no cgroup.freeze (before 5.2), signal anyway.
        }
        defer { if frozen { try? fs.write("0", to: .freeze, of: path) } }
        var count = 0
        // Newest first (children before the parents that forked them): when
        // the freeze did not hold, a parent killed first lets its supervisor
        // (corral run) kill the rest before this loop reaches them.
        for pid in try allProcesses(path).reversed() where signal(pid, SIGKILL) == 0 {
            count += 1
        }
        return .freezeAndSignal(processes: count)
    }

    /// PIDs in `path` and all its descendants.
    public func allProcesses(_ path: CgroupPath) throws(CgroupError) -> [Int32] {
        var pids = ProcessList.parse(try fs.read(.procs, of: path))
        for child in try fs.children(of: path) where CgroupPath.isSafeComponent(child) {
            pids += try allProcesses(path.appending(child))
        }
        return pids
    }

    /// Waits until `path` has no live process (cgroup.events `populated 0`).
    public func waitUntilEmpty(_ path: CgroupPath, timeout: Duration) throws(CgroupError) -> Bool {
        do {
            return try fs.wait(for: .events, of: path, timeout: timeout) { !CgroupEvents(parsing: $0).populated } != nil
        } catch  where error.code == .removed || error.code == .notFound {
            // Removed meanwhile (by whoever supervises it): only an empty cgroup can be removed.
            return true
        }
    }

    /// Removes `path`, retrying while the kernel still reports it busy (dying
    /// tasks): `removeAttempts` tries, 1 ms doubling, as runc does. Missing counts
    /// as removed. `attempts: 1` tries once and throws `busy`.
    public func remove(_ path: CgroupPath, attempts: Int = CgroupTree.removeAttempts) throws(CgroupError) {
        var delay = Duration.milliseconds(1)
        for attempt in 1...max(1, attempts) {
            if try removeOnce(path, last: attempt >= attempts) { return }
            sleep(delay)
            delay *= 2
        }
    }

    /// `remove` for async callers: the same retries, asleep without holding a thread.
    /// Cancelled, it tries once more and throws `busy` if it still is.
    public func removeWithoutBlocking(_ path: CgroupPath, attempts: Int = CgroupTree.removeAttempts) async throws(CgroupError) {
        var delay = Duration.milliseconds(1)
        for attempt in 1...max(1, attempts) {
            if try removeOnce(path, last: attempt >= attempts) { return }
            if (try? await Task.sleep(for: delay)) == nil {
                _ = try removeOnce(path, last: true)
                return
            }
            delay *= 2
        }
    }

    /// One try of `remove`: true when removed (or gone already), false when busy
    /// and another try may follow; the error otherwise (busy too, on the last try).
    private func removeOnce(_ path: CgroupPath, last: Bool) throws(CgroupError) -> Bool {
        do {
            try fs.removeDirectory(path)
            return true
        } catch  where error.code == .notFound {
            return true
        } catch  where error.code == .busy && !last {
            return false
        }
    }

    /// Tries of `remove` while a cgroup is busy (runc's figure).
    public static let removeAttempts = 10

    /// Removes the root when it is Corral's own (`ownsRoot`) and has no
    /// child cgroup left; a root someone else made is never removed. Call it
    /// holding the tree lock. Returns whether the root is gone.
    @discardableResult
    public func removeRootIfUnused() -> Bool {
        guard ownsRoot, (try? fs.children(of: root))?.isEmpty == true else { return false }
        guard removeIfUnused(root) else { return false }
        ownership.createdHere = false
        return true
    }

    /// Removes `path` if nothing lives in it any more; false when it is in use.
    @discardableResult
    public func removeIfUnused(_ path: CgroupPath) -> Bool {
        do {
            try fs.removeDirectory(path)
            return true
        } catch {
            return error.code == .notFound
        }
    }
}

/// Whether this process created the tree's root; a class so that copies of
/// a `CgroupTree` (the runner's, the daemon's) share what one of them did.
final class RootOwnership: Sendable {
    private let created = Mutex(false)

    var createdHere: Bool {
        get { created.withLock { $0 } }
        set { created.withLock { $0 = newValue } }
    }
}
