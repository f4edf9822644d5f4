#if canImport(Glibc)
    import Glibc  // log, pow
#endif

/// Quota recommendations (increase, decrease, optimize code, change group;
/// each agent's own, never another's), with percentile sizing in the spirit
/// of Kubernetes' VPA recommender). Pure: fed a usage series per resource and the limits.

/// Usage samples in exponentially growing buckets whose weights decay with
/// age (VPA's decaying histogram): recent usage counts more.
public struct DecayingHistogram: Equatable, Sendable {
    /// Bucket i covers [first × ratio^i, first × ratio^(i+1)); bucket 0 also everything below.
    public let first: Double
    public let ratio: Double
    public private(set) var weights: [Double]
    public private(set) var total: Double = 0
    /// 1 / ln(ratio): one logarithm per added value instead of two.
    private let perLogRatio: Double

    public init(first: Double = 1, ratio: Double = 1.05, buckets: Int = 600) {
        self.first = first
        self.ratio = ratio
        perLogRatio = 1 / log(ratio)
        weights = [Double](repeating: 0, count: buckets)
    }

    /// Adds `value` with `weight`.
    public mutating func add(_ value: Double, weight: Double) {
        guard value.isFinite, weight > 0 else { return }
        let index = value <= first ? 0 : min(weights.count - 1, Int(log(value / first) * perLogRatio) + 1)
        weights[index] += weight
        total += weight
    }

    /// The upper bound of the bucket holding the `p` quantile (0 when empty).
    public func percentile(_ p: Double) -> Double {
        guard total > 0 else { return 0 }
        var seen = 0.0
        for (index, weight) in weights.enumerated() {
            seen += weight
            if seen >= p * total { return first * pow(ratio, Double(index)) }
        }
        return first * pow(ratio, Double(weights.count))
    }

    /// A histogram of `values` sampled every `interval`, the newest last,
    /// weights halving every `halfLife` back from the newest. Like VPA's
    /// memory histogram it takes the peak of each `peakOf` consecutive
    /// samples (sizing follows peaks, and it is 10× less work).
    public static func of(_ values: [Double], interval: Duration, halfLife: Duration, first: Double, peakOf: Int = 10)
        -> DecayingHistogram
    {
        var histogram = DecayingHistogram(first: max(first, 1e-9))
        let chunk = max(1, peakOf)
        let step = interval.seconds * Double(chunk) / max(halfLife.seconds, 1e-9)
        let chunks = (values.count + chunk - 1) / chunk
        // 2^(-age/halfLife), computed incrementally from the oldest.
        let factor = pow(2, step)
        var weight = pow(2, -step * Double(max(chunks - 1, 0)))
        var start = 0
        while start < values.count {
            let end = min(start + chunk, values.count)
            var peak = values[start]
            for i in start..<end { peak = max(peak, values[i]) }
            histogram.add(peak, weight: weight)
            weight *= factor
            start = end
        }
        return histogram
    }
}

/// What Corral suggests about one resource of one agent.
public struct Recommendation: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        case increaseQuota = "increase_quota"
        case decreaseQuota = "decrease_quota"
        case optimizeCode = "optimize_code"
        case changeGroup = "change_group"
    }

    public var agent: String
    public var resource: Resource
    public var kind: Kind
    /// The limits now.
    public var current: ResourceLimit
    /// New soft and hard limits (increase, decrease); nil for the others.
    public var suggested: ResourceLimit?
    /// The group that fits (change_group).
    public var group: String?
    /// The usage figure the sizing is based on (the decaying P90 plus margin).
    public var target: Double?
    public var pattern: UsagePattern
    public var confidence: Double
    public var rationale: String
    public var at: Timestamp

    public init(
        agent: String, resource: Resource, kind: Kind, current: ResourceLimit, suggested: ResourceLimit? = nil, group: String? = nil,
        target: Double? = nil, pattern: UsagePattern, confidence: Double, rationale: String, at: Timestamp
    ) {
        self.agent = agent
        self.resource = resource
        self.kind = kind
        self.current = current
        self.suggested = suggested
        self.group = group
        self.target = target
        self.pattern = pattern
        self.confidence = confidence
        self.rationale = rationale
        self.at = at
    }
}

/// The usage of one resource over the analysed window.
public struct ResourceUsage: Sendable {
    public var resource: Resource
    /// Samples, oldest first.
    public var values: [Double]
    public var interval: Duration
    /// Times the kernel stopped the agent at its hard limit in the window,
    /// from its counters' increases: memory.events max + oom_kill for
    /// memory, pids.events max for processes. Ignored for other resources
    /// (CPU throttling is cpu.max doing its job, not a sign the limit is too small).
    public var hardLimitEvents: Int
    /// The series' classification, when the caller has it already.
    public var analysis: PatternAnalysis?

    public init(resource: Resource, values: [Double], interval: Duration, hardLimitEvents: Int = 0, analysis: PatternAnalysis? = nil) {
        self.resource = resource
        self.values = values
        self.interval = interval
        self.hardLimitEvents = hardLimitEvents
        self.analysis = analysis
    }
}

public enum Recommender {
    /// Sizing: the decaying P90 plus this margin (VPA: 15%).
    public static let safetyMargin = 0.15
    /// Sizing weights halve every this (VPA: 24 h; our window is an hour).
    public static let halfLife = Duration.seconds(1800)
    /// After a hard-limit event the target is at least the hard limit times this (VPA: +20% after an OOM).
    public static let bumpAfterHardLimit = 1.2
    /// The resources whose kernel hard-limit events bump the target: OOM kills
    /// and memory.max hits, forks refused at pids.max.
    public static let bumpedResources: Set<Resource> = [.memory, .processes]
    /// Increase when growing faster than this over the window …
    public static let growthThreshold = 0.2
    /// … decrease when steady and using under this share of the quota.
    public static let idleShare = 0.3

    /// Recommendations for one agent in `group`, from its usage per resource.
    /// Resources without a limit or with too few samples get none.
    public static func recommend(
        agent: String, group: String, limits: LimitSet, usage: [ResourceUsage], groups: [QuotaGroup], at now: Timestamp
    ) -> [Recommendation] {
        var recommendations: [Recommendation] = []
        var targets: [Resource: Double] = [:]
        var analyses: [Resource: PatternAnalysis] = [:]
        for series in usage.sorted(by: { $0.resource < $1.resource }) {
            guard let limit = limits[series.resource], series.values.count >= PatternClassifier.minimumSamples else { continue }
            let analysis = series.analysis ?? PatternClassifier.analyze(series.values, interval: series.interval)
            analyses[series.resource] = analysis
            let unit = series.resource.unit
            let histogram = DecayingHistogram.of(
                series.values, interval: series.interval, halfLife: halfLife, first: max(limit.soft / 1000, 1e-3))
            var target = histogram.percentile(0.9) * (1 + safetyMargin)
            var bumped = false
            let hardLimitEvents = bumpedResources.contains(series.resource) ? series.hardLimitEvents : 0
            if hardLimitEvents > 0 {
                bumped = target < limit.hard * bumpAfterHardLimit
                target = max(target, limit.hard * bumpAfterHardLimit)
            }
            targets[series.resource] = max(target, analysis.statistics.p99 * (1 + safetyMargin))
            let ratio = limit.hard / max(limit.soft, 1e-9)
            func sized(_ soft: Double) -> ResourceLimit {
                var suggested = limit
                suggested.soft = max(Self.rounded(soft, unit: unit), Self.floor(for: unit))
                suggested.hard = Self.rounded(max(suggested.soft * ratio, analysis.statistics.maximum * (1 + safetyMargin)), unit: unit)
                if let burst = limit.burst { suggested.burst = max(burst, suggested.soft) }
                return suggested
            }
            let share = analysis.statistics.mean / max(limit.hard, 1e-9)
            let p90 = unit.format(histogram.percentile(0.9))
            func make(_ kind: Recommendation.Kind, _ suggested: ResourceLimit?, _ confidence: Double, _ rationale: String) {
                recommendations.append(
                    Recommendation(
                        agent: agent, resource: series.resource, kind: kind, current: limit, suggested: suggested, target: target,
                        pattern: analysis.pattern, confidence: min(1, max(0, confidence)), rationale: rationale, at: now))
            }
            if bumped || target > limit.soft && (analysis.pattern == .growing || hardLimitEvents > 0) {
                let growth = Int((analysis.trendOverWindow * 100).rounded())
                let events = series.resource == .memory ? "memory.max hits and OOM kills" : "forks refused at pids.max"
                let why =
                    hardLimitEvents > 0
                    ? "the kernel stopped it at its hard limit \(hardLimitEvents)× in the window (\(events)): at least \(Int(bumpAfterHardLimit * 100))% of the hard limit"
                    : "growing \(growth)% over the window (\(Quantity.formatDecimal(analysis.trendPerMinute * 100, places: 2))% of the mean per minute)"
                make(
                    .increaseQuota, sized(max(target, limit.soft)), hardLimitEvents > 0 ? 0.9 : analysis.confidence,
                    "\(why); decaying P90 \(p90) + \(Int(safetyMargin * 100))% → soft \(unit.format(max(target, limit.soft)))")
            } else if analysis.pattern == .growing && analysis.trendOverWindow > growthThreshold {
                make(
                    .increaseQuota, sized(max(target, limit.soft * (1 + analysis.trendOverWindow))), analysis.confidence,
                    "growing \(Int((analysis.trendOverWindow * 100).rounded()))% over the window: room for the next one")
            } else if analysis.pattern == .steady && share < idleShare && sized(target).soft < limit.soft {
                make(
                    .decreaseQuota, sized(target), analysis.confidence,
                    "steady at \(Int((share * 100).rounded()))% of its hard limit (under \(Int(idleShare * 100))%); decaying P90 \(p90) + \(Int(safetyMargin * 100))% → soft \(unit.format(target))"
                )
            } else if analysis.pattern == .bursty {
                make(
                    .optimizeCode, nil, analysis.confidence,
                    "bursty: \(Quantity.formatDecimal(analysis.spikeShare * 100, places: 1))% of samples are spikes (peak \(unit.format(analysis.statistics.maximum)), median \(unit.format(analysis.statistics.p50))); smoothing them would let a smaller quota do"
                )
            }
        }
        if let better = betterGroup(current: group, targets: targets, groups: groups) {
            let resources = targets.keys.sorted().map(\.rawValue).joined(separator: ", ")
            // Named after the resource that fits the new group most tightly, with its pattern; as sure as the
            // least certain classification, and less so the closer that resource comes to the new hard limit.
            let tightest = targets.keys.sorted().max { a, b in
                targets[a]! / max(better.limits[a]?.hard ?? 1, 1e-9) < targets[b]! / max(better.limits[b]?.hard ?? 1, 1e-9)
            }!
            let fill = targets[tightest]! / max(better.limits[tightest]?.hard ?? 1, 1e-9)
            let certainty = analyses.values.map(\.confidence).min() ?? 0
            recommendations.append(
                Recommendation(
                    agent: agent, resource: tightest, kind: .changeGroup,
                    current: limits[tightest] ?? ResourceLimit(soft: 0, hard: 0, action: .warn),
                    group: better.name, target: targets[tightest], pattern: analyses[tightest]?.pattern ?? .steady,
                    confidence: min(1, max(0, certainty * min(1, 2 * (1 - fill)))),
                    rationale:
                        "\(better.name) fits its usage of \(resources) (P99 + margin under each hard limit, P90 + margin under each soft) with less reserved than \(group); \(tightest.rawValue) is the tightest at \(Int((fill * 100).rounded()))% of its hard limit there",
                    at: now))
        }
        return recommendations
    }

    /// The group with the smallest limits that still fits every target, when it is not `current`.
    static func betterGroup(current: String, targets: [Resource: Double], groups: [QuotaGroup]) -> QuotaGroup? {
        guard !targets.isEmpty else { return nil }
        func fits(_ group: QuotaGroup) -> Bool {
            targets.allSatisfy { resource, target in
                guard let limit = group.limits[resource] else { return false }
                return target <= limit.hard && target <= limit.soft * (1 + safetyMargin)
            }
        }
        func size(_ group: QuotaGroup) -> Double {
            targets.keys.reduce(0) { $0 + (group.limits[$1]?.hard ?? .infinity) / max(targets[$1] ?? 1, 1e-9) }
        }
        guard let best = groups.filter(fits).min(by: { size($0) < size($1) }), best.name != current else { return nil }
        if let own = groups.first(where: { $0.name == current }), fits(own), size(own) <= size(best) { return nil }
        return best
    }

    /// The smallest limit ever suggested: 8 MiB, 1% of a CPU, 4 processes (or files, connections), 64 KiB/s.
    static func floor(for unit: ResourceUnit) -> Double {
        switch unit {
        case .bytes: 8 * 1_048_576
        case .percentOfCPU: 1
        case .count: 4
        case .bytesPerSecond: 65_536
        }
    }

    /// Sizes rounded up to a readable figure: memory to MiB, counts to whole, CPU to 0.5%.
    static func rounded(_ value: Double, unit: ResourceUnit) -> Double {
        switch unit {
        case .bytes: (value / 1_048_576).rounded(.up) * 1_048_576
        case .percentOfCPU: (value * 2).rounded(.up) / 2
        case .count: value.rounded(.up)
        case .bytesPerSecond: (value / 1024).rounded(.up) * 1024
        }
    }
}
