public import CorralWatcher
import Synchronization

/// The watcher's events on their way to the engine, most urgent first.
///
/// The engine handles one event at a time; under load (dozens of agents at
/// their limits, each sending kernel events, beside the periodic samples of
/// every agent) a plain FIFO makes a new violation wait behind all of them.
/// Three lanes, each in order:
/// 1. lifecycle events (emptied, vanished), and kernel events from a file the
///    agent has been quiet on for the last second — a new violation starts here;
/// 2. kernel events from a file the agent is already sending them from (a
///    burst goes on), and readings the engine asked for (a due step's re-check);
/// 3. periodic samples.
///
/// A burst is told apart per agent *and file*: a fork loop's stream of
/// pids.events does not demote its first memory.events, nor does the
/// cgroup.events of an agent's start demote the memory.events of a hog that
/// crosses memory.high a moment later (which once waited ~90 ms in the second
/// lane behind twenty fork loops at 1,000 agents). A kernel event merged into
/// one of the same agent waiting in the second lane takes it to the first
/// when its own file is quiet.
///
/// An observation older than one of the same agent already handed out is
/// dropped (a sample overtaken by an event): the engine sees each agent's
/// readings in the order they were taken. Only agents' events come in (a
/// group's, and failed reads, which the next good read decides, stay out).
///
/// At most one periodic sample and one kernel event per agent wait: a newer
/// one takes the older one's place in line, keeping what the older one
/// reported that the newer one does not (a limit hit since the reading
/// before, a reading the newer one lacks) and when the watcher first woke for
/// it (the reaction is timed from there). So the lanes hold at most one entry
/// of each kind per agent however far the engine falls behind: a start of
/// hundreds of agents queued tens of thousands of samples (12 MB of them at
/// 300 agents, held afterwards as the lane's capacity), and agents held at
/// their limits, each sending kernel events several times a second, kept the
/// engine seconds behind while it handled every one of them in turn. A lane
/// that empties gives its storage back.
public final class ObservationQueue: Sendable {
    /// A FIFO that pops from the front in O(1). Positions are absolute (they
    /// stay valid across the compaction of popped items).
    struct Lane {
        /// A waiting event, and the latest moment the watcher woke for what it
        /// reports (later than the event's own `seenAt` once a newer one merged in).
        struct Entry {
            /// Nil: moved to a more urgent lane (skipped when its turn comes).
            var event: WatcherEvent?
            var latest: ContinuousClock.Instant?
            /// The kernel files (triggers) merged into it: each is in a burst once it is handed out.
            var triggers: [ObservationTrigger] = []
        }

        private var items: [Entry] = []
        private var head = 0
        /// Items removed from the front of `items` so far.
        private var base = 0

        /// Entries moved to a more urgent lane, still in `items`.
        private var moved = 0

        var isEmpty: Bool { head == items.count }
        var count: Int { items.count - head - moved }

        /// Appends `entry`; returns its position.
        @discardableResult
        mutating func append(_ entry: Entry) -> Int {
            items.append(entry)
            return base + items.count - 1
        }

        /// The entry at `position` if it is still waiting.
        func waiting(at position: Int) -> Entry? {
            let index = position - base
            return index >= head && index < items.count ? items[index] : nil
        }

        /// Puts `entry` in the place of the one waiting at `position`.
        mutating func replace(at position: Int, with entry: Entry) {
            if entry.event == nil { moved += 1 }
            items[position - base] = entry
        }

        /// The position the next `popFirst` hands out.
        var frontPosition: Int { base + head }

        mutating func popFirst() -> Entry? {
            guard head < items.count else { return nil }
            let first = items[head]
            head += 1
            if first.event == nil { moved -= 1 }
            if head == items.count {
                // Empty: the storage goes too (a new empty array holds no capacity).
                base += items.count
                items = []
                head = 0
            } else if head >= 1024, head * 2 >= items.count {
                base += head
                items = Array(items[head...])
                head = 0
            }
            return first
        }
    }

    struct State {
        var lanes = [Lane(), Lane(), Lane()]
        /// The position of each agent's waiting kernel event (in lane 0 or 1)
        /// and of its waiting sample (lane 2).
        var waitingEvent: [String: (lane: Int, position: Int)] = [:]
        var waitingSample: [String: Int] = [:]
        var waiter: CheckedContinuation<Wait, Never>?
        /// Tells a waiter's timeout from an older one's.
        var generation = 0

        var finished = false
        /// When each agent last had a kernel event handed out, by the file (trigger) that sent it.
        var lastUrgent: [String: [ObservationTrigger: ContinuousClock.Instant]] = [:]
        /// The latest wake-up behind each agent's last observation handed out.
        var lastSeen: [String: ContinuousClock.Instant] = [:]
        var dropped = 0
        /// Observations merged into one of the same agent still waiting.
        var coalesced = 0

        mutating func lane(of event: WatcherEvent, now: ContinuousClock.Instant) -> Int {
            guard case .observation(let observation) = event, let agent = observation.subject.agent else { return 0 }
            if observation.trigger == .sample { return 2 }
            // A reading the engine asked for (a due step's re-check) goes
            // behind a quiet agent's kernel event, and makes no agent busy.
            if observation.trigger == .requested { return 1 }
            let window: Duration
            if case .pressure = observation.trigger {
                window = ObservationQueue.pressureBurstWindow
            } else {
                window = ObservationQueue.burstWindow
            }
            let busy = lastUrgent[agent]?[observation.trigger].map { now - $0 < window } ?? false
            return busy ? 1 : 0
        }

        /// The samples' lane.
        static let samples = 2

        /// Appends `event` to `lane`; a sample or kernel event of an agent that
        /// has one of the same kind waiting is merged into it instead, in its place.
        mutating func enqueue(_ event: WatcherEvent, in lane: Int) {
            guard case .observation(let newer) = event, let agent = newer.subject.agent, newer.trigger != .requested else {
                lanes[lane].append(Lane.Entry(event: event))
                return
            }
            let isSample = lane == Self.samples
            let waiting = isSample ? waitingSample[agent].map { (Self.samples, $0) } : waitingEvent[agent]
            let triggers = isSample ? [] : [newer.trigger]
            if let (place, position) = waiting, let entry = lanes[place].waiting(at: position),
                case .observation(let older)? = entry.event
            {
                let merged = Lane.Entry(
                    event: .observation(older.merged(with: newer)), latest: newer.seenAt,
                    triggers: entry.triggers + triggers.filter { !entry.triggers.contains($0) })
                coalesced += 1
                if lane < place {
                    // A quiet file's event joins one waiting behind a burst: the two go ahead together.
                    lanes[place].replace(at: position, with: Lane.Entry(event: nil))
                    waitingEvent[agent] = (lane, lanes[lane].append(merged))
                } else {
                    lanes[place].replace(at: position, with: merged)
                }
                return
            }
            let position = lanes[lane].append(Lane.Entry(event: event, triggers: triggers))
            if isSample {
                waitingSample[agent] = position
            } else {
                waitingEvent[agent] = (lane, position)
            }
        }

        /// The next event to hand out, if any.
        mutating func pop(now: ContinuousClock.Instant) -> WatcherEvent? {
            for index in lanes.indices {
                while !lanes[index].isEmpty {
                    let position = lanes[index].frontPosition
                    guard let entry = lanes[index].popFirst() else { break }
                    guard let event = entry.event, let agent = event.subject.agent else { continue }
                    if index == Self.samples {
                        if waitingSample[agent] == position { waitingSample[agent] = nil }
                    } else if let waiting = waitingEvent[agent], waiting.lane == index, waiting.position == position {
                        waitingEvent[agent] = nil
                    }
                    switch event {
                    case .observation(let observation):
                        let latest = entry.latest ?? observation.seenAt
                        if let last = lastSeen[agent], latest < last {
                            dropped += 1
                            continue
                        }
                        lastSeen[agent] = latest
                        if !entry.triggers.isEmpty {
                            for trigger in entry.triggers { lastUrgent[agent, default: [:]][trigger] = now }
                        }
                    case .emptied, .vanished, .unreadable:
                        lastSeen[agent] = nil
                        lastUrgent[agent] = nil
                    }
                    return event
                }
            }
            return nil
        }
    }

    /// An agent whose kernel events from one file came within this window is in a burst.
    static let burstWindow = Duration.seconds(1)
    /// The same for a PSI trigger, which fires at most once per its window (1 s,
    /// or 2 s unprivileged) however long the stall lasts: a throttled spinner's
    /// cpu.pressure or a reclaiming hog's memory.pressure fires every window, and
    /// with a burst window no longer than that each firing looked new — forty
    /// such agents kept the first lane busy, and crossings waited behind them.
    static let pressureBurstWindow = Duration.seconds(3)

    private let state = Mutex(State())

    /// The time bursts are measured with (tests inject theirs).
    private let now: @Sendable () -> ContinuousClock.Instant

    public init(now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.now = now
    }

    /// Queues `event` (any thread; never blocks). Ignored after `finish`, and
    /// when it is not an agent's or a read failed.
    public func push(_ event: WatcherEvent) {
        if case .unreadable = event { return }
        guard event.subject.agent != nil else { return }
        let handOver: (CheckedContinuation<Wait, Never>, WatcherEvent)? = state.withLock { state in
            guard !state.finished else { return nil }
            let now = now()
            let lane = state.lane(of: event, now: now)
            state.enqueue(event, in: lane)
            guard let waiter = state.waiter, let next = state.pop(now: now) else { return nil }
            state.waiter = nil
            return (waiter, next)
        }
        if let (waiter, next) = handOver { waiter.resume(returning: .event(next)) }
    }

    /// Ends the queue: `next` returns what is left, then nil.
    public func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.lanes.allSatisfy(\.isEmpty) ? state.waiter : nil
        }
        waiter?.resume(returning: .finished)
    }

    /// What waiting for the next event ended with.
    public enum Wait: Sendable {
        case event(WatcherEvent)
        /// The deadline passed with nothing queued.
        case timedOut

        /// `finish` was called and nothing is left.
        case finished
    }

    /// The next event, waiting for one; nil once finished and empty (or the
    /// waiting task is cancelled: that finishes the queue). One consumer.
    public func next() async -> WatcherEvent? {
        if case .event(let event) = await next(until: nil) { return event }
        return nil
    }

    /// The next event, waiting for one until `deadline` (nil: for ever).
    /// Cancelling the waiting task finishes the queue. One consumer. Runs
    /// on the caller's executor (the engine's, for its loop): a pushed event
    /// resumes the wait there, with no hop through another executor.
    public func next(until deadline: ContinuousClock.Instant?, isolation: isolated (any Actor)? = #isolation) async -> Wait {
        var timer: Task<Void, Never>?
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Wait, Never>) in
                let ready: Wait? = state.withLock { state in
                    if let event = state.pop(now: now()) { return .event(event) }
                    if state.finished { return .finished }
                    if let deadline, deadline <= .now { return .timedOut }
                    state.waiter = continuation
                    state.generation += 1
                    return nil
                }
                if let ready {
                    continuation.resume(returning: ready)
                } else if let deadline {
                    let generation = state.withLock { $0.generation }
                    timer = Task { [weak self] in
                        do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
                        self?.timeOut(generation)
                    }
                }
            }
        } onCancel: {
            finish()
        }
        timer?.cancel()
        return result
    }

    /// Wakes the waiter of `generation`, if it still waits, with `.timedOut`.
    private func timeOut(_ generation: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Wait, Never>? in
            guard state.generation == generation, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: .timedOut)
    }

    /// Events waiting, by lane; observations dropped as overtaken; samples and
    /// kernel events merged into a waiting one.
    public var depth: (lanes: [Int], dropped: Int, coalesced: Int) {
        state.withLock { state in (state.lanes.map(\.count), state.dropped, state.coalesced) }
    }
}

extension Observation {
    /// This waiting observation brought up to date by a newer one of the same
    /// cgroup: the newer reading, over both intervals, with the limit hits
    /// either reported, and the older readings of resources the newer lacks
    /// (a CPU rate is carried only once its window has passed). `seenAt` and
    /// `trigger` stay the older one's: what it reports began then, with that
    /// file, and its reaction is timed from then and labelled so.
    func merged(with newer: Observation) -> Observation {
        var merged = newer
        merged.seenAt = seenAt
        merged.trigger = trigger
        merged.elapsed = elapsed + newer.elapsed
        for old in readings {
            if let index = merged.readings.firstIndex(where: { $0.resource == old.resource }) {
                merged.readings[index].hitHard = merged.readings[index].hitHard || old.hitHard
                merged.readings[index].hitSoft = merged.readings[index].hitSoft || old.hitSoft
            } else {
                merged.readings.append(old)
            }
        }
        if merged.pressure == nil { merged.pressure = pressure }
        return merged
    }
}
