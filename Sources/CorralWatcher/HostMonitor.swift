public import CorralCgroup
public import CorralCore
internal import CorralLinux
internal import CorralThreads
internal import Synchronization
public import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// Watches Corral's root as a whole for the host ladder: memory.current
/// against the allocatable and the root's memory, cpu and io PSI, read every
/// `interval` and at once when a PSI trigger on the root's memory.pressure
/// fires (events first, sampling second). Each reading goes to `report` on
/// the monitor's thread ("corral-host").
///
/// Ownership: the thread owns the trigger descriptor; `wake` (an eventfd)
/// and `thread` are written before the thread starts and by `stop`, under
/// `state`'s lock.
public final class HostMonitor: Sendable {
    public typealias Report = @Sendable (HostReading) -> Void

    private struct State {
        var thread: OSThread.Joinable?
        var stopping = false
        /// How the root's pressure reaches the monitor: a trigger, or sampling alone (and why).
        var triggerStatus = "not started"
    }

    private let fs: any CgroupFilesystem
    private let root: CgroupPath
    private let rootIsHierarchyRoot: Bool
    private let interval: Duration
    private let threshold: PressureThreshold?
    private let allocatable: @Sendable () -> Double
    private let clock: @Sendable () -> Timestamp
    private let report: Report
    private let wake: FileDescriptor
    private let state = Mutex(State())

    /// `allocatable`: the memory all agents together may have, in bytes (asked at every reading).
    public init(
        fs: any CgroupFilesystem, root: CgroupPath, rootIsHierarchyRoot: Bool, interval: Duration,
        threshold: PressureThreshold? = .standard, allocatable: @escaping @Sendable () -> Double,
        clock: @escaping @Sendable () -> Timestamp, report: @escaping Report
    ) throws(Errno) {
        self.fs = fs
        self.root = root
        self.rootIsHierarchyRoot = rootIsHierarchyRoot
        self.interval = interval
        self.threshold = threshold
        self.allocatable = allocatable
        self.clock = clock
        self.report = report
        wake = try WakeEvent.open()
    }

    deinit { try? wake.close() }

    /// "PSI trigger on …/memory.pressure (some 150000 1000000)", or why there is none.
    public var triggerStatus: String { state.withLock { $0.triggerStatus } }

    /// One reading now (nil when the root cannot be read).
    public func read() -> HostReading? {
        func pressure(_ file: CgroupFile) -> Pressure? {
            (try? fs.read(file, of: root)).flatMap(Pressure.init(parsing:))
        }
        var used: Double?
        // The working set, as cAdvisor counts it: memory.current less inactive file pages (reclaimable
        // cache would otherwise count as shortage). MemTotal − MemAvailable at the hierarchy root.
        if !rootIsHierarchyRoot, let text = try? fs.read(.memoryCurrent, of: root), let current = CgroupCounter.parse(text) {
            let inactive = (try? fs.read(.memoryStat, of: root)).flatMap { MemoryStat(parsing: $0)["inactive_file"] } ?? 0
            used = Double(max(0, current - inactive))
        }
        if used == nil { used = Self.hostMemoryInUse() }
        guard let used else { return nil }
        return HostReading(
            at: clock(), memoryUsed: used, memoryAllocatable: allocatable(), memory: pressure(.memoryPressure), cpu: pressure(.cpuPressure),
            io: pressure(.ioPressure))
    }

    /// MemTotal − MemAvailable from /proc/meminfo (the hierarchy root has no memory.current).
    static func hostMemoryInUse() -> Double? {
        guard let text = try? readWholeFile(atPath: "/proc/meminfo", maximumBytes: 1 << 16) else { return nil }
        var fields: [Substring: Double] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kib = Double(parts[1]) { fields[parts[0]] = kib * 1024 }
        }
        guard let total = fields["MemTotal:"], let available = fields["MemAvailable:"] else { return nil }
        return total - available
    }

    public func start() {
        state.withLock { state in
            guard state.thread == nil, !state.stopping else { return }
            do {
                state.thread = try OSThread.startJoinable(name: "corral-host") { [self] in run() }
            } catch {
                preconditionFailure("cannot start the host monitor thread: pthread_create failed: \(error)")
            }
        }
    }

    /// Ends the thread and waits for it (unless called on it, from `report`:
    /// it then ends after this reading); idempotent.
    public func stop() {
        let thread: OSThread.Joinable? = state.withLock { state in
            state.stopping = true
            defer { state.thread = nil }
            return state.thread
        }
        try? WakeEvent.signal(wake)
        guard let thread else { return }
        if thread.isCurrent {
            do { try thread.detach() } catch { assertionFailure("pthread_detach on the host monitor thread failed: \(error)") }
        } else {
            do { try thread.join() } catch { preconditionFailure("pthread_join on the host monitor thread failed: \(error)") }
        }
    }

    /// The loop, on the thread `start` made ("corral-host", asynchronous signals blocked).
    private func run() {
        var trigger: Int32 = -1
        if let threshold {
            switch PressureTriggers.arm(.memoryPressure, of: root, fs: fs, threshold: threshold, checkFilesystem: true) {
            case .armed(let fd, let used):
                trigger = fd
                state.withLock {
                    $0.triggerStatus = "PSI trigger on \(fs.absolutePath(root))/memory.pressure (\(used.triggerText))"
                }
            case .gone: state.withLock { $0.triggerStatus = "no PSI trigger: \(fs.absolutePath(root)) is gone" }
            case .unavailable(let reason): state.withLock { $0.triggerStatus = "no PSI trigger (sampling only): \(reason)" }
            }
        } else {
            state.withLock { $0.triggerStatus = "no PSI trigger (turned off): sampling only" }
        }
        defer { if trigger >= 0 { close(trigger) } }
        let timeout = Int32(max(1, interval.milliseconds))
        while !state.withLock({ $0.stopping }) {
            if let reading = read() { report(reading) }
            var fds = [Poll.Descriptor(fd: wake.rawValue, events: Poll.readable)]
            if trigger >= 0 { fds.append(Poll.Descriptor(fd: trigger, events: Poll.priority)) }
            if case .failure(let failure) = Poll.wait(&fds, timeout: timeout) {
                state.withLock {
                    $0.triggerStatus = "stopped: poll(2) failed (errno \(failure.rawValue)); the host ladder gets no readings"
                }
                break
            }
            if fds[0].returned != 0 { try? WakeEvent.drain(wake) }
            if fds.count > 1, fds[1].returned & (Poll.error | Poll.invalid) != 0 {
                // The root went away (or the trigger with it): sampling alone from here.
                close(trigger)
                trigger = -1
            }
        }
    }
}
