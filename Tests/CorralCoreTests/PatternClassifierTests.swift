import CorralCore
import CorralTestSupport
import Foundation
import Testing

@Suite("Usage pattern classification")
struct PatternClassifierTests {
    /// A few thousand generated series of every class (`SeriesGenerator`:
    /// noise of 1–10%, cycles of 3.5–14 samples that are not whole numbers,
    /// spikes or irregular bursts, straight or curving trends), 4 minutes to
    /// an hour at 1 s: at least 95% classified as generated, at least 90% of
    /// each class. The figure and the confusion are printed.
    @Test func classifiesGeneratedSeries() async {
        var random = SeededGenerator(seed: 20_261_129)
        let perClass = 600
        var confusion: [UsagePattern: [UsagePattern: Int]] = [:]
        for pattern in UsagePattern.allCases {
            for _ in 0..<perClass {
                // A turn for the other tests: this loop would otherwise hold a thread of the
                // two-thread cooperative pool for many seconds (a CI run's deadlines lapsed so).
                await Task.yield()
                let length = [240, 720, 1800, 3600].randomElement(using: &random)!
                let series = SeriesGenerator.series(pattern, count: length, using: &random)
                let found = PatternClassifier.analyze(series, interval: .seconds(1)).pattern
                confusion[pattern, default: [:]][found, default: 0] += 1
            }
        }
        let total = perClass * UsagePattern.allCases.count
        let correct = UsagePattern.allCases.reduce(0) { $0 + (confusion[$1]?[$1] ?? 0) }
        let share = Double(correct) / Double(total)
        var lines = ["classifier: \(correct) of \(total) generated series correct (\(String(format: "%.1f", share * 100))%)"]
        for pattern in UsagePattern.allCases {
            let row = UsagePattern.allCases.map { "\($0.rawValue) \(confusion[pattern]?[$0] ?? 0)" }.joined(separator: ", ")
            lines.append("  generated \(pattern.rawValue): \(row)")
        }
        print(lines.joined(separator: "\n"))
        #expect(share >= 0.95, "\(lines.joined(separator: "\n"))")
        for pattern in UsagePattern.allCases {
            #expect(Double(confusion[pattern]?[pattern] ?? 0) / Double(perClass) >= 0.9, "\(pattern): \(confusion[pattern] ?? [:])")
        }
    }

    @Test func theTrendIsRelativeNotInBytes() {
        // The same growth in bytes and in megabytes: the same relative trend (a raw slope would differ by 10⁶).
        let bytes = (0..<600).map { 100_000_000 + Double($0) * 100_000 }
        let megabytes = bytes.map { $0 / 1_000_000 }
        let a = PatternClassifier.analyze(bytes, interval: .seconds(1))
        let b = PatternClassifier.analyze(megabytes, interval: .seconds(1))
        #expect(a.pattern == .growing && b.pattern == .growing)
        #expect(abs(a.trendPerMinute - b.trendPerMinute) < 1e-9)
        // 100 kB per second on a mean of ~130 MB: 6 MB per minute ≈ 4.6% of the mean per minute.
        #expect(abs(a.trendPerMinute - 6_000_000 / a.statistics.mean) < 1e-6)
        #expect(abs(a.trendFit - 1) < 1e-9)
        // Per minute depends on the interval: the same series sampled every minute changes 60× slower.
        let perMinute = PatternClassifier.analyze(bytes, interval: .seconds(60))
        #expect(abs(perMinute.trendPerMinute * 60 - a.trendPerMinute) < 1e-9)
    }

    /// Growing and declining are decided on the change per minute relative to
    /// the mean, whatever the window: a slow climb over two hours is steady
    /// however much it adds up to, a quick one over ten minutes is growing.
    @Test func theTrendThresholdIsPerMinute() {
        // 0.2% of the mean per minute for 2 h (about 24% over the window): under the 0.25% per minute.
        let slow = (0..<7200).map { 100 * (1 + 0.002 * Double($0) / 60) }
        let slowAnalysis = PatternClassifier.analyze(slow, interval: .seconds(1))
        #expect(slowAnalysis.trendOverWindow > 0.15, "the seed's threshold over the window would call it growing")
        #expect(abs(slowAnalysis.trendPerMinute) < 0.0025)
        #expect(slowAnalysis.pattern == .steady)
        // 0.4% per minute for 10 min (4% over the window): growing, and with a perfect fit confidently.
        let quick = (0..<600).map { 100 * (1 + 0.004 * Double($0) / 60) }
        let quickAnalysis = PatternClassifier.analyze(quick, interval: .seconds(1))
        #expect(quickAnalysis.trendOverWindow < 0.15)
        #expect(quickAnalysis.pattern == .growing)
        #expect(quickAnalysis.confidence > 0.7)
        let falling = PatternClassifier.analyze(quick.reversed(), interval: .seconds(1))
        #expect(falling.pattern == .declining && falling.trendPerMinute < -0.0025)
        // The threshold is configurable: at 0.5% per minute the quick climb is steady.
        var thresholds = PatternClassifier.Thresholds()
        thresholds.trendPerMinute = 0.005
        #expect(PatternClassifier.analyze(quick, interval: .seconds(1), thresholds: thresholds).pattern == .steady)
    }

    /// A slope the noise explains is no trend: the fit (R² on about 60 stretch
    /// means) must be at least 0.3 too.
    @Test func aTrendMustFit() {
        var random = SeededGenerator(seed: 3)
        // A slope of 0.3% per minute under noise of 40%, and a short window: R² of the stretch means stays low.
        let noisy = (0..<240).map { 100 * (1 + 0.003 * Double($0) / 60) + 40 * random.gaussian() }
        let analysis = PatternClassifier.analyze(noisy, interval: .seconds(1))
        #expect(analysis.trendFit < 0.3, "\(analysis.trendFit)")
        #expect(analysis.pattern != .growing && analysis.pattern != .declining)
        // The same slope under 2% noise over an hour fits: growing.
        let clean = (0..<3600).map { 100 * (1 + 0.003 * Double($0) / 60) + 2 * random.gaussian() }
        let fitted = PatternClassifier.analyze(clean, interval: .seconds(1))
        #expect(fitted.trendFit > 0.9 && fitted.pattern == .growing)
    }

    /// Variance relative to the mean decides bursty against steady with the
    /// spikes: irregular switching between two levels, busy most of the time,
    /// has no spike above its median but a high variation.
    @Test func aHighVariationIsBurstyWithoutSpikes() {
        var random = SeededGenerator(seed: 11)
        var on = true
        let switching = (0..<1200).map { _ -> Double in
            if Double.random(in: 0..<1, using: &random) < (on ? 0.1 : 0.3) { on.toggle() }
            return (on ? 300 : 100) + 3 * random.gaussian()
        }
        let analysis = PatternClassifier.analyze(switching, interval: .seconds(1))
        #expect(analysis.spikeShare < 0.004, "no spikes above the busy median")
        #expect(analysis.variation > 0.2)
        #expect(analysis.pattern == .bursty)
        // The same noise around one level: a variation of 1%, steady and confident.
        let level = (0..<1200).map { _ in 200 + 2 * random.gaussian() }
        let steady = PatternClassifier.analyze(level, interval: .seconds(1))
        #expect(steady.variation < 0.02 && steady.pattern == .steady && steady.confidence > 0.5)
        // Raising the variation threshold above the switching series' makes it steady (no spikes, no cycle).
        var thresholds = PatternClassifier.Thresholds()
        thresholds.variation = analysis.variation * 1.1
        #expect(PatternClassifier.analyze(switching, interval: .seconds(1), thresholds: thresholds).pattern == .steady)
    }

    /// Cycles that are not the reported lags (4, 6, 8, 12 samples), nor whole
    /// numbers of samples, are found, with their length.
    @Test(arguments: [3.6, 5.0, 7.3, 9.0, 10.0, 13.5, 17.0])
    func cyclesBetweenTheSeedsLags(period: Double) {
        var random = SeededGenerator(seed: UInt64(period * 10))
        let series = (0..<900).map { 200 + 60 * sin(2 * Double.pi * Double($0) / period) + 10 * random.gaussian() }
        let analysis = PatternClassifier.analyze(series, interval: .seconds(1))
        #expect(analysis.pattern == .periodic, "\(period): \(analysis.periodicity)")
        #expect(abs(Double(analysis.period) - period) <= 1, "\(period): found \(analysis.period)")
    }

    @Test func edgeCasesAreTotal() {
        #expect(PatternClassifier.analyze([], interval: .seconds(1)).pattern == .steady)
        #expect(PatternClassifier.analyze([], interval: .seconds(1)).confidence == 0)
        #expect(PatternClassifier.analyze([5, 6, 7], interval: .seconds(1)).confidence == 0, "too few samples")
        let zeros = PatternClassifier.analyze(Array(repeating: 0, count: 100), interval: .seconds(1))
        #expect(zeros.pattern == .steady)
        let flat = PatternClassifier.analyze(Array(repeating: 42, count: 100), interval: .seconds(1))
        #expect(flat.pattern == .steady && flat.confidence == 1)
        #expect(flat.statistics.p50 == 42 && flat.statistics.p99 == 42 && flat.statistics.standardDeviation == 0)
        #expect(PatternClassifier.analyze(Array(repeating: 1, count: 100), interval: .zero).confidence == 0)
    }

    @Test func percentilesAreNearestRank() {
        let stats = PatternClassifier.describe((1...100).map(Double.init))
        #expect(stats.p50 == 50 && stats.p90 == 90 && stats.p99 == 99)
        #expect(stats.minimum == 1 && stats.maximum == 100 && stats.mean == 50.5)
        #expect(PatternClassifier.describe([7]).p99 == 7)
    }

    @Test func autocorrelationAtTheSeedsLags() {
        let series = (0..<240).map { 100 + 30 * sin(2 * Double.pi * Double($0) / 8) }
        let analysis = PatternClassifier.analyze(series, interval: .seconds(1))
        #expect(analysis.pattern == .periodic)
        #expect(analysis.autocorrelation.map(\.lag) == [4, 6, 8, 12])
        let at8 = analysis.autocorrelation.first { $0.lag == 8 }?.correlation ?? 0
        let at4 = analysis.autocorrelation.first { $0.lag == 4 }?.correlation ?? 0
        #expect(at8 > 0.95 && at4 < -0.95)
    }
}

@Suite("Selection (quickselect)")
struct SelectionTests {
    @Test func selectsWhatASortWould() {
        var random = SeededGenerator(seed: 7)
        for trial in 0..<300 {
            let count = Int.random(in: 1...400, using: &random)
            // Many duplicates in some trials, none in others.
            let values = (0..<count).map { _ in
                trial % 2 == 0 ? Double(Int.random(in: 0...5, using: &random)) : Double.random(in: -1e6...1e6, using: &random)
            }
            let sorted = values.sorted()
            let stats = PatternClassifier.describe(values)
            func rank(_ p: Double) -> Int { min(count - 1, max(0, Int((p * Double(count)).rounded(.up)) - 1)) }
            #expect(stats.p50 == sorted[rank(0.5)])
            #expect(stats.p90 == sorted[rank(0.9)])
            #expect(stats.p99 == sorted[rank(0.99)])
            #expect(stats.minimum == sorted.first && stats.maximum == sorted.last)
        }
    }
}
