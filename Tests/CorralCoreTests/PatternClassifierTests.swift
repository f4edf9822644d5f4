import CorralCore
import CorralTestSupport
import Foundation
import Testing

@Suite("Usage pattern classification")
struct PatternClassifierTests {
    /// A few thousand generated series of every class, with noise: at least
    /// 95% classified as generated. The figure is printed.
    @Test func classifiesGeneratedSeries() {
        var random = SeededGenerator(seed: 20_261_129)
        let perClass = 600
        var confusion: [UsagePattern: [UsagePattern: Int]] = [:]
        for pattern in UsagePattern.allCases {
            for _ in 0..<perClass {
                let length = [240, 720, 1800].randomElement(using: &random)!
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
        // The same growth in bytes and in megabytes: the same relative trend (the seed's raw slope differed by 10⁶).
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
