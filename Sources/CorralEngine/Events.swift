public import CorralAPI
import Synchronization

/// Fans events out to subscribers; a slow subscriber loses the oldest events
/// beyond its buffer instead of slowing the engine.
public final class EventHub: Sendable {
    private struct Subscriber {
        /// nil: every agent's events.
        var agent: String?
        /// The agent itself follows its stream (not an operator watching it).
        var isListener: Bool
        var continuation: AsyncStream<CorralEvent>.Continuation
    }

    private struct State {
        var next: Int64 = 1
        var subscribers: [Int: Subscriber] = [:]
        var nextSubscriber = 0
        var recent: [CorralEvent] = []
        /// `finishAll` was called: new streams end at once.
        var closed = false
    }

    private let state = Mutex(State())
    private let bufferSize: Int
    private let recentSize: Int

    public init(bufferSize: Int = 1024, recentSize: Int = 256) {
        self.bufferSize = bufferSize
        self.recentSize = recentSize
    }

    /// Publishes `event` (its sequence number is assigned here) and returns it.
    @discardableResult
    public func publish(_ event: CorralEvent) -> CorralEvent {
        state.withLock { state in
            var event = event
            event.sequence = state.next
            state.next += 1
            state.recent.append(event)
            if state.recent.count > recentSize { state.recent.removeFirst(state.recent.count - recentSize) }
            for (_, subscriber) in state.subscribers where subscriber.agent == nil || subscriber.agent == event.agent {
                subscriber.continuation.yield(event)
            }
            return event
        }
    }

    /// Events from now on (after the recent ones with a sequence above `after`), for `agent` or all.
    /// `isListener`: the subscriber is the agent's own process (counted by `listenerCount`).
    public func subscribe(agent: String?, after: Int64? = nil, isListener: Bool = false) -> AsyncStream<CorralEvent> {
        let (stream, continuation) = AsyncStream<CorralEvent>.makeStream(bufferingPolicy: .bufferingNewest(bufferSize))
        let id = state.withLock { state -> Int? in
            if state.closed { return nil }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            if let after {
                for event in state.recent where event.sequence > after && (agent == nil || event.agent == agent) {
                    continuation.yield(event)
                }
            }
            state.subscribers[id] = Subscriber(agent: agent, isListener: isListener && agent != nil, continuation: continuation)
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// How many streams `agent` itself follows right now: with none it has no
    /// listener, and signals are its only notice.
    public func listenerCount(agent: String) -> Int {
        state.withLock { $0.subscribers.values.count { $0.isListener && $0.agent == agent } }
    }

    /// The last events kept in memory (for `GET /v1/events/recent`).
    public func recent(agent: String?) -> [CorralEvent] {
        state.withLock { $0.recent.filter { agent == nil || $0.agent == agent } }
    }

    /// Ends every stream and refuses new ones (shutdown).
    public func finishAll() {
        let continuations = state.withLock { state in
            state.closed = true
            let all = state.subscribers.values.map(\.continuation)
            state.subscribers.removeAll()
            return all
        }
        for continuation in continuations { continuation.finish() }
    }
}
