public import CorralCore

/// A report on agents' usage over a window (`corral report`).
public struct UsageReport: Codable, Equatable, Sendable {
    public var generatedAt: Timestamp
    public var since: Timestamp
    public var agents: [AgentReport]

    public init(generatedAt: Timestamp, since: Timestamp, agents: [AgentReport]) {
        self.generatedAt = generatedAt
        self.since = since
        self.agents = agents
    }
}

public struct AgentReport: Codable, Equatable, Sendable {
    public var agent: String
    public var group: String
    public var state: AgentState
    public var resources: [ResourceReport]
    /// Enforcement actions in the window, by action.
    public var actions: [String: Int]
    /// Each enforcement action in the window (chart markers).
    public var events: [ReportEvent]
    public var recommendations: [Recommendation]

    public init(
        agent: String, group: String, state: AgentState, resources: [ResourceReport], actions: [String: Int], events: [ReportEvent],
        recommendations: [Recommendation]
    ) {
        self.agent = agent
        self.group = group
        self.state = state
        self.resources = resources
        self.actions = actions
        self.events = events
        self.recommendations = recommendations
    }
}

public struct ResourceReport: Codable, Equatable, Sendable {
    public var resource: Resource
    public var unit: ResourceUnit
    public var soft: Double
    public var hard: Double
    public var statistics: SeriesStatistics
    public var pattern: UsagePattern
    public var confidence: Double
    public var secondsOverSoft: Double
    public var secondsOverHard: Double
    /// Where the figures come from: the in-memory samples or the minute history.
    public var source: String
    /// At most ~240 points for a chart (the peak of each stretch).
    public var points: [ReportPoint]

    public init(
        resource: Resource, unit: ResourceUnit, soft: Double, hard: Double, statistics: SeriesStatistics, pattern: UsagePattern,
        confidence: Double, secondsOverSoft: Double, secondsOverHard: Double, source: String, points: [ReportPoint]
    ) {
        self.resource = resource
        self.unit = unit
        self.soft = soft
        self.hard = hard
        self.statistics = statistics
        self.pattern = pattern
        self.confidence = confidence
        self.secondsOverSoft = secondsOverSoft
        self.secondsOverHard = secondsOverHard
        self.source = source
        self.points = points
    }
}

public struct ReportPoint: Codable, Equatable, Sendable {
    public var at: Timestamp
    public var value: Double

    public init(at: Timestamp, value: Double) {
        self.at = at
        self.value = value
    }
}

public struct ReportEvent: Codable, Equatable, Sendable {
    public var at: Timestamp
    public var resource: Resource
    public var action: EnforcementAction
    public var succeeded: Bool

    public init(at: Timestamp, resource: Resource, action: EnforcementAction, succeeded: Bool) {
        self.at = at
        self.resource = resource
        self.action = action
        self.succeeded = succeeded
    }
}
