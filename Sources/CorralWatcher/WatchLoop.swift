internal import CorralCgroup
internal import CorralCore
internal import CorralLinux
internal import CorralThreads
internal import Synchronization
internal import SystemPackage

#if canImport(Glibc)
    internal import Glibc
#endif

/// The watcher's state and its thread. Everything mutable is behind `state`;
/// file reads of one cgroup happen under the lock, so baselines advance in
/// order whichever thread samples. The sink is called only by the loop
/// thread and never under the lock.
final class WatchLoop: Sendable {
    private let fs: any CgroupFilesystem
    private let tree: CgroupTree
    private let configuration: CgroupWatcher.Configuration
    private let clock: @Sendable () -> Timestamp
    private let time: WatchTimeSource
    private let sink: @Sendable (WatcherEvent) -> Void
    private let inotify: FileDescriptor
    private let wakeFD: FileDescriptor
    /// The loop's epoll instance: the wake-up fd, inotify and every PSI trigger
    /// (poll(2) over two triggers per agent walked 2,000 descriptors in the
    /// kernel at every round with 1,000 agents: a fifth of the daemon's CPU).
    private let epoll: FileDescriptor
    private let state: Mutex<State>

    private enum Lifecycle {
        case idle
        case running(OSThread.Joinable)
        case stopping(OSThread.Joinable)
        case stopped
    }

    /// One watched cgroup.
    private struct Watched {
        var path: CgroupPath
        /// inotify watch descriptors of its *.events files.
        var descriptors: [CgroupFile: Int32] = [:]
        /// Files whose watch the kernel dropped (IN_IGNORED), to watch again.
        var lost: Set<CgroupFile> = []
        /// PSI trigger fds.
        var triggers: [Resource: Int32] = [:]
        var previous: CgroupSample
        var previousAt: ContinuousClock.Instant
        /// The sample the next CPU rate is measured from.
        var cpuBaseline: CgroupSample
        var cpuBaselineAt: ContinuousClock.Instant
        var populated: Bool
        /// The last read failed for a reason other than removal (reported once).
        var failing = false
        /// Files of the event path held open and re-read with pread (one
        /// syscall per read instead of open, read, close).
        var readers: [CgroupFile: FileDescriptor] = [:]
        /// When memory.stat and the PSI files were last read (nil: never).
        var detailAt: ContinuousClock.Instant?
        /// How often the periodic sample reads it (nil: every sampling
        /// interval); set by `setSamplingInterval`. Kernel events and PSI
        /// triggers read it whatever this says.
        var every: Duration?
    }

    /// Who an inotify watch descriptor belongs to. Two subjects on the same
    /// cgroup share the kernel's descriptor.
    private struct Descriptor {
        var file: CgroupFile
        var subjects: Set<WatchSubject>
    }

    private struct State {
        var lifecycle = Lifecycle.idle
        var subjects: [WatchSubject: Watched] = [:]
        var descriptors: [Int32: Descriptor] = [:]
        var pressure: PressureTriggerStatus
        /// Events found outside the loop thread (by `sampleNow`), emitted by the loop.
        var outbox: [WatcherEvent] = []
        /// When the loop last went round (the service watchdog's evidence that it runs).
        var lastIteration: ContinuousClock.Instant?
        /// Subjects whose fresh reading was asked for (`request`), in order, once each.
        var requested: [WatchSubject] = []
        /// Trigger fds of unwatched agents, taken out of epoll and closed by the loop between waits.
        var retired: [Int32] = []
        /// The poll set must be rebuilt.
        var triggersChanged = true
        /// When `start()` was called: the first sampling tick is one interval later.
        var startedAt: ContinuousClock.Instant?
    }

    /// What one loop iteration must do for one subject.
    private struct Work {
        var files: Set<CgroupFile> = []
        var pressure: Set<Resource> = []
        /// Only check that it still exists (a watch was dropped, a trigger failed).
        var check = false
        /// A reading was asked for (`request`).
        var requested = false

        mutating func merge(_ other: Work) {
            files.formUnion(other.files)
            pressure.formUnion(other.pressure)
            check = check || other.check
            requested = requested || other.requested
        }

        var trigger: ObservationTrigger? {
            if let file = notifyingFiles.first(where: files.contains) { return .event(file) }
            if pressure.contains(.memory) { return .pressure(.memory) }
            if pressure.contains(.cpu) { return .pressure(.cpu) }
            if requested { return .requested }
            return nil
        }
    }

    /// The result of reading one subject.
    private enum Outcome {
        case observed(Observation, [WatcherEvent])
        case failed(CgroupError, [WatcherEvent])
        case notWatched
    }

    init(
        filesystem: any CgroupFilesystem, configuration: CgroupWatcher.Configuration, clock: @escaping @Sendable () -> Timestamp,
        time: WatchTimeSource = .continuous, sink: @escaping @Sendable (WatcherEvent) -> Void
    ) throws(CgroupError) {
        let inotify: FileDescriptor
        let wakeFD: FileDescriptor
        do {
            inotify = try InotifyInstance.open()
        } catch {
            throw CgroupError.inotify(error, path: filesystem.absolutePath(.anchor))
        }
        do {
            wakeFD = try WakeEvent.open()
        } catch {
            try? inotify.close()
            throw CgroupError.inotify(error, path: filesystem.absolutePath(.anchor))
        }
        do throws(Errno) {
            let epoll = try Epoll.create()
            do throws(Errno) {
                try Epoll.add(epoll, wakeFD.rawValue, events: Epoll.readable, token: Self.wakeToken)
                try Epoll.add(epoll, inotify.rawValue, events: Epoll.readable, token: Self.inotifyToken)
            } catch {
                try? epoll.close()
                throw error
            }
            self.epoll = epoll
        } catch {
            try? inotify.close()
            try? wakeFD.close()
            throw CgroupError.inotify(error, path: filesystem.absolutePath(.anchor))
        }
        self.fs = filesystem
        self.tree = CgroupTree(fs: filesystem, root: .anchor)
        self.configuration = configuration
        self.clock = clock
        self.time = time
        self.sink = sink
        self.inotify = inotify
        self.wakeFD = wakeFD
        self.state = Mutex(State(pressure: configuration.pressureThreshold == nil ? .disabled : .untried))
    }

    deinit {
        // stop() closed everything unless the thread never ran.
        state.withLock { state in
            if case .stopped = state.lifecycle { return }
            closeAll(&state)
        }
    }

    // MARK: Public operations

    var pressureStatus: PressureTriggerStatus { state.withLock { $0.pressure } }

    /// When the loop last went round; nil before its first round.
    var lastIteration: ContinuousClock.Instant? { state.withLock { $0.lastIteration } }

    /// The inotify and wake-up fds, for tests that count watches and descriptors.
    var descriptors: (inotify: Int32, wake: Int32) { (inotify.rawValue, wakeFD.rawValue) }

    var subjects: Set<WatchSubject> { state.withLock { Set($0.subjects.keys) } }

    var isRunning: Bool {
        state.withLock { state in
            if case .running = state.lifecycle { return true }
            return false
        }
    }

    /// The watcher thread's nice value, when the process may raise it.
    static let threadNice: Int32 = -10

    func start() {
        state.withLock { state in
            guard case .idle = state.lifecycle else { return }
            let thread: OSThread.Joinable
            do {
                // The watcher should not wait behind the agents it watches, nor
                // behind the daemon's own bookkeeping: nice -10 for this thread
                // alone, when allowed (root, CAP_SYS_NICE); else as it is.
                thread = try OSThread.startJoinable(name: "corral-watcher", nice: WatchLoop.threadNice) { [self] in run() }
            } catch {
                // Without a thread there is no watcher: EAGAIN here means the
                // process is out of threads, which nothing downstream survives.
                preconditionFailure("cannot start the watcher thread: pthread_create failed: \(error)")
            }
            state.lifecycle = .running(thread)
            state.startedAt = time.now
            time.manual?.attach(self) { [weak self] in self?.wake() }
        }
    }

    func stop(wait: Bool = true) {
        let joinable: OSThread.Joinable? = state.withLock { state in
            switch state.lifecycle {
            case .idle:
                closeAll(&state)
                state.lifecycle = .stopped
                return nil
            case .running(let thread):
                state.lifecycle = .stopping(thread)
                return thread
            case .stopping, .stopped:
                return nil
            }
        }
        guard let thread = joinable else { return }
        wake()
        if !wait || thread.isCurrent {
            // Called from the sink, or not waiting: the loop ends after this batch and cleans up itself.
            do { try thread.detach() } catch { assertionFailure("pthread_detach on the watcher thread failed: \(error)") }
        } else {
            do { try thread.join() } catch { preconditionFailure("pthread_join on the watcher thread failed: \(error)") }
        }
    }

    func watch(_ subject: WatchSubject, path: CgroupPath) throws(CgroupError) -> CgroupSample {
        let baseline = try state.withLock { (state: inout State) throws(CgroupError) -> CgroupSample in
            if case .stopped = state.lifecycle { throw .stopped(fs.absolutePath(path)) }
            if case .stopping = state.lifecycle { throw .stopped(fs.absolutePath(path)) }
            remove(subject, &state)
            // The baseline is read before the watches exist: a change in
            // between is then caught by the counters at the next reading,
            // rather than absorbed into the baseline.
            let sample = try tree.sample(path)
            let now = time.now
            var watched = Watched(
                path: path, previous: sample, previousAt: now, cpuBaseline: sample, cpuBaselineAt: now,
                populated: sample.events.populated)
            for file in notifyingFiles {
                let target = fs.absolutePath(path) + "/" + file.rawValue
                switch Inotify.add(inotify.rawValue, path: target) {
                case .success(let wd):
                    watched.descriptors[file] = wd
                    state.descriptors[wd, default: Descriptor(file: file, subjects: [])].subjects.insert(subject)
                case .failure(let errno) where errno == .noSuchFileOrDirectory && file != .events:
                    continue  // that controller is not enabled here
                case .failure(let errno):
                    state.subjects[subject] = watched
                    remove(subject, &state)
                    throw .inotify(errno, path: target)
                }
            }
            if subject.agent != nil {
                watched.triggers = armTriggers(path, &state)
                if !watched.triggers.isEmpty { state.triggersChanged = true }
            }
            state.subjects[subject] = watched
            return sample
        }
        wake()
        return baseline
    }

    func unwatch(_ subject: WatchSubject) {
        let hadTriggers = state.withLock { state in
            let triggers = !(state.subjects[subject]?.triggers.isEmpty ?? true)
            remove(subject, &state)
            return triggers
        }
        if hadTriggers { wake() }
    }

    /// Samples `subject` every `every` (rounded to the sampling ticks; nil:
    /// every sampling interval). Takes effect at the next tick.
    func setSamplingInterval(_ subject: WatchSubject, every: Duration?) {
        state.withLock { state in state.subjects[subject]?.every = every }
    }

    /// The interval `setSamplingInterval` set for `subject` (nil: the sampling interval's).
    func samplingInterval(_ subject: WatchSubject) -> Duration? {
        state.withLock { $0.subjects[subject]?.every }
    }

    /// Asks the loop for a reading of `subject`; it goes to the sink.
    func request(_ subject: WatchSubject) {
        let added = state.withLock { state in
            guard state.subjects[subject] != nil, !state.requested.contains(subject) else { return false }
            state.requested.append(subject)
            return true
        }
        if added { wake() }
    }

    func sampleNow(_ subject: WatchSubject) throws(CgroupError) -> Observation? {
        let seenAt = time.now
        let outcome = state.withLock { state in
            let outcome = observe(subject, trigger: .requested, seenAt: seenAt, &state)
            switch outcome {
            case .observed(_, let events), .failed(_, let events): state.outbox += events
            case .notWatched: break
            }
            return outcome
        }
        switch outcome {
        case .observed(let observation, let events):
            if !events.isEmpty { wake() }
            return observation
        case .failed(let error, _):
            wake()
            throw error
        case .notWatched:
            return nil
        }
    }

    // MARK: Under the lock

    /// Forgets `subject`: its inotify watches (unless shared) and trigger fds.
    private func remove(_ subject: WatchSubject, _ state: inout State) {
        guard let watched = state.subjects.removeValue(forKey: subject) else { return }
        for wd in watched.descriptors.values {
            state.descriptors[wd]?.subjects.remove(subject)
            if state.descriptors[wd]?.subjects.isEmpty ?? false {
                state.descriptors[wd] = nil
                Inotify.remove(inotify.rawValue, wd)
            }
        }
        for fd in watched.triggers.values { retire(fd, &state) }
        for reader in watched.readers.values { try? reader.close() }
    }

    /// Closes a trigger fd now while the loop is idle; otherwise the loop takes it out of epoll and closes it between waits.
    private func retire(_ fd: Int32, _ state: inout State) {
        state.triggersChanged = true
        if case .idle = state.lifecycle {
            close(fd)
        } else {
            state.retired.append(fd)
        }
    }

    private func closeAll(_ state: inout State) {
        for subject in Array(state.subjects.keys) { remove(subject, &state) }
        for fd in state.retired { close(fd) }
        state.retired = []
        try? epoll.close()
        try? inotify.close()
        try? wakeFD.close()
    }

    /// epoll tokens of the wake-up fd and of inotify; a trigger's is its fd.
    private static let wakeToken = UInt64.max
    private static let inotifyToken = UInt64.max - 1

    /// Arms the PSI triggers of an agent; the first failure turns them off for good.
    private func armTriggers(_ path: CgroupPath, _ state: inout State) -> [Resource: Int32] {
        let threshold: PressureThreshold
        let checkFilesystem: Bool
        switch state.pressure {
        case .disabled, .unavailable: return [:]
        case .untried:
            guard let configured = configuration.pressureThreshold else { return [:] }
            threshold = configured
            checkFilesystem = true
        case .active(let working):
            threshold = working
            checkFilesystem = false
        }
        var triggers: [Resource: Int32] = [:]
        for (resource, file) in [(Resource.memory, CgroupFile.memoryPressure), (.cpu, .cpuPressure)] {
            switch PressureTriggers.arm(file, of: path, fs: fs, threshold: threshold, checkFilesystem: checkFilesystem) {
            case .armed(let fd, let used):
                triggers[resource] = fd
                state.pressure = .active(used)
            case .gone:
                return triggers
            case .unavailable(let reason):
                for fd in triggers.values { close(fd) }
                state.pressure = .unavailable(reason: reason)
                return [:]
            }
        }
        return triggers
    }

    /// Reads `subject` and turns the reading into events.
    private func observe(
        _ subject: WatchSubject, trigger: ObservationTrigger, seenAt: ContinuousClock.Instant, _ state: inout State
    ) -> Outcome {
        guard var watched = state.subjects[subject] else { return .notWatched }
        let sample: CgroupSample
        // A kernel event needs only the files it concerns (and cgroup.events);
        // the rest is carried over from the previous sample, and the CPU rate
        // waits for the next full one. Under emulation a full sample of eight
        // files costs milliseconds, and events come in bursts.
        var partial = false
        do {
            if case .event(let file) = trigger {
                sample = try partialSample(&watched, changed: file)
                partial = true
            } else {
                sample = try fullSample(&watched)
            }
        } catch {
            return .failed(error, failure(error, of: subject, &state))
        }
        let now = time.now
        let at = clock()
        // Counter signals against the previous observation; the CPU rate
        // against the last one that had a CPU reading, so that events
        // arriving faster than the CPU window do not starve it.
        var readings = UsageReading.readings(
            previous: watched.previous, current: sample, elapsed: watched.previousAt.duration(to: now),
            minimumCPUWindow: .seconds(Int64(Int32.max)))
        let cpu = UsageReading.readings(
            previous: watched.cpuBaseline, current: sample, elapsed: watched.cpuBaselineAt.duration(to: now),
            minimumCPUWindow: configuration.minimumCPUWindow
        ).first { $0.resource == .cpu }
        if !partial, let cpu {
            readings.insert(cpu, at: readings.firstIndex { $0.resource > .cpu } ?? readings.endIndex)
            watched.cpuBaseline = sample
            watched.cpuBaselineAt = now
        }
        var pressure: Pressure?
        if case .pressure(let resource) = trigger {
            let file: CgroupFile = resource == .memory ? .memoryPressure : .cpuPressure
            pressure = (try? fs.read(file, of: watched.path)).flatMap(Pressure.init(parsing:))
        }
        let observation = Observation(
            subject: subject, trigger: trigger, at: at, seenAt: seenAt, readAt: now, sample: sample, readings: readings,
            elapsed: watched.previousAt.duration(to: now), pressure: pressure)
        var events: [WatcherEvent] = []
        watched.failing = false
        if watched.populated && !sample.events.populated { events.append(.emptied(subject, at: at)) }
        watched.populated = sample.events.populated
        watched.previous = sample
        watched.previousAt = now
        state.subjects[subject] = watched
        return .observed(observation, events)
    }

    /// Reads `file` of a watched cgroup through a descriptor held open for it
    /// (pread at offset 0: one syscall instead of open, read and close).
    /// cgroup.events is never held: its IN_IGNORED is how a removal is seen.
    private func text(_ file: CgroupFile, _ watched: inout Watched) throws(CgroupError) -> String {
        if file == .events { return try fs.read(file, of: watched.path) }
        if watched.readers[file] == nil {
            do {
                watched.readers[file] = try fs.openForReading(file, of: watched.path)
            } catch  where error.code == .notSupported {
                return try fs.read(file, of: watched.path)
            }
        }
        guard let reader = watched.readers[file] else { return try fs.read(file, of: watched.path) }
        do {
            return try reader.readToEnd(fromAbsoluteOffset: 0, shortReadIsEnd: true)
        } catch {
            throw CgroupError.explain(error, operation: .read, path: fs.absolutePath(watched.path), file: file)
        }
    }

    /// A number file, nil when this kernel or controller lacks it.
    private func number(_ file: CgroupFile, _ watched: inout Watched) throws(CgroupError) -> Int64? {
        do {
            return FlatKeyed.integer(in: try text(file, &watched))
        } catch  where error.code == .notFound || error.code == .controllerUnavailable {
            return nil
        }
    }

    /// The files of `CgroupTree.sample`, read through held descriptors.
    private func fullSample(_ watched: inout Watched) throws(CgroupError) -> CgroupSample {
        func optional(_ file: CgroupFile) throws(CgroupError) -> String? {
            do { return try text(file, &watched) } catch  where error.code == .notFound || error.code == .controllerUnavailable {
                return nil
            }
        }
        var sample = CgroupSample()
        sample.memoryCurrent = try number(.memoryCurrent, &watched)
        sample.memoryPeak = try number(.memoryPeak, &watched)
        sample.memoryEvents = try optional(.memoryEvents).map(MemoryEvents.init(parsing:)) ?? MemoryEvents()
        sample.cpu = try optional(.cpuStat).map(CPUStat.init(parsing:)) ?? CPUStat()
        sample.pidsCurrent = try number(.pidsCurrent, &watched)
        sample.pidsPeak = try number(.pidsPeak, &watched)
        sample.pidsEvents = try optional(.pidsEvents).map(PidsEvents.init(parsing:)) ?? PidsEvents()
        // For the working set and the PSI totals of the metrics: opened afresh each time (no
        // descriptor held for them, which would cost four more per agent against RLIMIT_NOFILE).
        func unheld(_ file: CgroupFile) throws(CgroupError) -> String? {
            do { return try fs.read(file, of: watched.path) } catch  where error.code == .notFound || error.code == .controllerUnavailable {
                return nil
            }
        }
        let now = time.now
        // An idle agent (sampled every `every`) has them read every third sample: four files
        // opened at each of its samples were most of what 1,000 idle agents cost.
        let detailInterval = max(configuration.detailInterval, (watched.every ?? .zero) * 3 - configuration.samplingInterval / 2)
        if let last = watched.detailAt, now - last < detailInterval {
            sample.inactiveFile = watched.previous.inactiveFile
            sample.pressure = watched.previous.pressure
        } else {
            sample.inactiveFile = try unheld(.memoryStat).flatMap { FlatKeyed.value(of: "inactive_file", in: $0) }
            sample.pressure = try CgroupTree.pressureTotals { file throws(CgroupError) in try unheld(file) }
            watched.detailAt = now
        }
        // Opened afresh: this is also how a removed cgroup is noticed where a
        // held descriptor would go on reading (files that are not cgroupfs).
        sample.events = CgroupEvents(parsing: try fs.read(.events, of: watched.path))
        return sample
    }

    /// Reads the files a change of `file` concerns into a copy of the previous sample.
    private func partialSample(_ watched: inout Watched, changed file: CgroupFile) throws(CgroupError) -> CgroupSample {
        var sample = watched.previous
        func text(_ file: CgroupFile) throws(CgroupError) -> String { try self.text(file, &watched) }
        func number(_ file: CgroupFile) throws(CgroupError) -> Int64? { try self.number(file, &watched) }
        switch file {
        case .memoryEvents:
            sample.memoryEvents = MemoryEvents(parsing: try text(.memoryEvents))
            sample.memoryCurrent = try number(.memoryCurrent)
        case .pidsEvents:
            sample.pidsEvents = PidsEvents(parsing: try text(.pidsEvents))
            sample.pidsCurrent = try number(.pidsCurrent)
        default:
            break
        }
        // Opened afresh, as in `fullSample`: a descriptor held on cgroup.events
        // keeps its inode, and the removal of the cgroup then sends no
        // IN_IGNORED (that waits for the last close), so it went unnoticed.
        sample.events = CgroupEvents(parsing: try fs.read(.events, of: watched.path))
        return sample
    }

    /// A read of `subject` failed: it vanished (reported once, then
    /// forgotten), or it is unreadable (reported once per streak).
    private func failure(_ error: CgroupError, of subject: WatchSubject, _ state: inout State) -> [WatcherEvent] {
        guard var watched = state.subjects[subject] else { return [] }
        let at = clock()
        if error.meansRemoved {
            remove(subject, &state)
            // A cgroup cannot be removed while populated: if the change to
            // empty was missed, report it before the removal.
            return watched.populated ? [.emptied(subject, at: at), .vanished(subject, at: at)] : [.vanished(subject, at: at)]
        }
        guard !watched.failing else { return [] }
        watched.failing = true
        state.subjects[subject] = watched
        return [.unreadable(subject, error, at: at)]
    }

    /// Checks that `subject` still exists, without an observation (its
    /// baseline stays); watches the kernel dropped are added again.
    private func check(_ subject: WatchSubject, _ state: inout State) -> [WatcherEvent] {
        guard var watched = state.subjects[subject] else { return [] }
        let text: String
        do {
            text = try fs.read(.events, of: watched.path)
        } catch {
            return failure(error, of: subject, &state)
        }
        var events: [WatcherEvent] = []
        let populated = CgroupEvents(parsing: text).populated
        if watched.populated && !populated && subject.agent != nil {
            // One last full reading before the agent is closed and its cgroup removed: its
            // final counters (an OOM kill whose memory.events change waits in a cooldown would
            // otherwise never be read). The observation reports the emptying itself.
            switch observe(subject, trigger: .sample, seenAt: time.now, &state) {
            case .observed(let observation, let more): return [.observation(observation)] + more
            case .failed(_, let more): return more
            case .notWatched: return []
            }
        }
        if watched.populated && !populated { events.append(.emptied(subject, at: clock())) }
        watched.populated = populated
        for file in watched.lost {
            if case .success(let wd) = Inotify.add(inotify.rawValue, path: fs.absolutePath(watched.path) + "/" + file.rawValue) {
                watched.lost.remove(file)
                watched.descriptors[file] = wd
                state.descriptors[wd, default: Descriptor(file: file, subjects: [])].subjects.insert(subject)
            }
        }
        state.subjects[subject] = watched
        return events
    }

    // MARK: The thread

    /// Wakes the loop so it takes the outbox and rebuilds its poll set.
    /// Never called under the lock; checks under it that the fd is still open.
    private func wake() {
        state.withLock { state in
            if case .stopped = state.lifecycle { return }
            do throws(Errno) { try WakeEvent.signal(wakeFD) } catch { assertionFailure("eventfd write: \(error.name)") }
        }
    }

    /// A PSI trigger in the poll set.
    private struct PolledTrigger {
        var subject: WatchSubject
        var resource: Resource
        var fd: Int32
    }

    /// The loop, on the thread `start` made: named "corral-watcher", at nice
    /// -10 when allowed, with asynchronous signals blocked (process-directed
    /// ones go to the thread that waits for them: a daemon's signalfd).
    private func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
        defer { buffer.deallocate() }
        let interval = configuration.samplingInterval
        var nextTick = (state.withLock { $0.startedAt } ?? time.now).advanced(by: interval)
        // The triggers registered with epoll, by fd.
        var polledTriggers: [Int32: PolledTrigger] = [:]
        var readyTokens = [UInt64](repeating: 0, count: 256)
        var readyEvents = [UInt32](repeating: 0, count: 256)
        // Subjects still to sample this tick: a few at a time between polls, so
        // a kernel event never waits for a whole tick over hundreds of agents.
        var sampleQueue: [WatchSubject] = []
        let samplesPerRound = 8
        // A subject whose files keep changing (memory.high throttling raises
        // memory.events' high counter many times a second) is read at most
        // once per cooldown; its changes meanwhile are merged and read when
        // the cooldown ends. A subject quiet for a cooldown is read at once,
        // so a new violation never queues behind a storm of old ones.
        let eventCooldown = Duration.milliseconds(200)
        var lastEventRead: [WatchSubject: ContinuousClock.Instant] = [:]
        var deferred: [WatchSubject: Work] = [:]

        while true {
            // Close what was retired, rebuild the poll set, take the outbox.
            let (stopping, outbox, requested) = state.withLock { state -> (Bool, [WatcherEvent], [WatchSubject]) in
                state.lastIteration = .now
                for fd in state.retired {
                    // Out of epoll before the close: a child between fork and exec may hold the
                    // file open, and an fd number reused later must not inherit the registration.
                    if polledTriggers.removeValue(forKey: fd) != nil { Epoll.remove(epoll, fd) }
                    close(fd)
                }
                state.retired = []
                if state.triggersChanged {
                    state.triggersChanged = false
                    var current: [Int32: PolledTrigger] = [:]
                    for (subject, watched) in state.subjects {
                        for (resource, fd) in watched.triggers { current[fd] = PolledTrigger(subject: subject, resource: resource, fd: fd) }
                    }
                    for fd in polledTriggers.keys where current[fd] == nil { Epoll.remove(epoll, fd) }
                    // EPERM for a regular file (a test's directory tree standing in for
                    // cgroupfs): it never signals, as poll(2) never reported POLLPRI for it.
                    for fd in current.keys where polledTriggers[fd] == nil {
                        try? Epoll.add(epoll, fd, events: Epoll.priority, token: UInt64(fd))
                    }
                    polledTriggers = current
                }
                let outbox = state.outbox
                state.outbox = []
                let requested = state.requested
                state.requested = []
                if case .stopping = state.lifecycle { return (true, outbox, requested) }
                return (false, outbox, requested)
            }
            for event in outbox { sink(event) }
            if stopping { break }

            var wakeAt = nextTick
            for subject in deferred.keys {
                if let last = lastEventRead[subject] { wakeAt = min(wakeAt, last + eventCooldown) }
            }
            let generation = time.manual?.generation ?? 0
            let remaining = time.now.duration(to: wakeAt)
            let pending = remaining <= .zero || !sampleQueue.isEmpty || !requested.isEmpty
            // Manual time: nothing comes due until a test advances it (which wakes the loop).
            let timeout: Int32 =
                pending ? 0 : time.manual != nil ? -1 : Int32(clamping: (remaining.microseconds + 999) / 1000)
            var polled = Epoll.wait(epoll, tokens: &readyTokens, events: &readyEvents, timeout: timeout < 0 ? 0 : timeout)
            if timeout < 0, case .success(0) = polled {
                // Nothing due, nothing queued: idle until time moves or the kernel reports.
                time.manual?.idle(self, at: generation)
                polled = Epoll.wait(epoll, tokens: &readyTokens, events: &readyEvents, timeout: -1)
            }
            let seenAt = time.now
            let ready: Int
            switch polled {
            case .success(let count): ready = count
            case .failure(.interrupted): continue
            case .failure:
                // ENOMEM: back off rather than spin.
                usleep(10_000)
                continue
            }

            var work: [WatchSubject: Work] = [:]
            var order: [WatchSubject] = []
            func note(_ subject: WatchSubject, _ change: (inout Work) -> Void) {
                if work[subject] == nil { order.append(subject) }
                change(&work[subject, default: Work()])
            }
            for subject in requested { note(subject) { $0.requested = true } }
            if ready > 0 {
                var woken = false
                var notified = false
                var failedTriggers: [PolledTrigger] = []
                for index in 0..<ready {
                    let token = readyTokens[index]
                    let events = readyEvents[index]
                    switch token {
                    case Self.wakeToken: woken = true
                    case Self.inotifyToken: notified = true
                    default:
                        guard let polled = polledTriggers[Int32(truncatingIfNeeded: token)] else { continue }
                        if events & (Epoll.error | Epoll.hangUp) != 0 {
                            // The cgroup is being removed (or the trigger is gone):
                            // drop the trigger so epoll cannot spin on it.
                            failedTriggers.append(polled)
                            note(polled.subject) { $0.check = true }
                        } else if events & Epoll.priority != 0 {
                            note(polled.subject) { $0.pressure.insert(polled.resource) }
                        }
                    }
                }
                if woken {
                    do throws(Errno) { try WakeEvent.drain(wakeFD) } catch { assertionFailure("eventfd read: \(error.name)") }
                }
                let inotifyEvents = notified ? Inotify.drain(inotify.rawValue, buffer: buffer) : []
                state.withLock { state in
                    for event in inotifyEvents {
                        if event.isOverflow {
                            // Changes were lost: read everything as if every file had changed.
                            for subject in state.subjects.keys { note(subject) { $0.files.formUnion(notifyingFiles) } }
                            continue
                        }
                        guard let descriptor = state.descriptors[event.descriptor] else { continue }
                        if event.isModify {
                            for subject in descriptor.subjects { note(subject) { $0.files.insert(descriptor.file) } }
                        }
                        if event.isIgnored || event.isDeleteSelf {
                            for subject in descriptor.subjects { note(subject) { $0.check = true } }
                        }
                        if event.isIgnored {
                            state.descriptors[event.descriptor] = nil
                            for subject in descriptor.subjects {
                                state.subjects[subject]?.descriptors[descriptor.file] = nil
                                state.subjects[subject]?.lost.insert(descriptor.file)
                            }
                        }
                    }
                    for failed in failedTriggers where state.subjects[failed.subject]?.triggers[failed.resource] == failed.fd {
                        state.subjects[failed.subject]?.triggers[failed.resource] = nil
                        retire(failed.fd, &state)
                    }
                }
            }

            // Event path first: read each changed cgroup once, report at once;
            // subjects still cooling down wait, those whose cooldown ended go now.
            let roundStart = time.now
            var due: [WatchSubject] = []
            for subject in order {
                guard let item = work[subject] else { continue }
                let cooling = lastEventRead[subject].map { roundStart < $0 + eventCooldown } ?? false
                if cooling && !item.check {
                    deferred[subject, default: Work()].merge(item)
                    work[subject] = nil
                } else if let waiting = deferred.removeValue(forKey: subject) {
                    work[subject]?.merge(waiting)
                }
            }
            for (subject, item) in deferred where lastEventRead[subject].map({ roundStart >= $0 + eventCooldown }) ?? true {
                due.append(subject)
                work[subject] = item
            }
            for subject in due { deferred[subject] = nil }
            // Quiet subjects first (a new violation), then those in a burst; each
            // subject's events go to the sink as soon as it is read.
            let current = order.filter { work[$0] != nil }
            let quiet = current.filter { lastEventRead[$0].map { roundStart - $0 > .seconds(1) } ?? true }
            let busy = current.filter { subject in !quiet.contains(subject) }
            for subject in quiet + busy + due {
                guard let item = work[subject] else { continue }
                // A requested reading is no kernel event: it starts no cooldown.
                if let trigger = item.trigger, trigger != .requested { lastEventRead[subject] = time.now }
                let found: [WatcherEvent] = state.withLock { state in
                    var found: [WatcherEvent] = []
                    if let trigger = item.trigger {
                        switch observe(subject, trigger: trigger, seenAt: seenAt, &state) {
                        case .observed(let observation, let more): found = [.observation(observation)] + more
                        case .failed(_, let more): found = more
                        case .notWatched: break
                        }
                    }
                    if item.check { found += check(subject, &state) }
                    return found
                }
                for event in found { sink(event) }
            }

            // The periodic sample, when due, a few subjects per round.
            let now = time.now
            if now >= nextTick {
                nextTick = nextTick.advanced(by: interval)
                if nextTick < now { nextTick = now.advanced(by: interval) }
                let queued = Set(sampleQueue)
                // Every subject whose interval has passed since its last full
                // sample (half a tick early counts: ticks are the resolution).
                let (live, due) = state.withLock { state -> (Set<WatchSubject>, [WatchSubject]) in
                    var due: [WatchSubject] = []
                    for (subject, watched) in state.subjects where !queued.contains(subject) {
                        guard let every = watched.every, every > interval else {
                            due.append(subject)
                            continue
                        }
                        if watched.cpuBaselineAt.duration(to: now) >= every - interval / 2 { due.append(subject) }
                    }
                    return (Set(state.subjects.keys), due)
                }
                sampleQueue += due
                lastEventRead = lastEventRead.filter { live.contains($0.key) }
                deferred = deferred.filter { live.contains($0.key) }
            }
            guard !sampleQueue.isEmpty else { continue }
            let subjects = Array(sampleQueue.prefix(samplesPerRound))
            sampleQueue.removeFirst(subjects.count)
            for subject in subjects {
                let found: [WatcherEvent] = state.withLock { state in
                    guard subject.agent != nil else { return check(subject, &state) }
                    switch observe(subject, trigger: .sample, seenAt: now, &state) {
                    case .observed(let observation, let more): return [.observation(observation)] + more
                    case .failed(_, let more): return more
                    case .notWatched: return []
                    }
                }
                for event in found { sink(event) }
            }
        }

        state.withLock { state in
            closeAll(&state)
            state.lifecycle = .stopped
        }
        time.manual?.detach(self)
    }
}
