import CorralCore
public import CorralWatcher

/// The engine's one runtime loop, the same for `corrald`, the engine embedded
/// in `corral run` and the benchmarks: hands the watcher's events to the
/// engine, most urgent first (`ObservationQueue`), and runs its timers. It
/// sleeps until the next event or until something is due — a delayed ladder
/// step, the end of a termination's grace — and runs the timers at least
/// every `idle` (usage minutes, analysis, retries of unsaved rows) and at
/// most every `spacing`.
public final class EngineLoop: Sendable {
    public let engine: Engine
    public let queue: ObservationQueue
    /// The longest the loop waits without running the engine's timers.
    public let idle: Duration
    /// The shortest time between two runs of the timers. A ladder step that
    /// is due stays due until a fresh observation confirms it, and `tick`
    /// asks the watcher for one: without a spacing the loop would tick
    /// after every event while any step is due, and the events would wait.
    public let spacing: Duration
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

    public init(
        engine: Engine, queue: ObservationQueue = ObservationQueue(), idle: Duration = .seconds(1), spacing: Duration = .milliseconds(200),
        instruments: Instruments? = nil
    ) {
        self.engine = engine
        self.queue = queue
        self.idle = idle
        self.spacing = spacing
        self.instruments = instruments
    }

    /// Runs until `stop` (or the calling task is cancelled); events queued
    /// before `stop` are handled first.
    public func run() async {
        await Self.drive(self, on: engine)
    }

    /// The loop itself, on the engine's own executor: an event is handed
    /// to the engine where its wait resumes, on the engine's thread, with no
    /// hop to the cooperative pool and back for each one. While it waits,
    /// the engine serves the API.
    private static func drive(_ loop: EngineLoop, on engine: isolated Engine) async {
        let queue = loop.queue
        let instruments = loop.instruments
        engine.onScheduleChange { queue.wake() }
        var deadline = ContinuousClock.now
        var lastTick = ContinuousClock.now - loop.spacing
        while true {
            if ContinuousClock.now >= deadline {
                let started = ContinuousClock.now
                let due = engine.tick()
                let done = ContinuousClock.now
                instruments?.ticked(started, done)
                lastTick = started
                deadline = loop.deadline(for: due, from: done, lastTick: lastTick)
            }
            switch await queue.next(until: deadline) {
            case .event(let event):
                let dequeued = ContinuousClock.now
                let due = engine.handle(event)
                let done = ContinuousClock.now
                instruments?.handled(event, dequeued, done)
                deadline = min(deadline, loop.deadline(for: due, from: done, lastTick: lastTick))
            case .timedOut:
                continue
            case .woken:
                deadline = max(ContinuousClock.now, lastTick + loop.spacing)  // the timers run (soon) and say when next
            case .finished:
                return
            }
        }
    }

    /// Ends `run` once what is queued has been handled.
    public func stop() { queue.finish() }

    /// The monotonic moment for the engine's `due` (wall clock): at most
    /// `idle` from `now`, at least `spacing` after the last tick.
    private func deadline(
        for due: Timestamp?, from now: ContinuousClock.Instant, lastTick: ContinuousClock.Instant
    ) -> ContinuousClock.Instant {
        let earliest = lastTick + spacing
        let latest = now + idle
        guard let due else { return max(earliest, latest) }
        let wait = due - engine.clock()
        return max(earliest, min(latest, now + max(wait, .zero)))
    }
}
