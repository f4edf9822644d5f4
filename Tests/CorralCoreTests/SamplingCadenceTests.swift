import CorralCore
import Testing

@Suite("Adaptive sampling: the cadence and the filled series")
struct SamplingCadenceTests {
    static let t0 = Timestamp(milliseconds: 1_800_000_000_000)
    // standard_agent: memory 200 MB soft / 500 MB hard, CPU 15 % / 30 %, 50 / 100 processes.
    static let limits = QuotaGroup.standard.limits

    func cadence(_ usage: [Resource: Double], busy: Bool = false, lastActivity: Timestamp? = nil, now: Timestamp = t0) -> SamplingCadence {
        SamplingCadence.of(usage: usage, limits: Self.limits, busy: busy, lastActivity: lastActivity, now: now)
    }

    static let far: [Resource: Double] = [.memory: 20e6, .cpu: 1, .processes: 2]

    @Test("far from every limit and quiet: idle")
    func farIsIdle() {
        #expect(cadence(Self.far) == .idle)
    }

    @Test("half of any soft limit is near: active", arguments: [Resource.memory, .cpu, .processes])
    func nearIsActive(resource: Resource) throws {
        let soft = try #require(Self.limits[resource]).soft
        var usage = Self.far
        usage[resource] = soft * SamplingCadence.nearShare
        #expect(cadence(usage) == .active)
        usage[resource] = soft * SamplingCadence.nearShare * 0.99
        #expect(cadence(usage) == .idle)
    }

    @Test("busy (a violation, an episode, a state other than running) is active")
    func busyIsActive() {
        #expect(cadence(Self.far, busy: true) == .active)
    }

    @Test("a kernel event or trigger within the quiet period is active; after it, idle")
    func recentActivityIsActive() {
        #expect(cadence(Self.far, lastActivity: Self.t0, now: Self.t0 + .seconds(29)) == .active)
        #expect(cadence(Self.far, lastActivity: Self.t0, now: Self.t0 + SamplingCadence.quietPeriod) == .idle)
    }

    @Test("a measured resource with a limit but no reading yet is not known to be far")
    func noReadingIsActive() {
        #expect(cadence([.memory: 1, .cpu: 1]) == .active)
        // Resources the agent reports itself (no reading from a sample) do not count.
        let limits = LimitSet([
            .memory: ResourceLimit(soft: 100, hard: 200, action: .warn), .files: ResourceLimit(soft: 10, hard: 20, action: .warn),
        ])
        #expect(SamplingCadence.of(usage: [.memory: 1], limits: limits, busy: false, lastActivity: nil, now: Self.t0) == .idle)
        // Nothing limited: nothing to be near.
        #expect(SamplingCadence.of(usage: [:], limits: LimitSet(), busy: false, lastActivity: nil, now: Self.t0) == .idle)
    }

    @Test("filled: gaps are held at the interval, regular samples pass as they are")
    func filledHoldsGaps() {
        var ring = UsageRing(capacity: 100)
        // 1 s samples, then an idle agent's 10 s samples, then 1 s again.
        var times: [Int64] = [0, 1000, 2003, 2998]
        times += [12_998, 22_998]
        times += [23_998, 25_001]
        for (index, time) in times.enumerated() { ring.append(Double(index), at: Self.t0 + .milliseconds(time)) }
        let filled = ring.filled(interval: .seconds(1))
        #expect(filled.count == 4 + 9 + 1 + 9 + 1 + 1 + 1, "\(filled.map(\.1))")
        var expected: [Double] = [0, 1, 2, 3]
        expected += Array(repeating: 3.0, count: 9)
        expected.append(4)
        expected += Array(repeating: 4.0, count: 9)
        expected += [5, 6, 7]
        #expect(filled.map(\.1) == expected)
        // The held values are spaced at the interval after the sample they repeat.
        #expect(filled[4].0 == Self.t0 + .milliseconds(3998))
        // Regular samples: nothing added.
        var regular = UsageRing(capacity: 10)
        for i in 0..<10 {
            let jitter: Int64 = i % 2 == 0 ? 0 : 40
            regular.append(Double(i), at: Self.t0 + .milliseconds(Int64(i) * 1000 + jitter))
        }
        #expect(regular.filled(interval: .seconds(1)).map(\.1) == regular.values())
        // since and limit: the newest kept.
        #expect(ring.filled(since: Self.t0 + .seconds(20), interval: .seconds(1)).count == 1 + 1 + 1)
        #expect(ring.filled(interval: .seconds(1), limit: 5).map(\.1) == [4, 4, 5, 6, 7])
        #expect(UsageRing(capacity: 3).filled(interval: .seconds(1)).isEmpty)
    }
}
