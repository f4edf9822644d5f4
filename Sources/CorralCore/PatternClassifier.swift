/// Usage pattern classification (DESIGN §6, the seed's §2.2 with its
/// defects fixed): pure, on a series of samples taken at a fixed interval.

/// How a resource's usage behaves over a window.
public enum UsagePattern: String, Codable, CaseIterable, Sendable {
    case steady
    case periodic
    case bursty
    case growing
    case declining
}

/// Summary figures of a series.
public struct SeriesStatistics: Codable, Equatable, Sendable {
    public var count: Int
    public var mean: Double
    public var standardDeviation: Double
    public var minimum: Double
    public var maximum: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
}

/// Autocorrelation of the detrended series at one lag (in samples).
public struct LagCorrelation: Codable, Equatable, Sendable {
    public var lag: Int
    public var correlation: Double
}

/// What a series looks like, and why.
public struct PatternAnalysis: Codable, Equatable, Sendable {
    public var pattern: UsagePattern
    /// 0…1: how clearly the series shows its pattern.
    public var confidence: Double
    public var statistics: SeriesStatistics
    /// Least-squares slope relative to the mean, per minute (0.01: 1% of the mean per minute).
    /// The seed compared a raw slope in bytes with 0.1; this is normalised.
    public var trendPerMinute: Double
    /// The trend's change over the whole window, relative to the mean.
    public var trendOverWindow: Double
    /// Share of the variance the linear trend explains (R²).
    public var trendFit: Double
    /// Standard deviation of the detrended series relative to the mean.
    public var variation: Double
    /// Share of samples that are spikes (far above the detrended median).
    public var spikeShare: Double
    /// Autocorrelation of the detrended series at the seed's lags.
    public var autocorrelation: [LagCorrelation]
    /// How periodic (0…1): the best lag's correlation against the one at half of it.
    public var periodicity: Double
}

public enum PatternClassifier {
    /// The seed's lags (in samples of the analysed series).
    public static let lags = [4, 6, 8, 12]
    /// Fewer samples than this tell nothing: steady with confidence 0.
    public static let minimumSamples = 24

    /// Thresholds, each on a normalised figure.
    public struct Thresholds: Sendable {
        /// |trend over the window| at least this (0.15: 15% of the mean) …
        public var trend = 0.15
        /// … with a linear fit at least this good.
        public var trendFit = 0.3
        /// Periodicity at least this.
        public var periodicity = 0.35
        /// Spikes: samples above the median by more than this share of the mean …
        public var spikeHeight = 0.5
        /// … and by more than this many median absolute deviations …
        public var spikeDeviations = 6.0
        /// … on at least this share of the samples.
        public var spikeShare = 0.004
        public init() {}
    }

    /// Classifies `values` sampled every `interval`.
    public static func analyze(_ values: [Double], interval: Duration, thresholds: Thresholds = Thresholds()) -> PatternAnalysis {
        let n = values.count
        let statistics = describe(values)
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        var analysis = PatternAnalysis(
            pattern: .steady, confidence: 0, statistics: statistics, trendPerMinute: 0, trendOverWindow: 0, trendFit: 0,
            variation: 0, spikeShare: 0, autocorrelation: [], periodicity: 0)
        guard n >= minimumSamples, statistics.mean > 0, seconds > 0 else { return analysis }
        let mean = statistics.mean

        // Least squares against the sample index: slope, intercept, R².
        let indexMean = Double(n - 1) / 2
        var sxy = 0.0
        var sxx = 0.0
        var syy = 0.0
        for (i, value) in values.enumerated() {
            let dx = Double(i) - indexMean
            let dy = value - mean
            sxy += dx * dy
            sxx += dx * dx
            syy += dy * dy
        }
        let slope = sxx > 0 ? sxy / sxx : 0
        let fit = syy > 0 ? (sxy * sxy) / (sxx * syy) : 0
        analysis.trendPerMinute = slope * (60 / seconds) / mean
        analysis.trendOverWindow = slope * Double(n - 1) / mean
        analysis.trendFit = fit

        // The detrended series.
        var residuals = [Double](repeating: 0, count: n)
        var residualSquares = 0.0
        for (i, value) in values.enumerated() {
            let r = value - (mean + slope * (Double(i) - indexMean))
            residuals[i] = r
            residualSquares += r * r
        }
        let residualVariance = residualSquares / Double(n)
        analysis.variation = residualVariance.squareRoot() / mean

        // Autocorrelation at the seed's lags, and at half of each.
        var computed: [Int: Double] = [:]
        func autocorrelation(_ lag: Int) -> Double {
            if let known = computed[lag] { return known }
            let value = correlation(lag)
            computed[lag] = value
            return value
        }
        func correlation(_ lag: Int) -> Double {
            guard lag < n, residualSquares > 0 else { return 0 }
            // Four accumulators: independent additions the compiler can vectorise.
            let sum = residuals.withUnsafeBufferPointer { r -> Double in
                var (a, b, c, d) = (0.0, 0.0, 0.0, 0.0)
                let count = n - lag
                var i = 0
                while i + 4 <= count {
                    a += r[i] * r[i + lag]
                    b += r[i + 1] * r[i + 1 + lag]
                    c += r[i + 2] * r[i + 2 + lag]
                    d += r[i + 3] * r[i + 3 + lag]
                    i += 4
                }
                while i < count {
                    a += r[i] * r[i + lag]
                    i += 1
                }
                return (a + b) + (c + d)
            }
            return (sum / Double(n - lag)) / residualVariance
        }
        var best = 0.0
        for lag in lags {
            let full = autocorrelation(lag)
            let half = autocorrelation(lag / 2)
            analysis.autocorrelation.append(LagCorrelation(lag: lag, correlation: full))
            // A cycle of `lag` samples: alike a whole period apart, opposite half a period apart.
            // (A slow wander is alike at both, a spike train at neither.)
            if full > 0.3 { best = max(best, (full - half) / 2) }
        }
        analysis.periodicity = min(1, max(0, best))

        // Spikes: far above the detrended median, by the mean and by the spread.
        // Median and median absolute deviation from an evenly spaced subsample
        // of at most ~512 points: robust to the spikes themselves, and cheap.
        let stride = max(1, n / 512)
        var scratch = Swift.stride(from: 0, to: n, by: stride).map { residuals[$0] }
        let median = Selection.select(&scratch, rank: scratch.count / 2)
        for i in scratch.indices { scratch[i] = abs(scratch[i] - median) }
        let mad = Selection.select(&scratch, rank: scratch.count / 2)
        let threshold = median + max(thresholds.spikeHeight * mean, thresholds.spikeDeviations * mad)
        analysis.spikeShare = Double(residuals.lazy.filter { $0 > threshold }.count) / Double(n)

        let trending = abs(analysis.trendOverWindow) >= thresholds.trend && fit >= thresholds.trendFit
        if trending {
            analysis.pattern = analysis.trendOverWindow > 0 ? .growing : .declining
            analysis.confidence = min(1, fit) * min(1, abs(analysis.trendOverWindow) / (2 * thresholds.trend))
        } else if analysis.periodicity >= thresholds.periodicity {
            analysis.pattern = .periodic
            analysis.confidence = min(1, analysis.periodicity)
        } else if analysis.spikeShare >= thresholds.spikeShare {
            analysis.pattern = .bursty
            analysis.confidence = min(1, analysis.spikeShare / (4 * thresholds.spikeShare))
        } else {
            analysis.pattern = .steady
            let margins = [
                abs(analysis.trendOverWindow) / thresholds.trend, analysis.periodicity / thresholds.periodicity,
                analysis.spikeShare / thresholds.spikeShare,
            ]
            analysis.confidence = max(0, 1 - (margins.max() ?? 0))
        }
        return analysis
    }

    /// Mean, spread, extremes and percentiles (nearest rank).
    public static func describe(_ values: [Double]) -> SeriesStatistics {
        guard !values.isEmpty else {
            return SeriesStatistics(count: 0, mean: 0, standardDeviation: 0, minimum: 0, maximum: 0, p50: 0, p90: 0, p99: 0)
        }
        let n = Double(values.count)
        var sum = 0.0
        var minimum = values[0]
        var maximum = values[0]
        for value in values {
            sum += value
            minimum = min(minimum, value)
            maximum = max(maximum, value)
        }
        let mean = sum / n
        var squares = 0.0
        for value in values { squares += (value - mean) * (value - mean) }
        let variance = squares / n
        // Nearest rank, by selection (linear time: sorting an hour at 1 s of
        // every agent would cost more than the rest of the analysis).
        var scratch = values
        func rank(_ p: Double) -> Int { min(values.count - 1, max(0, Int((p * n).rounded(.up)) - 1)) }
        let p50 = Selection.select(&scratch, rank: rank(0.5))
        let p90 = Selection.select(&scratch, rank: rank(0.9), from: rank(0.5))
        let p99 = Selection.select(&scratch, rank: rank(0.99), from: rank(0.9))
        return SeriesStatistics(
            count: values.count, mean: mean, standardDeviation: variance.squareRoot(), minimum: minimum, maximum: maximum, p50: p50,
            p90: p90, p99: p99)
    }
}

/// Quickselect: the element of a given rank, in expected linear time.
enum Selection {
    /// Reorders `values` so that the element at `rank` is the one a sort would
    /// put there, none before it larger and none after it smaller, and
    /// returns it. Only `from..<count` is searched: after selecting rank r,
    /// select a larger rank with `from: r`.
    static func select(_ values: inout [Double], rank: Int, from start: Int = 0) -> Double {
        values.withUnsafeMutableBufferPointer { buffer in
            var low = start
            var high = buffer.count - 1
            while low < high {
                // Median of three as the pivot; Hoare partition.
                let middle = low + (high - low) / 2
                if buffer[middle] < buffer[low] { buffer.swapAt(middle, low) }
                if buffer[high] < buffer[low] { buffer.swapAt(high, low) }
                if buffer[high] < buffer[middle] { buffer.swapAt(high, middle) }
                let pivot = buffer[middle]
                var i = low
                var j = high
                while i <= j {
                    while buffer[i] < pivot { i += 1 }
                    while buffer[j] > pivot { j -= 1 }
                    if i <= j {
                        buffer.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                if rank <= j {
                    high = j
                } else if rank >= i {
                    low = i
                } else {
                    break
                }
            }
            return buffer[rank]
        }
    }
}
