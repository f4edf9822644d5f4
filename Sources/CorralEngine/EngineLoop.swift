import CorralCore
public import CorralWatcher

/// The engine's one runtime loop, the same for `corrald`, the engine embedded
/// in `corral run` and the benchmarks: one task hands the watcher's events to
/// the engine, most urgent first (`ObservationQueue`); another runs its timers
/// every `spacing` (delayed ladder steps, the end of a termination's grace,
/// usage minutes, analysis, retries of unsaved rows).
/// (The structure the daemon had before it was written once; a single task
/// that slept until the next event or due step was tried and measured no
/// better.)
public final class EngineLoop: Sendable {
    public let engine: Engine
    public let queue: ObservationQueue
    /// How often the timers run. A ladder step that is due stays due until a
    /// fresh observation confirms it (`tick` asks the watcher for one).
    public let spacing: Duration
    private let instruments: Instruments?

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
        self.engine = engine
        self.queue = queue
        self.spacing = spacing
        self.instruments = instruments
    }

    /// Runs until `stop` (or the calling task is cancelled); events queued
    /// before `stop` are handled first.
    public func run() async {
        let engine = engine
        let queue = queue
        let spacing = spacing
        let instruments = instruments
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while let event = await queue.next() {
                    let dequeued = ContinuousClock.now
                    await engine.handle(event)
                    instruments?.handled(event, dequeued, .now)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    let started = ContinuousClock.now
                    let work = await engine.tick()
                    instruments?.ticked(started, .now, work)
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
}
