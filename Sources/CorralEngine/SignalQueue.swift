import Synchronization

/// The watcher's signals on their way to the engine, most urgent first.
///
/// The engine handles one signal at a time; under load (dozens of agents at
/// their limits, each sending kernel events, beside the periodic samples of
/// every agent) a plain FIFO makes a new violation wait behind all of them.
/// Three lanes, each in order:
/// 1. lifecycle signals, and kernel events of agents quiet for the last
///    second — a new violation starts here;
/// 2. kernel events of agents already sending them (a burst goes on);
/// 3. periodic samples.
///
/// An observation older than one of the same agent already handed out is
/// dropped (a sample overtaken by an event): the engine sees each agent's
/// readings in the order they were taken.
public final class SignalQueue: Sendable {
    /// A FIFO that pops from the front in O(1).
    struct Lane {
        private var items: [WatchSignal] = []
        private var head = 0

        var isEmpty: Bool { head == items.count }
        var count: Int { items.count - head }

        mutating func append(_ signal: WatchSignal) { items.append(signal) }

        mutating func popFirst() -> WatchSignal? {
            guard head < items.count else { return nil }
            let first = items[head]
            head += 1
            if head >= 1024, head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return first
        }
    }

    struct State {
        var lanes = [Lane(), Lane(), Lane()]
        var waiter: CheckedContinuation<WatchSignal?, Never>?
        var finished = false
        /// When each agent last had an urgent signal handed out.
        var lastUrgent: [String: ContinuousClock.Instant] = [:]
        /// The `seen` of each agent's last observation handed out.
        var lastSeen: [String: ContinuousClock.Instant] = [:]
        var dropped = 0

        mutating func lane(of signal: WatchSignal, now: ContinuousClock.Instant) -> Int {
            guard case .observed(let observation) = signal else { return 0 }
            if observation.routine { return 2 }
            let busy = lastUrgent[observation.agent].map { now - $0 < SignalQueue.burstWindow } ?? false
            return busy ? 1 : 0
        }

        /// The next signal to hand out, if any.
        mutating func pop() -> WatchSignal? {
            for index in lanes.indices {
                while let signal = lanes[index].popFirst() {
                    switch signal {
                    case .observed(let observation):
                        if let last = lastSeen[observation.agent], observation.seen < last {
                            dropped += 1
                            continue
                        }
                        lastSeen[observation.agent] = observation.seen
                        if !observation.routine { lastUrgent[observation.agent] = ContinuousClock.now }
                    case .emptied(let agent), .vanished(let agent):
                        lastSeen[agent] = nil
                        lastUrgent[agent] = nil
                    }
                    return signal
                }
            }
            return nil
        }
    }

    /// An agent whose kernel events came within this window is in a burst.
    static let burstWindow = Duration.seconds(1)

    private let state = Mutex(State())

    public init() {}

    /// Queues `signal` (any thread; never blocks). Ignored after `finish`.
    public func push(_ signal: WatchSignal) {
        let handOver: (CheckedContinuation<WatchSignal?, Never>, WatchSignal)? = state.withLock { state in
            guard !state.finished else { return nil }
            let lane = state.lane(of: signal, now: .now)
            state.lanes[lane].append(signal)
            guard let waiter = state.waiter, let next = state.pop() else { return nil }
            state.waiter = nil
            return (waiter, next)
        }
        if let (waiter, next) = handOver { waiter.resume(returning: next) }
    }

    /// Ends the queue: `next` returns what is left, then nil.
    public func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.lanes.allSatisfy(\.isEmpty) ? state.waiter : nil
        }
        waiter?.resume(returning: nil)
    }

    /// The next signal, waiting for one; nil once finished and empty (or the
    /// waiting task is cancelled: that finishes the queue). One consumer.
    public func next() async -> WatchSignal? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<WatchSignal?, Never>) in
                let ready: WatchSignal?? = state.withLock { state in
                    if let signal = state.pop() { return .some(signal) }
                    if state.finished { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finish()
        }
    }

    /// Signals waiting, by lane; observations dropped as overtaken.
    public var depth: (lanes: [Int], dropped: Int) {
        state.withLock { state in (state.lanes.map(\.count), state.dropped) }
    }
}
