public import CorralCgroup
import CorralCore
public import CorralWatcher
import Synchronization

/// The engine's one runtime loop, the same for `corrald`, the engine embedded
/// in `corral run` and the benchmarks: one task hands the watcher's events to
/// the engine, most urgent first (`ObservationQueue`); another runs its timers
/// every `spacing` (delayed ladder steps, the end of a termination's grace,
/// usage minutes, analysis, retries of unsaved rows).
/// (The structure the daemon had before it was written once; a single task
/// that slept until the next event or due step was tried and measured no
/// better.)
public final class EngineLoop: Sendable {
    /// What the loop drives: the engine's `handle` and `tick` (a test may drive a stand-in).
    private let handle: @Sendable (WatcherEvent) async -> Void
    private let tick: @Sendable () async -> Duration
    public let queue: ObservationQueue
    /// How often the timers run. A ladder step that is due stays due until a
    /// fresh observation confirms it (`tick` asks the watcher for one).
    public let spacing: Duration
    private let instruments: Instruments?
    /// When the last `tick` returned (timers ran, the engine answered).
    private let lastTickDone = Mutex<ContinuousClock.Instant?>(nil)

    /// When the engine last finished a tick; nil before the first. The service
    /// watchdog pings only while this keeps moving (see `WatchdogGate`).
    public var lastTick: ContinuousClock.Instant? { lastTickDone.withLock { $0 } }

    /// Hooks for benchmarks: when each event was taken off the queue and
    /// handled, and how long each `tick` took: from the call to its return
    /// (with the wait for the engine), and its own work.
    public struct Instruments: Sendable {
        public var handled: @Sendable (WatcherEvent, _ dequeued: ContinuousClock.Instant, _ done: ContinuousClock.Instant) -> Void
        public var ticked: @Sendable (_ started: ContinuousClock.Instant, _ done: ContinuousClock.Instant, _ work: Duration) -> Void

        public init(
            handled: @escaping @Sendable (WatcherEvent, ContinuousClock.Instant, ContinuousClock.Instant) -> Void,
            ticked: @escaping @Sendable (ContinuousClock.Instant, ContinuousClock.Instant, Duration) -> Void
        ) {
            self.handled = handled
            self.ticked = ticked
        }
    }

    public init(
        engine: Engine, queue: ObservationQueue = ObservationQueue(), spacing: Duration = .milliseconds(200),
        instruments: Instruments? = nil
    ) {
        handle = { await engine.handle($0) }
        tick = { await engine.tick() }
        self.queue = queue
        self.spacing = spacing
        self.instruments = instruments
    }

    /// A loop over a stand-in for the engine (tests: an engine whose tick never returns).
    public init(
        handle: @escaping @Sendable (WatcherEvent) async -> Void, tick: @escaping @Sendable () async -> Duration,
        spacing: Duration = .milliseconds(200)
    ) {
        self.handle = handle
        self.tick = tick
        queue = ObservationQueue()
        self.spacing = spacing
        instruments = nil
    }

    /// Runs until `stop` (or the calling task is cancelled); events queued
    /// before `stop` are handled first.
    public func run() async {
        let handle = handle
        let tick = tick
        let queue = queue
        let spacing = spacing
        let instruments = instruments
        await withTaskGroup(of: Void.self) { group in
            // Both loops run above the API's requests (default priority): the
            // engine's actor takes its waiting jobs highest priority first, so
            // a crossing does not queue behind a burst of launches or lists.
            group.addTask(priority: .high) {
                while var event = await queue.next() {
                    let dequeued = ContinuousClock.now
                    if case .observation(var observation) = event {
                        observation.dequeuedAt = dequeued
                        event = .observation(observation)
                    }
                    await handle(event)
                    instruments?.handled(event, dequeued, .now)
                }
            }
            group.addTask(priority: .high) { [self] in
                while !Task.isCancelled {
                    let started = ContinuousClock.now
                    let work = await tick()
                    let done = ContinuousClock.now
                    self.lastTickDone.withLock { $0 = done }
                    instruments?.ticked(started, done, work)
                    do { try await Task.sleep(for: spacing) } catch { return }
                }
            }
            // The queue finished (stop) or the task was cancelled: the timers end too.
            await group.next()
            group.cancelAll()
        }
    }

    /// Ends `run` once what is queued has been handled.
    public func stop() { queue.finish() }

    /// The cgroup watcher wired the one way: its events go to this loop's queue (after
    /// `tap`, a benchmark's look at each), and it is connected to `engine` as its
    /// `AgentWatching`. Not started: the caller starts it once the engine has its agents.
    /// Throws when the process is out of inotify instances or descriptors.
    public func watcher(
        for engine: Engine, filesystem: any CgroupFilesystem, sampling: Duration,
        tap: (@Sendable (WatcherEvent) -> Void)? = nil
    ) async throws(CgroupError) -> CgroupWatcher {
        let queue = queue
        let watcher = try CgroupWatcher(
            filesystem: filesystem, configuration: CgroupWatcher.Configuration(samplingInterval: sampling), clock: Engine.wallClock
        ) { event in
            tap?(event)
            queue.push(event)
        }
        await engine.connect(WatcherBridge(watcher: watcher, deliver: { queue.push($0) }))
        return watcher
    }
}

/// Whether the engine is making progress, for systemd's watchdog: the ladder's
/// tick must have completed within `tickLimit`, and the watcher's loop gone
/// round within `watcherLimit` (its sampling interval plus slack). A wedged
/// engine or watcher stops the pings, and systemd restarts the daemon.
public struct WatchdogGate: Sendable, Equatable {
    public var tickLimit: Duration
    public var watcherLimit: Duration

    /// Limits for a watchdog of `interval` (WATCHDOG_USEC) and the watcher's sampling interval.
    public init(watchdog interval: Duration, sampling: Duration) {
        tickLimit = interval / 2
        watcherLimit = sampling + interval / 2
    }

    /// nil when both made progress in time, else what is stuck.
    public func stall(
        now: ContinuousClock.Instant, lastTick: ContinuousClock.Instant?, lastWatcherRound: ContinuousClock.Instant?,
        startedAt: ContinuousClock.Instant
    ) -> String? {
        let tickAge = lastTick.map { $0.duration(to: now) } ?? startedAt.duration(to: now)
        if tickAge > tickLimit { return "the engine has not completed a tick for \(tickAge.components.seconds) s" }
        let watcherAge = lastWatcherRound.map { $0.duration(to: now) } ?? startedAt.duration(to: now)
        if watcherAge > watcherLimit {
            return "the watcher's loop has not gone round for \(watcherAge.components.seconds) s"
        }
        return nil
    }
}
