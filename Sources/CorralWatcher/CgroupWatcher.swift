public import CorralCgroup
public import CorralCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// Watches agent and group cgroups and reports what the kernel says about
/// them, as soon as it says it.
///
/// One dedicated thread blocks in poll(2) on an inotify fd (`IN_MODIFY` of
/// memory.events, pids.events and cgroup.events of every watched cgroup),
/// the PSI trigger fds of every agent and a wake-up eventfd; the poll timeout
/// is the next sampling deadline. A kernel event is read and reported at
/// once, without batching delay; every `samplingInterval` all agents are
/// sampled. Events reach `sink` in order, on the watcher's thread: keep the
/// sink short (yield into an `AsyncStream`, e.g.):
///
///     let (events, continuation) = AsyncStream.makeStream(of: WatcherEvent.self)
///     let watcher = try CgroupWatcher(filesystem: fs) { continuation.yield($0) }
///
/// `watch`, `unwatch` and `sampleNow` are synchronous and cheap (a few
/// cgroup file reads); they may be called from any thread, also from the sink.
/// `requestSample` reads nothing on its caller's thread: the watcher's thread
/// takes the reading (for callers that must not block, like the engine).
public final class CgroupWatcher: Sendable {
    public struct Configuration: Sendable {
        /// How often every agent is sampled (memory.current/peak, cpu.stat, pids.current).
        public var samplingInterval: Duration
        /// The PSI trigger armed on each agent's memory.pressure and cpu.pressure; nil: none.
        public var pressureThreshold: PressureThreshold?
        /// The shortest span a CPU rate is computed over (see `UsageReading.readings`).
        public var minimumCPUWindow: Duration
        /// How often a full sample also reads what only the metrics show: memory.stat's
        /// inactive_file (the working set) and the three PSI files' totals. Four more
        /// files opened per agent and sample doubled the sampling cost under emulation;
        /// between these reads a sample carries the last values over. An agent sampled
        /// at the idle interval has them read every third sample at most.
        public var detailInterval: Duration

        public init(
            samplingInterval: Duration = .seconds(1), pressureThreshold: PressureThreshold? = .standard,
            minimumCPUWindow: Duration = .milliseconds(200), detailInterval: Duration = .seconds(5)
        ) {
            precondition(samplingInterval > .zero, "the sampling interval must be positive")
            self.samplingInterval = samplingInterval
            self.pressureThreshold = pressureThreshold
            self.minimumCPUWindow = minimumCPUWindow
            self.detailInterval = detailInterval
        }
    }

    let loop: WatchLoop

    /// The wall clock: CLOCK_REALTIME in milliseconds.
    public static let systemClock: @Sendable () -> Timestamp = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Timestamp(milliseconds: Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
    }

    /// Creates the inotify instance and the wake-up fd; nothing runs until `start()`.
    /// Throws when the process is out of inotify instances or file descriptors.
    /// `clock` stamps events with wall-clock time; `time` paces sampling and
    /// cooldowns (`.manual` for tests that drive it).
    public init(
        filesystem: any CgroupFilesystem, configuration: Configuration = Configuration(),
        clock: @escaping @Sendable () -> Timestamp = CgroupWatcher.systemClock, time: WatchTimeSource = .continuous,
        sink: @escaping @Sendable (WatcherEvent) -> Void
    ) throws(CgroupError) {
        loop = try WatchLoop(filesystem: filesystem, configuration: configuration, clock: clock, time: time, sink: sink)
    }

    deinit { loop.stop() }

    /// Starts the watcher's thread. Idempotent; does nothing after `stop()`.
    public func start() { loop.start() }

    /// Stops the thread, waits for it to end and closes every descriptor.
    /// Idempotent. Called from the sink, it returns before the thread ends.
    public func stop() { loop.stop() }

    /// Tells the thread to stop and returns at once; the thread closes every
    /// descriptor on its way out. For a process about to end: closing an
    /// inotify instance waits for the kernel to retire its watches (an SRCU
    /// grace period, tens of milliseconds under emulation), which then
    /// overlaps whatever the process still does.
    public func stopWithoutWaiting() { loop.stop(wait: false) }

    /// Watches an agent's cgroup: events, PSI triggers, periodic samples.
    /// Takes the baseline sample the first observation is compared with, so
    /// counters that grew before this call are history, not news. Watch a
    /// new agent before its process starts, so its `.emptied` is not missed.
    /// Watching an id again replaces the earlier watch.
    /// Throws `.notFound`/`.removed` when the cgroup does not exist.
    @discardableResult
    public func watch(agent: String, path: CgroupPath) throws(CgroupError) -> CgroupSample {
        try loop.watch(.agent(agent), path: path)
    }

    /// Watches a group's cgroup for events only (no PSI triggers, no periodic
    /// observations; each sampling tick checks that it still exists).
    @discardableResult
    public func watchGroup(name: String, path: CgroupPath) throws(CgroupError) -> CgroupSample {
        try loop.watch(.group(name), path: path)
    }

    /// Stops watching an agent. An observation already on its way to the sink may still arrive.
    public func unwatch(agent: String) { loop.unwatch(.agent(agent)) }

    public func unwatchGroup(name: String) { loop.unwatch(.group(name)) }

    /// Samples the agent every `every` instead of every sampling interval
    /// (nil: back to the sampling interval), from the next tick; its kernel
    /// events and PSI triggers are read at once as always. Intervals are
    /// rounded to sampling ticks. Nothing happens when it is not watched.
    public func setSamplingInterval(agent: String, every: Duration?) { loop.setSamplingInterval(.agent(agent), every: every) }

    /// The interval `setSamplingInterval` set for the agent (nil: the sampling interval).
    public func samplingInterval(agent: String) -> Duration? { loop.samplingInterval(.agent(agent)) }

    /// Asks the watcher's thread for a fresh observation of the agent (trigger
    /// `.requested`), sent to the sink like every other: returns at once, reads
    /// nothing on the caller's thread. Requests made before the thread gets to
    /// them are one reading. Nothing happens when the agent is not watched.
    public func requestSample(agent: String) { loop.request(.agent(agent)) }

    /// Reads the agent's cgroup now and returns the observation (trigger
    /// `.requested`) without sending it to the sink. It becomes the baseline
    /// of the next one: the counter increases it reports are not reported
    /// again, so the caller must act on them. Nil when the agent is not
    /// watched. When the cgroup is gone, throws and the sink gets `.vanished`.
    public func sampleNow(agent: String) throws(CgroupError) -> Observation? {
        try loop.sampleNow(.agent(agent))
    }

    /// Whether agents get PSI triggers.
    public var pressureTriggers: PressureTriggerStatus { loop.pressureStatus }

    /// What is watched now.
    public var subjects: Set<WatchSubject> { loop.subjects }

    /// Whether the thread is running.
    public var isRunning: Bool { loop.isRunning }

    /// When the watch loop last went round (it does at least once per sampling
    /// interval); nil before it started. The service watchdog's evidence.
    public var lastIteration: ContinuousClock.Instant? { loop.lastIteration }
}
