import CorralCore
public import CorralWatcher

/// The engine's one runtime loop, the same for `corrald`, the engine embedded
/// in `corral run` and the benchmarks: hands the watcher's events to the
/// engine, most urgent first (`ObservationQueue`), and runs its timers. It
/// sleeps until the next event or until something is due — a delayed ladder
/// step, the end of a termination's grace — and at least every `idle` (usage
/// minutes, analysis, retries of unsaved rows).
public final class EngineLoop: Sendable {
    public let engine: Engine
    public let queue: ObservationQueue
    /// The longest the loop waits without running the engine's timers.
    public let idle: Duration
    private let instruments: Instruments?

    /// Hooks for benchmarks: when each event was taken off the queue and
    /// handled, and how long each `tick` took.
    public struct Instruments: Sendable {
        public var handled: @Sendable (WatcherEvent, _ dequeued: ContinuousClock.Instant, _ done: ContinuousClock.Instant) -> Void
        public var ticked: @Sendable (_ started: ContinuousClock.Instant, _ done: ContinuousClock.Instant) -> Void

        public init(
            handled: @escaping @Sendable (WatcherEvent, ContinuousClock.Instant, ContinuousClock.Instant) -> Void,
            ticked: @escaping @Sendable (ContinuousClock.Instant, ContinuousClock.Instant) -> Void
        ) {
            self.handled = handled
            self.ticked = ticked
        }
    }

    public init(engine: Engine, queue: ObservationQueue = ObservationQueue(), idle: Duration = .seconds(1), instruments: Instruments? = nil)
    {
        self.engine = engine
        self.queue = queue
        self.idle = idle
        self.instruments = instruments
    }

    /// Runs until `stop` (or the calling task is cancelled); events queued
    /// before `stop` are handled first.
    public func run() async {
        let queue = queue
        await engine.onScheduleChange { queue.wake() }
        var deadline = ContinuousClock.now
        while true {
            if ContinuousClock.now >= deadline {
                let started = ContinuousClock.now
                let due = await engine.tick()
                let done = ContinuousClock.now
                instruments?.ticked(started, done)
                deadline = self.deadline(for: due, from: done)
            }
            switch await queue.next(until: deadline) {
            case .event(let event):
                let dequeued = ContinuousClock.now
                let due = await engine.handle(event)
                let done = ContinuousClock.now
                instruments?.handled(event, dequeued, done)
                deadline = min(deadline, self.deadline(for: due, from: done))
            case .timedOut:
                continue
            case .woken:
                deadline = ContinuousClock.now  // the timers run now and say when next
            case .finished:
                return
            }
        }
    }

    /// Ends `run` once what is queued has been handled.
    public func stop() { queue.finish() }

    /// The monotonic moment for the engine's `due` (wall clock), capped at `idle` from `now`.
    private func deadline(for due: Timestamp?, from now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let latest = now + idle
        guard let due else { return latest }
        let wait = due - engine.clock()
        return wait <= .zero ? now : min(latest, now + wait)
    }
}
