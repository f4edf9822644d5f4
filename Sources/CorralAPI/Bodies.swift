public import CorralCore

// The bodies of the API's requests and responses (openapi/corral.yaml), shared
// by the server, the CLI and CorralClient. JSON keys are the snake_case of the
// property names (`APIJSON`).

// MARK: Requests

/// `POST /v1/agents`: start a command as a new agent.
public struct LaunchRequest: Codable, Equatable, Sendable {
    public var id: String?
    public var group: String?
    public var command: [String]
    public var environment: [String: String]?
    public var workingDirectory: String?
    public var limits: [Resource: LimitOverride]?
    /// Run as this user instead of the group's (name or uid).
    public var user: String?
    /// A seccomp profile instead of the group's: default, strict or none.
    public var seccomp: String?
    /// 0 (least) … 10 (most) instead of the group's.
    public var priority: Int?

    public init(
        id: String? = nil, group: String? = nil, command: [String], environment: [String: String]? = nil,
        workingDirectory: String? = nil, limits: [Resource: LimitOverride]? = nil, user: String? = nil, seccomp: String? = nil,
        priority: Int? = nil
    ) {
        self.priority = priority
        self.user = user
        self.seccomp = seccomp
        self.id = id
        self.group = group
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.limits = limits
    }
}

/// `POST /v1/agents/register`: a cgroup for a process the caller starts itself.
public struct RegisterRequest: Codable, Sendable {
    public var id: String?
    public var group: String?
    public var command: [String]
    public var limits: [Resource: LimitOverride]?
    public var user: String?
    public var seccomp: String?
    public var priority: Int?

    public init(
        id: String?, group: String?, command: [String], limits: [Resource: LimitOverride]?, user: String? = nil, seccomp: String? = nil,
        priority: Int? = nil
    ) {
        self.priority = priority
        self.user = user
        self.seccomp = seccomp
        self.id = id
        self.group = group
        self.command = command
        self.limits = limits
    }
}

/// `POST /v1/agents/adopt`: move a running process into a new agent.
public struct AdoptRequest: Codable, Sendable {
    public var pid: Int32
    public var id: String?
    public var group: String?

    public init(pid: Int32, id: String?, group: String?) {
        self.pid = pid
        self.id = id
        self.group = group
    }
}

/// `POST /v1/agents/{id}/attach`: the registered agent's process runs.
public struct AttachRequest: Codable, Sendable {
    public var pid: Int32

    public init(pid: Int32) { self.pid = pid }
}

/// `POST /v1/agents/{id}/finished`: the registered agent's process ended.
public struct FinishedRequest: Codable, Sendable {
    public var exitStatus: Int32?
    public var reason: String?
    /// The process that ran, for an agent never attached (`corral run` attaches
    /// only a command that is still running after a moment).
    public var pid: Int32?

    public init(exitStatus: Int32?, reason: String?, pid: Int32? = nil) {
        self.exitStatus = exitStatus
        self.reason = reason
        self.pid = pid
    }
}

/// `PUT /v1/agents/{id}/limits`: per-agent overrides.
public struct LimitsRequest: Codable, Sendable {
    public var limits: [Resource: LimitOverride]

    public init(limits: [Resource: LimitOverride]) { self.limits = limits }
}

/// `PUT /v1/agents/{id}/priority`: the agent's own priority, or null to follow its group's.
public struct PriorityRequest: Codable, Sendable {
    public var priority: Int?

    public init(priority: Int?) { self.priority = priority }

    enum CodingKeys: String, CodingKey { case priority }

    /// `priority` must be present (null included): a missing key is a mistake, not "follow the group".
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard container.contains(.priority) else {
            throw DecodingError.keyNotFound(
                CodingKeys.priority,
                DecodingError.Context(codingPath: [], debugDescription: "give priority: 0 … 10, or null to follow the group's"))
        }
        priority = try container.decodeIfPresent(Int.self, forKey: .priority)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(priority, forKey: .priority)
    }
}

/// `PATCH /v1/groups/{name}`: a group's limits and totals, live.
public struct GroupUpdateRequest: Codable, Sendable {
    public var limits: [Resource: LimitOverride]?
    public var totals: [Resource: Double]?
    /// The group's priority (its agents without their own follow it).
    public var priority: Int?

    public init(limits: [Resource: LimitOverride]?, totals: [Resource: Double]?, priority: Int? = nil) {
        self.priority = priority
        self.limits = limits
        self.totals = totals
    }
}

/// `POST /v1/agents/{id}/usage`: usage of resources without a controller.
public struct UsageRequest: Codable, Sendable {
    public var usage: [Resource: Double]

    public init(usage: [Resource: Double]) { self.usage = usage }
}

/// `POST /v1/agents/{id}/recommendations/apply`.
public struct ApplyRequest: Codable, Sendable {
    public var resource: Resource

    public init(resource: Resource) { self.resource = resource }
}

// MARK: Responses

public struct AgentList: Codable, Sendable {
    public var agents: [AgentRecord]
    /// Present when more agents follow this page: pass it as `after` for the next one.
    public var next: String?

    public init(agents: [AgentRecord], next: String? = nil) {
        self.agents = agents
        self.next = next
    }
}

public struct GroupList: Codable, Sendable {
    public var groups: [QuotaGroup]

    public init(groups: [QuotaGroup]) { self.groups = groups }
}

/// What `POST /v1/agents/{id}/finished` answers: the agent as it ended and its
/// enforcement history (the first 1,000 records), so that `corral run`'s summary
/// needs no request of its own.
public struct FinishedResponse: Codable, Sendable {
    public var agent: AgentRecord
    public var records: [EnforcementRecord]

    public init(agent: AgentRecord, records: [EnforcementRecord]) {
        self.agent = agent
        self.records = records
    }
}

public struct HistoryList: Codable, Sendable {
    public var records: [EnforcementRecord]

    public init(records: [EnforcementRecord]) { self.records = records }
}

public struct RecommendationList: Codable, Sendable {
    public var recommendations: [Recommendation]

    public init(recommendations: [Recommendation]) { self.recommendations = recommendations }
}

public struct DegradationList: Codable, Sendable {
    public var plans: [DegradationPlan]

    public init(plans: [DegradationPlan]) { self.plans = plans }
}

public struct EventList: Codable, Sendable {
    public var events: [CorralEvent]

    public init(events: [CorralEvent]) { self.events = events }
}

public struct ComplianceReport: Codable, Sendable {
    public var agent: String
    public var compliant: Bool
    public var violations: [Violation]

    public init(agent: String, compliant: Bool, violations: [Violation]) {
        self.agent = agent
        self.compliant = compliant
        self.violations = violations
    }
}

public struct Health: Codable, Sendable {
    public var status: String
    public var version: String
    public var agents: Int
    public var cgroupRoot: String
    public var socket: String
    /// What the daemon cannot do where it runs (missing capabilities, kernel features), what
    /// it does instead and the fix; empty when nothing is missing.
    public var limitations: [Limitation]
    /// Live agents by sampling cadence (adaptive sampling; all active when it is off).
    public var sampling: SamplingCounts?
    /// The state database: failing while it cannot be written.
    public var store: StoreHealth?

    public init(
        status: String, version: String, agents: Int, cgroupRoot: String, socket: String, limitations: [Limitation] = [],
        sampling: SamplingCounts? = nil, store: StoreHealth? = nil
    ) {
        self.status = status
        self.version = version
        self.agents = agents
        self.cgroupRoot = cgroupRoot
        self.socket = socket
        self.limitations = limitations
        self.sampling = sampling
        self.store = store
    }
}

/// Live agents sampled every `intervals.sampling` (active) and every `intervals.idle_sampling` (idle).
/// The state database in `/v1/health`: failing while it cannot be written.
public struct StoreHealth: Codable, Equatable, Sendable {
    public var status: String
    public var pendingRecords: Int
    public var droppedRecords: Int
    public var error: String?

    public init(status: String, pendingRecords: Int, droppedRecords: Int, error: String? = nil) {
        self.status = status
        self.pendingRecords = pendingRecords
        self.droppedRecords = droppedRecords
        self.error = error
    }
}

public struct SamplingCounts: Codable, Equatable, Sendable {
    public var active: Int
    public var idle: Int

    public init(active: Int, idle: Int) {
        self.active = active
        self.idle = idle
    }
}

/// An agent with its live usage, as the API shows it.
public struct AgentStatus: Codable, Equatable, Sendable {
    public var agent: AgentRecord
    public var usage: [Resource: Double]
    public var sample: CgroupSample?
    public var violations: [Violation]
    public var ladder: AgentLadder?
    /// Degraded resources: level, active strategies, recovery stage.
    public var degradation: [DegradationSummary]
    /// Scale-down requests awaiting their deadline.
    public var pendingRequests: [ScaleDownRequest]

    public init(
        agent: AgentRecord, usage: [Resource: Double], sample: CgroupSample?, violations: [Violation], ladder: AgentLadder?,
        degradation: [DegradationSummary] = [], pendingRequests: [ScaleDownRequest] = []
    ) {
        self.agent = agent
        self.usage = usage
        self.sample = sample
        self.violations = violations
        self.ladder = ladder
        self.degradation = degradation
        self.pendingRequests = pendingRequests
    }
}

/// Where one resource of an agent stands in degradation and recovery.
public struct DegradationSummary: Codable, Equatable, Sendable {
    public var resource: Resource
    public var level: DegradationLevel
    public var strategies: [DegradationStrategy]
    public var recoveryStage: Int
    public var since: Timestamp?

    public init(_ tracker: DegradationTracker) {
        resource = tracker.resource
        level = tracker.level
        strategies = tracker.active
        recoveryStage = tracker.recoveryStage
        since = tracker.lastChange
    }
}

/// An error response: `{"error": {"code": "...", "message": "..."}}`.
public struct ErrorBody: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var code: String
        public var message: String

        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    public var error: Detail

    public init(code: String, message: String) { error = Detail(code: code, message: message) }
}

/// A request's `user` and `seccomp` as settings on top of the group's policy.
public enum SecurityFlags {
    public static func override(user: String?, seccomp: String?) -> Result<SecurityOverride, SecurityFlagError> {
        var override = SecurityOverride()
        if let user {
            guard !user.isEmpty else { return .failure(SecurityFlagError("user is empty: give a user name or uid")) }
            override.user = user
        }
        if let seccomp {
            guard let profile = SeccompProfile(rawValue: seccomp) else {
                return .failure(
                    SecurityFlagError(
                        "unknown seccomp profile '\(seccomp)'; profiles: \(SeccompProfile.allCases.map(\.rawValue).joined(separator: ", "))"
                    ))
            }
            override.seccompBase = profile
        }
        return .success(override)
    }
}

public struct SecurityFlagError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `GET /v1/agents/{id}/denials`, `GET /v1/denials`; `POST /v1/agents/{id}/denials`
/// (the supervisor of a `corral run` reports its agent's denials).
public struct DenialList: Codable, Sendable {
    public var denials: [SyscallDenial]
    public init(denials: [SyscallDenial]) { self.denials = denials }
}
