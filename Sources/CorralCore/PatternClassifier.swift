/// Usage pattern classification: steady, periodic, bursty, growing or
/// declining, with a confidence; pure, on a series of samples taken at a
/// fixed interval. The trend is relative to the mean and per minute, so that
/// bytes and megabytes of the same growth classify alike.

/// How a resource's usage behaves over a window.
public enum UsagePattern: String, Codable, CaseIterable, Sendable, CaseHashable {
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
    /// Least-squares slope relative to the mean, per minute (0.01: 1% of the mean per minute):
    /// what growing and declining are decided on.
    public var trendPerMinute: Double
    /// The trend's change over the whole window, relative to the mean (for rationales).
    public var trendOverWindow: Double
    /// Share of the variance of the series' stretch means (about 60 stretches) the
    /// linear trend explains (R²): the averaging keeps sample-to-sample noise from
    /// hiding a clear trend.
    public var trendFit: Double
    /// Standard deviation of the detrended series relative to the mean (coefficient of variation).
    public var variation: Double
    /// Share of samples that are spikes (far above the detrended median).
    public var spikeShare: Double
    /// Autocorrelation of the detrended series at the reported `lags`.
    public var autocorrelation: [LagCorrelation]
    /// How periodic (0…1): the best autocorrelation peak against the trough before it.
    public var periodicity: Double
    /// The lag (in samples) of that peak: the cycle's length; 0 when there is none.
    public var period: Int
}

public enum PatternClassifier {
    /// The lags (in samples of the analysed series) reported in `autocorrelation`.
    /// Periodicity looks at every lag up to `maximumLag`: cycles between and around these.
    public static let lags = [4, 6, 8, 12]
    /// The longest lag searched for a cycle: twice the longest reported lag.
    public static let maximumLag = 24
    /// Fewer samples than this tell nothing: steady with confidence 0.
    public static let minimumSamples = 24

    /// Thresholds, each on a normalised figure.
    public struct Thresholds: Sendable {
        /// |trend| at least this share of the mean per minute (0.0025: 0.25% per minute,
        /// 15% over a 1 h window) …
        public var trendPerMinute = 0.0025
        /// … with a linear fit (R² on the stretch means) at least this good.
        public var trendFit = 0.3
        /// Periodicity at least this …
        public var periodicity = 0.3
        /// … in a series that varies by at least this share of the mean (a cycle
        /// of a few kilobytes on megabytes is steady usage).
        public var cycleVariation = 0.03
        /// Spikes: samples above the median by more than this share of the mean …
        public var spikeHeight = 0.5
        /// … and by more than this many median absolute deviations …
        public var spikeDeviations = 6.0
        /// … on at least this share of the samples make the series bursty;
        public var spikeShare = 0.004
        /// so does a standard deviation of the detrended series of at least this
        /// share of the mean (relative, so that the unit of the resource does
        /// not decide: a variance in bytes² says nothing against a mean in bytes).
        public var variation = 0.2
        public init() {}
    }

    /// Classifies `values` sampled every `interval`: growing or declining when
    /// the trend per minute is large and fits; else periodic when the
    /// autocorrelation has a clear cycle; else bursty when there are spikes or
    /// the variation is high; else steady.
    public static func analyze(_ values: [Double], interval: Duration, thresholds: Thresholds = Thresholds()) -> PatternAnalysis {
        let n = values.count
        let statistics = describe(values)
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        var analysis = PatternAnalysis(
            pattern: .steady, confidence: 0, statistics: statistics, trendPerMinute: 0, trendOverWindow: 0, trendFit: 0,
            variation: 0, spikeShare: 0, autocorrelation: [], periodicity: 0, period: 0)
        guard n >= minimumSamples, statistics.mean > 0, seconds > 0 else { return analysis }
        let mean = statistics.mean

        // Least squares against the sample index: the slope, and the sums of
        // each stretch (about 60 of them) for the fit.
        let indexMean = Double(n - 1) / 2
        let stretch = max(1, n / 60)
        let stretches = n / stretch
        var sums = [Double](repeating: 0, count: stretches)
        var sxy = 0.0
        for (i, value) in values.enumerated() { sxy += (Double(i) - indexMean) * (value - mean) }
        values.withUnsafeBufferPointer { v in
            for index in 0..<stretches {
                var sum = 0.0
                for i in index * stretch..<(index + 1) * stretch { sum += v[i] }
                sums[index] = sum
            }
        }
        // Σ (i - mean index)² over 0..<n, in closed form.
        let sxx = Double(n) * (Double(n) * Double(n) - 1) / 12
        let slope = sxx > 0 ? sxy / sxx : 0
        analysis.trendPerMinute = slope * (60 / seconds) / mean
        analysis.trendOverWindow = slope * Double(n - 1) / mean
        analysis.trendFit = fit(stretchSums: sums, stretch: stretch)

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

        // Autocorrelation at every lag up to `maximumLag`; a cycle of L samples
        // shows as a peak at L with a trough before it (alike a period apart,
        // opposite half a period apart). A slow wander decays without a peak,
        // a spike train has neither.
        let lastLag = min(maximumLag, n / 3)
        let correlations = autocorrelations(residuals, variance: residualVariance, upTo: lastLag)
        analysis.autocorrelation = lags.filter { $0 <= lastLag }.map { LagCorrelation(lag: $0, correlation: correlations[$0]) }
        // The period is the first peak nearly as good as the best (a cycle of
        // 3.6 samples matches better at 7 than at 4, but is 4 long).
        var peaks: [(lag: Int, score: Double)] = []
        var trough = correlations.count > 1 ? correlations[1] : 0
        for lag in Swift.stride(from: 2, to: lastLag, by: 1) {
            let peak = correlations[lag]
            if peak > correlations[lag - 1], peak >= correlations[lag + 1], peak > 0 { peaks.append((lag, (peak - trough) / 2)) }
            trough = min(trough, peak)
        }
        let best = peaks.map(\.score).max() ?? 0
        analysis.periodicity = min(1, best)
        analysis.period = peaks.first { $0.score >= 0.8 * best }?.lag ?? 0

        // Spikes: far above the detrended median, by the mean and by the spread.
        // Median and median absolute deviation from an evenly spaced subsample
        // of at most ~512 points: robust to the spikes themselves, and cheap.
        let step = max(1, n / 512)
        var scratch = Swift.stride(from: 0, to: n, by: step).map { residuals[$0] }
        let median = Selection.select(&scratch, rank: scratch.count / 2)
        for i in scratch.indices { scratch[i] = abs(scratch[i] - median) }
        let mad = Selection.select(&scratch, rank: scratch.count / 2)
        let threshold = median + max(thresholds.spikeHeight * mean, thresholds.spikeDeviations * mad)
        analysis.spikeShare = Double(residuals.lazy.filter { $0 > threshold }.count) / Double(n)

        let trend = abs(analysis.trendPerMinute) / thresholds.trendPerMinute
        let fitMargin = analysis.trendFit / thresholds.trendFit
        let periodic = analysis.periodicity / thresholds.periodicity
        let spikes = analysis.spikeShare / thresholds.spikeShare
        let variable = analysis.variation / thresholds.variation
        // Confidence: how far past its thresholds the deciding figure is
        // (1 at twice the threshold), or for steady how far below them all.
        if trend >= 1 && fitMargin >= 1 {
            analysis.pattern = analysis.trendPerMinute > 0 ? .growing : .declining
            analysis.confidence = min(1, analysis.trendFit) * min(1, trend / 2)
        } else if periodic >= 1 && analysis.variation >= thresholds.cycleVariation {
            analysis.pattern = .periodic
            analysis.confidence = min(1, analysis.periodicity)
        } else if spikes >= 1 || variable >= 1 {
            analysis.pattern = .bursty
            analysis.confidence = min(1, max(spikes / 4, variable / 2))
        } else {
            analysis.pattern = .steady
            let cycle = min(periodic, analysis.variation / thresholds.cycleVariation)
            analysis.confidence = max(0, 1 - max(min(trend, fitMargin), cycle, spikes, variable))
        }
        return analysis
    }

    /// R² of a least-squares line through the stretch means.
    static func fit(stretchSums sums: [Double], stretch: Int) -> Double {
        let count = sums.count
        guard count >= 3 else { return 0 }
        var total = 0.0
        for sum in sums { total += sum }
        let average = total / Double(count * stretch)
        let centre = Double(count - 1) / 2
        var sxy = 0.0
        var sxx = 0.0
        var syy = 0.0
        for (index, sum) in sums.enumerated() {
            let dx = Double(index) - centre
            let dy = sum / Double(stretch) - average
            sxy += dx * dy
            sxx += dx * dx
            syy += dy * dy
        }
        return syy > 0 && sxx > 0 ? (sxy * sxy) / (sxx * syy) : 0
    }

    /// Autocorrelation of `residuals` (mean zero, `variance`) at lags 0…`last`.
    /// Long series are sampled: four stretches of 256 products spread over the
    /// window (an hour at 1 s costs as much as 17 minutes), enough for a cycle
    /// that repeats, at a quarter of the work.
    static func autocorrelations(_ residuals: [Double], variance: Double, upTo last: Int) -> [Double] {
        var result = [Double](repeating: 0, count: last + 1)
        let n = residuals.count
        guard variance > 0, last >= 1, n > last else { return result }
        result[0] = 1
        let block = 256
        let blocks = 4
        let starts: [Int] =
            n - last <= blocks * block
            ? [0] : (0..<blocks).map { $0 * (n - last - block) / (blocks - 1) }
        let length = starts.count == 1 ? n - last : block
        residuals.withUnsafeBufferPointer { r in
            for lag in 1...last {
                // Four accumulators: independent additions the compiler can vectorise.
                var (a, b, c, d) = (0.0, 0.0, 0.0, 0.0)
                for start in starts {
                    var i = start
                    let end = start + length
                    while i + 4 <= end {
                        a += r[i] * r[i + lag]
                        b += r[i + 1] * r[i + 1 + lag]
                        c += r[i + 2] * r[i + 2 + lag]
                        d += r[i + 3] * r[i + 3 + lag]
                        i += 4
                    }
                    while i < end {
                        a += r[i] * r[i + lag]
                        i += 1
                    }
                }
                result[lag] = ((a + b) + (c + d)) / Double(length * starts.count) / variance
            }
        }
        return result
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
