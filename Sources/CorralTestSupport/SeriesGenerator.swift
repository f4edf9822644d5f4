public import CorralCore
import Foundation

/// A small deterministic random number generator (SplitMix64), for
/// reproducible generated data.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal variate (Box–Muller).
    public mutating func gaussian() -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let v = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }
}

/// Usage series of every pattern, with noise, for the classifier's tests and
/// the analytics benchmark. Each has a baseline between 50 and 500 (any unit)
/// and Gaussian noise of 1–10% of it.
public enum SeriesGenerator {
    public static func series(_ pattern: UsagePattern, count: Int, using random: inout SeededGenerator) -> [Double] {
        let base = Double.random(in: 50...500, using: &random)
        let noise = Double.random(in: 0.01...0.10, using: &random) * base
        var values = [Double](repeating: 0, count: count)
        switch pattern {
        case .steady:
            for i in 0..<count { values[i] = base + noise * random.gaussian() }
        case .growing, .declining:
            // 30% to 200% of the baseline over the window (declining: 13.5% to 90%), straight or curving.
            let change = Double.random(in: 0.3...2.0, using: &random) * base * (pattern == .growing ? 1 : -0.45)
            let curve = Double.random(in: 0.7...1.5, using: &random)
            for i in 0..<count {
                let t = Double(i) / Double(max(1, count - 1))
                values[i] = base + change * pow(t, curve) + noise * random.gaussian()
            }
        case .periodic:
            // A cycle of 3.5 to 14 samples, not a whole number (around and between the
            // classifier's reported lags of 4, 6, 8, 12): a sine or an on/off duty cycle, 20–100% of the baseline.
            let period = Double.random(in: 3.5...14, using: &random)
            let amplitude = Double.random(in: 0.2...1.0, using: &random) * base
            let square = Bool.random(using: &random)
            let phase = Double.random(in: 0..<1, using: &random)
            for i in 0..<count {
                let x = Double(i) / period + phase
                let wave = square ? (x - x.rounded(.down) < 0.5 ? 1.0 : -1.0) : cos(2 * Double.pi * x)
                values[i] = base + amplitude * wave / 2 + noise * random.gaussian()
            }
        case .bursty:
            if Bool.random(using: &random) {
                // Spikes of 1.6–6× the baseline lasting 1–5 samples, on 1–5% of the samples.
                let rate = Double.random(in: 0.01...0.05, using: &random)
                var remaining = 0
                var height = 0.0
                for i in 0..<count {
                    if remaining == 0, Double.random(in: 0..<1, using: &random) < rate / 3 {
                        remaining = Int.random(in: 1...5, using: &random)
                        height = Double.random(in: 0.6...5, using: &random) * base
                    }
                    values[i] = base + noise * random.gaussian() + (remaining > 0 ? height : 0)
                    if remaining > 0 { remaining -= 1 }
                }
            } else {
                // Irregular bursts to 2–4× the baseline, busy 30–70% of the time in stretches of
                // 3–10 samples on average (at over half the time the median is the burst level:
                // no spikes above it, but a high variation).
                let height = Double.random(in: 1...3, using: &random) * base
                let busy = Double.random(in: 0.3...0.7, using: &random)
                let stretch = Double.random(in: 3...10, using: &random)
                var on = Bool.random(using: &random)
                for i in 0..<count {
                    // Switch with the probability that gives `stretch`-long busy runs and the `busy` share.
                    let leave = on ? 1 / stretch : busy / (stretch * (1 - busy))
                    if Double.random(in: 0..<1, using: &random) < leave { on.toggle() }
                    values[i] = base + noise * random.gaussian() + (on ? height : 0)
                }
            }
        }
        return values.map { max(0, $0) }
    }
}
