public import CorralCore

/// Something that happened, for the event stream (Server-Sent Events) and logs.
public struct CorralEvent: Equatable, Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case agentStarted = "agent_started"
        case agentExited = "agent_exited"
        case agentRemoved = "agent_removed"
        /// A restarted daemon found the agent still running and watches it again.
        case agentReattached = "agent_reattached"
        /// Held by `admission: queue` until capacity frees (it starts with `agent_started`).
        case agentQueued = "agent_queued"
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
        /// The agent's seccomp filter refused a syscall (`denial`: name, count so far, first and last time).
        case seccompDenied = "seccomp_denied"
        /// The agent's priority (and with it cpu.weight, io.weight, memory.low) changed.
        case priorityChanged = "priority_changed"
        /// A host pressure episode started, ran out of steps, or ended (the steps themselves are `enforcement` events).
        case hostPressure = "host_pressure"
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
    /// Seccomp denials: the syscall and its tally.
    public var denial: SyscallDenial?

    public init(
        sequence: Int64 = 0, at: Timestamp, kind: Kind, agent: String?, message: String, violation: Violation? = nil,
        record: EnforcementRecord? = nil, request: ScaleDownRequest? = nil, resource: Resource? = nil, factor: Double? = nil,
        graceSeconds: Double? = nil, plan: DegradationPlan? = nil, limits: LimitSet? = nil, ack: Acknowledgement? = nil,
        denial: SyscallDenial? = nil
    ) {
        self.denial = denial
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
