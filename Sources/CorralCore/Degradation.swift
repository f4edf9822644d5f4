/// Graceful degradation: how hard an agent is
/// pressing on a limit, what it is asked to shed, and the staged way back.
///
/// Pure: fed usage figures and a clock; the engine delivers what it returns.

/// How far usage is into its limit: usage / limit above 1.5 emergency,
/// above 1.2 aggressive, above 1.0 moderate, above 0.9 minimal, else none.
public enum DegradationLevel: String, Codable, CaseIterable, Comparable, Sendable, CaseHashable {
    case none
    case minimal
    case moderate
    case aggressive
    case emergency

    /// Total: a limit of zero or less, or figures that are not finite
    /// numbers, give `.none` (nothing to degrade against), never a crash.
    public init(usage: Double, limit: Double) {
        guard limit > 0, usage.isFinite, limit.isFinite else {
            self = usage == .infinity && limit > 0 ? .emergency : .none
            return
        }
        let ratio = usage / limit
        self =
            switch ratio {
            case let r where r > 1.5: .emergency
            case let r where r > 1.2: .aggressive
            case let r where r > 1.0: .moderate
            case let r where r > 0.9: .minimal
            default: .none
            }
    }

    /// The level whose strategy list has `count` entries (the lists are cumulative).
    public init(strategyCount count: Int) {
        self = Self.allCases[min(max(count, 0), Self.allCases.count - 1)]
    }

    public var rank: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }

    /// How long the agent has to reach the plan's target: the higher the level, the sooner.
    public var timeline: Duration {
        switch self {
        case .none: .zero
        case .minimal: .seconds(120)
        case .moderate: .seconds(60)
        case .aggressive: .seconds(30)
        case .emergency: .seconds(10)
        }
    }
}

/// A value in a strategy's parameters (JSON: number, string, boolean or list).
public enum ParameterValue: Codable, Equatable, Sendable {
    case number(Double)
    case string(String)
    case bool(Bool)
    case list([ParameterValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            self = .list(try container.decode([ParameterValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        }
    }

    public var number: Double? { if case .number(let value) = self { value } else { nil } }
    public var strings: [String]? {
        if case .list(let values) = self {
            values.compactMap { if case .string(let s) = $0 { s } else { nil } }
        } else {
            nil
        }
    }
}

/// What an agent is asked to do to use less: memory and cpu have four
/// strategies each; processes, files and connections start with their own.
public enum DegradationStrategy: String, Codable, CaseIterable, Sendable, CaseHashable {
    case cacheAggressively = "cache_aggressively"
    case batchOperations = "batch_operations"
    case reducePrecision = "reduce_precision"
    case dropNonEssential = "drop_non_essential"
    case useFallbackAlgorithm = "use_fallback_algorithm"
    /// Fewer workers, threads or subprocesses (processes).
    case reduceConcurrency = "reduce_concurrency"
    /// Close idle files and connections, shrink pools (files, connections).
    case releaseHandles = "release_handles"

    /// The parameters each strategy comes with (README: degradation).
    public var parameters: [String: ParameterValue] {
        switch self {
        case .reducePrecision:
            ["precision_reduction": .number(0.5), "affected_operations": .list([.string("calculations"), .string("predictions")])]
        case .cacheAggressively:
            ["cache_size_increase": .number(2.0), "cache_duration_increase": .number(5.0)]
        case .batchOperations:
            ["batch_size_increase": .number(3.0), "batch_delay_ms": .number(1000)]
        case .dropNonEssential:
            [
                "operations_to_drop": .list([
                    .string("detailed_logging"), .string("metrics_collection"), .string("optional_validations"),
                ])
            ]
        case .useFallbackAlgorithm:
            ["max_cost_factor": .number(0.5), "prefer": .string("cheapest_acceptable")]
        case .reduceConcurrency:
            ["concurrency_factor": .number(0.5)]
        case .releaseHandles:
            ["idle_seconds": .number(30), "pool_size_factor": .number(0.5)]
        }
    }

    /// Strategies for `resource` at `level`, cumulative: each level keeps the
    /// lower levels' strategies and adds one.
    public static func plan(for resource: Resource, at level: DegradationLevel) -> [DegradationStrategy] {
        Array(ladder(for: resource).prefix(level.rank))
    }

    /// The four strategies of `resource`, in the order they are added.
    public static func ladder(for resource: Resource) -> [DegradationStrategy] {
        switch resource {
        case .memory: [.cacheAggressively, .batchOperations, .reducePrecision, .dropNonEssential]
        case .cpu: [.batchOperations, .useFallbackAlgorithm, .reducePrecision, .dropNonEssential]
        case .processes: [.reduceConcurrency, .batchOperations, .dropNonEssential, .useFallbackAlgorithm]
        case .files, .connections: [.releaseHandles, .reduceConcurrency, .batchOperations, .dropNonEssential]
        case .network, .disk: [.batchOperations, .cacheAggressively, .reducePrecision, .dropNonEssential]
        }
    }
}

/// One strategy with its parameters, as delivered to the agent.
public struct StrategyInstruction: Codable, Equatable, Sendable {
    public var strategy: DegradationStrategy
    public var parameters: [String: ParameterValue]

    public init(_ strategy: DegradationStrategy) {
        self.strategy = strategy
        self.parameters = strategy.parameters
    }

    enum CodingKeys: String, CodingKey {
        case strategy, parameters
    }

    /// Parameter names are snake_case on the wire; a decoder converting keys
    /// from snake_case turns dictionary keys into camelCase too, so they are
    /// put back here.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        strategy = try container.decode(DegradationStrategy.self, forKey: .strategy)
        let decoded = try container.decode([String: ParameterValue].self, forKey: .parameters)
        parameters = Dictionary(uniqueKeysWithValues: decoded.map { (Self.snakeCase($0.key), $0.value) })
    }

    static func snakeCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}

/// What an agent is asked to do about one resource: delivered when the level
/// changes (up by pressure, down by a recovery stage, up again by a relapse).
public struct DegradationPlan: Codable, Equatable, Sendable {
    public enum Reason: String, Codable, Sendable {
        /// Usage climbed to a higher level.
        case pressure
        /// A recovery stage removed the latest strategy.
        case recovery
        /// Usage rose again during recovery: the last removed strategy is back.
        case relapse
    }

    public var agent: String
    public var resource: Resource
    public var level: DegradationLevel
    public var previousLevel: DegradationLevel
    public var reason: Reason
    /// Active strategies after this change, oldest first.
    public var strategies: [StrategyInstruction]
    public var usage: Double
    /// The soft limit the level is measured against.
    public var limit: Double
    /// Usage to get down to (the recovery threshold times the limit).
    public var targetUsage: Double
    /// The fraction of current usage to shed to reach the target (0 when already there).
    public var targetReduction: Double
    /// Seconds to reach the target.
    public var timelineSeconds: Double
    /// Recovery stages completed since the last climb (0 outside recovery).
    public var recoveryStage: Int
    public var at: Timestamp

    public init(
        agent: String, resource: Resource, level: DegradationLevel, previousLevel: DegradationLevel, reason: Reason,
        strategies: [DegradationStrategy], usage: Double, limit: Double, targetUsage: Double, recoveryStage: Int, at: Timestamp
    ) {
        self.agent = agent
        self.resource = resource
        self.level = level
        self.previousLevel = previousLevel
        self.reason = reason
        self.strategies = strategies.map(StrategyInstruction.init)
        self.usage = usage
        self.limit = limit
        self.targetUsage = targetUsage
        self.targetReduction = usage > targetUsage && usage > 0 ? (usage - targetUsage) / usage : 0
        self.timelineSeconds = Double(level.timeline.components.seconds)
        self.recoveryStage = recoveryStage
        self.at = at
    }
}

/// When recovery may take a strategy away (defaults: one stage every 30 s,
/// while usage is below 0.8 of the limit and no violation was seen for 60 s).
public struct RecoveryPolicy: Equatable, Codable, Sendable {
    public var stageInterval: Duration
    public var quietPeriod: Duration
    /// Usage / limit must stay below this.
    public var usageBelow: Double
    /// Thaw an agent the ladder suspended once all of its resources have recovered.
    public var thawSuspended: Bool

    public init(
        stageInterval: Duration = .seconds(30), quietPeriod: Duration = .seconds(60), usageBelow: Double = 0.8, thawSuspended: Bool = true
    ) {
        self.stageInterval = stageInterval
        self.quietPeriod = quietPeriod
        self.usageBelow = usageBelow
        self.thawSuspended = thawSuspended
    }

    public static let seed = RecoveryPolicy()

    enum CodingKeys: String, CodingKey {
        case stageInterval = "stage_interval"
        case quietPeriod = "quiet_period"
        case usageBelow = "usage_below"
        case thawSuspended = "thaw_suspended"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let seed = RecoveryPolicy.seed
        stageInterval = Duration.milliseconds(
            try container.decodeIfPresent(Int64.self, forKey: .stageInterval) ?? seed.stageInterval.milliseconds)
        quietPeriod = Duration.milliseconds(
            try container.decodeIfPresent(Int64.self, forKey: .quietPeriod) ?? seed.quietPeriod.milliseconds)
        usageBelow = try container.decodeIfPresent(Double.self, forKey: .usageBelow) ?? seed.usageBelow
        thawSuspended = try container.decodeIfPresent(Bool.self, forKey: .thawSuspended) ?? seed.thawSuspended
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(stageInterval.milliseconds, forKey: .stageInterval)
        try container.encode(quietPeriod.milliseconds, forKey: .quietPeriod)
        try container.encode(usageBelow, forKey: .usageBelow)
        try container.encode(thawSuspended, forKey: .thawSuspended)
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// Degradation and recovery of one resource of one agent.
///
/// Usage climbing to a higher level replaces the strategies with that
/// level's (a superset: the lists are cumulative) and cancels any recovery.
/// Once usage is below `usageBelow` × limit and no violation has been seen
/// for `quietPeriod`, recovery removes the newest strategy, one stage per
/// `stageInterval`. Usage back at or above the threshold (or a violation)
/// during recovery is a relapse: it rolls back to the previous stage, once;
/// no further rollback until usage has fallen below the threshold and risen
/// again (a climb across a level boundary still raises the level). Levels
/// only fall through recovery, so an agent that relieved pressure keeps its
/// strategies until it has stayed quiet.
public struct DegradationTracker: Equatable, Codable, Sendable {
    public let resource: Resource
    public private(set) var level: DegradationLevel = .none
    /// Active strategies, oldest first.
    public private(set) var active: [DegradationStrategy] = []
    /// Strategies recovery took away, newest last (a relapse restores the last one).
    public private(set) var removed: [DegradationStrategy] = []
    public private(set) var lastViolation: Timestamp?
    /// The last level change (climb, stage or rollback) and why.
    public private(set) var lastChange: Timestamp?
    public private(set) var lastReason: DegradationPlan.Reason?
    /// A relapse rolled a stage back and usage has not fallen below the
    /// threshold since: no further rollback until it has (nil: none held,
    /// also in states saved before this existed).
    public private(set) var relapseHeld: Bool?

    public init(resource: Resource) {
        self.resource = resource
    }

    /// Recovery stages completed since the last climb.
    public var recoveryStage: Int { removed.count }

    /// Feeds one usage figure against `limit` (the soft limit); returns the
    /// plan to deliver when the level changed.
    public mutating func observe(
        agent: String, usage: Double, limit: Double, violating: Bool, at now: Timestamp, policy: RecoveryPolicy
    ) -> DegradationPlan? {
        guard limit > 0, usage.isFinite, usage >= 0 else { return nil }
        let measured = DegradationLevel(usage: usage, limit: limit)
        let pressing = violating || usage > limit
        if pressing { lastViolation = now }
        let above = usage >= limit * policy.usageBelow || pressing
        // Back below the threshold: the next rise may relapse again.
        if !above { relapseHeld = nil }
        let previous = level
        let reason: DegradationPlan.Reason

        if measured > level {
            active = DegradationStrategy.plan(for: resource, at: measured)
            removed = []
            level = measured
            relapseHeld = nil
            reason = .pressure
        } else if level == .none {
            return nil
        } else if !removed.isEmpty, above {
            // One relapse rolls back one stage; staying up does not roll back further.
            if relapseHeld == true { return nil }
            active.append(removed.removeLast())
            level = DegradationLevel(strategyCount: active.count)
            relapseHeld = true
            reason = .relapse
        } else if usage < limit * policy.usageBelow, !pressing,
            lastViolation.map({ now - $0 >= policy.quietPeriod }) ?? true,
            lastChange.map({ now - $0 >= policy.stageInterval }) ?? true
        {
            removed.append(active.removeLast())
            level = DegradationLevel(strategyCount: active.count)
            reason = .recovery
        } else {
            return nil
        }
        lastChange = now
        lastReason = reason
        let stage = removed.count
        if level == .none { removed = [] }
        return DegradationPlan(
            agent: agent, resource: resource, level: level, previousLevel: previous, reason: reason, strategies: active, usage: usage,
            limit: limit, targetUsage: limit * policy.usageBelow, recoveryStage: stage, at: now)
    }
}
