public import CorralCore
import Synchronization

/// Something that happened, for the event stream (Server-Sent Events) and logs.
public struct CorralEvent: Equatable, Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case agentStarted = "agent_started"
        case agentExited = "agent_exited"
        case agentRemoved = "agent_removed"
        case violation
        /// An enforcement action and its outcome (`record`).
        case enforcement
        case throttleNotice = "throttle_notice"
        case throttleRestored = "throttle_restored"
        case terminationNotice = "termination_notice"
        case scaleDownRequest = "scale_down_request"
        /// The agent is about to be frozen (sent before cgroup.freeze, with the `violation` or none when by request).
        case suspendNotice = "suspend_notice"
        /// The freeze is confirmed (cgroup.events frozen 1); a frozen agent reads it once thawed.
        case suspended
        case thawed
        case quotaChanged = "quota_changed"
        case groupChanged = "group_changed"
        case usageReported = "usage_reported"
        /// Usage climbed to a higher degradation level: the plan's strategies apply (`plan`).
        case degradationStrategy = "degradation_strategy"
        /// Recovery removed a strategy, or a relapse put one back (`plan`).
        case recoveryStage = "recovery_stage"
        /// The agent acknowledged an event (`ack`).
        case acknowledged
        /// Analytics made recommendations for the agent.
        case recommendation
        case daemon
    }

    /// Increasing within one daemon run.
    public var sequence: Int64
    public var at: Timestamp
    public var kind: Kind
    public var agent: String?
    public var message: String
    public var violation: Violation?
    public var record: EnforcementRecord?
    public var request: ScaleDownRequest?
    /// Throttle notices: the resource and the factor its limit was multiplied by.
    public var resource: Resource?
    public var factor: Double?
    /// Termination notices: seconds between SIGTERM and cgroup.kill.
    public var graceSeconds: Double?
    /// Degradation strategies and recovery stages.
    public var plan: DegradationPlan?
    /// Quota changes: the agent's limits now.
    public var limits: LimitSet?
    public var ack: Acknowledgement?

    public init(
        sequence: Int64 = 0, at: Timestamp, kind: Kind, agent: String?, message: String, violation: Violation? = nil,
        record: EnforcementRecord? = nil, request: ScaleDownRequest? = nil, resource: Resource? = nil, factor: Double? = nil,
        graceSeconds: Double? = nil, plan: DegradationPlan? = nil, limits: LimitSet? = nil, ack: Acknowledgement? = nil
    ) {
        self.resource = resource
        self.factor = factor
        self.graceSeconds = graceSeconds
        self.plan = plan
        self.limits = limits
        self.ack = ack
        self.sequence = sequence
        self.at = at
        self.kind = kind
        self.agent = agent
        self.message = message
        self.violation = violation
        self.record = record
        self.request = request
    }
}

/// An agent's answer to an event: it saw it, and what it did.
public struct Acknowledgement: Codable, Equatable, Sendable {
    /// The sequence number of the event acknowledged.
    public var sequence: Int64
    /// The event kind acknowledged (as sent).
    public var kind: String
    /// What the agent did, in its own words ("freed 24 MB", "batching at 3×").
    public var note: String?

    public init(sequence: Int64, kind: String, note: String? = nil) {
        self.sequence = sequence
        self.kind = kind
        self.note = note
    }
}

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
        let id = state.withLock { state in
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

    /// Ends every stream (shutdown).
    public func finishAll() {
        let continuations = state.withLock { state in
            let all = state.subscribers.values.map(\.continuation)
            state.subscribers.removeAll()
            return all
        }
        for continuation in continuations { continuation.finish() }
    }
}
