import CorralCore
import Testing

@Suite("Usage ring and minute history")
struct UsageHistoryTests {
    @Test func theRingKeepsTheLatestInOrder() {
        var ring = UsageRing(capacity: 5)
        #expect(ring.values().isEmpty)
        for i in 0..<8 { ring.append(Double(i), at: Timestamp(milliseconds: Int64(i) * 1000)) }
        #expect(ring.count == 5)
        #expect(ring.values() == [3, 4, 5, 6, 7])
        #expect(ring.values(since: Timestamp(milliseconds: 6000)) == [6, 7])
        #expect(ring.samples().first?.0 == Timestamp(milliseconds: 3000))
        // 8 bytes a sample and 12 a minute of event counts: an hour at 1 s is 29,532 bytes.
        #expect(
            UsageRing(capacity: 3600, eventMinutes: 61).bytes == 0,
            "no sample slot before the first sample, no event slot before the first event")
        #expect(UsageRing.bytes(capacity: 3600, eventMinutes: 61) == 29_532)
    }

    /// The ring grows with its samples up to its capacity, and with a window
    /// it keeps none older than it: an agent sampled every 10 s holds a tenth
    /// of an hour at 1 s. A faster rate after a wrap (idle, then active)
    /// grows it again with every sample still in order.
    @Test func theRingGrowsAsSamplesComeAndKeepsOnlyItsWindow() {
        let hour: Duration = .seconds(3600)
        var idle = UsageRing(capacity: 3600, window: hour, eventMinutes: 61)
        for i in 0..<1000 { idle.append(Double(i), at: Timestamp(milliseconds: Int64(i) * 10_000)) }
        #expect(idle.count == 361, "an hour at 10 s, both ends included")
        #expect(idle.values().first == 639 && idle.values().last == 999)
        #expect(idle.bytes < 361 * 8 * 5 / 4 + 32 * 8, "samples only, no hard-limit event: \(idle.bytes)")
        // Active again: one a second, the ring grows past its idle size and stays in order.
        let t0: Int64 = 999 * 10_000
        for i in 1...1200 { idle.append(Double(10_000 + i), at: Timestamp(milliseconds: t0 + Int64(i) * 1000)) }
        let values = idle.values()
        let times = idle.samples().map(\.0.milliseconds)
        #expect(times == times.sorted(), "in time order")
        #expect(values.suffix(1200) == (1...1200).map { Double(10_000 + $0) })
        #expect(idle.oldest.map { t0 + 1_200_000 - $0.milliseconds } ?? 0 <= 3_600_000)
        #expect(idle.count == 1200 + 241, "the 1 s samples and the 10 s ones of the last 40 min, both ends included")
        // Full at 1 s: the capacity bounds it.
        var busy = UsageRing(capacity: 3600, window: hour)
        for i in 0..<5000 { busy.append(Double(i), at: Timestamp(milliseconds: Int64(i) * 1000)) }
        #expect(busy.count == 3600 && busy.values().first == 1400)
        // Swift arrays take the size malloc actually handed out as their capacity, which under
        // concurrent allocation can be a quarter more than asked (seen: 36,284 bytes).
        #expect(busy.bytes <= (3600 * 8 + 61 * 12) * 5 / 4 + 64, "the capacity (and malloc's rounding): \(busy.bytes)")
    }

    /// Hard-limit events are the kernel counter's increases, counted per
    /// minute in a fixed number of slots: the first reading is a baseline, a
    /// counter that goes down (a new cgroup) too, and minutes older than the
    /// slots fall out.
    @Test func hardLimitEventsAreCounterIncreasesPerMinute() {
        let t0 = Timestamp(milliseconds: 1_800_000_000_000)  // a whole minute
        var ring = UsageRing(capacity: 10, eventMinutes: 3)
        ring.recordHardLimitCounter(40, at: t0)  // history: the baseline
        #expect(ring.hardLimitEvents(since: t0) == 0)
        #expect(ring.bytes == 0, "no event yet: no slot")
        ring.recordHardLimitCounter(42, at: t0 + .seconds(5))
        ring.recordHardLimitCounter(42, at: t0 + .seconds(6))
        ring.recordHardLimitCounter(1042, at: t0 + .seconds(70))  // a storm of 1,000 in one reading: one count, not 1,000 entries
        #expect(ring.hardLimitEvents(since: t0) == 1002)
        #expect(ring.hardLimitEvents(since: t0 + .seconds(60)) == 1000, "from the second minute on")
        ring.recordHardLimitCounter(3, at: t0 + .seconds(80))  // reset: a new baseline, nothing counted
        ring.recordHardLimitCounter(4, at: t0 + .seconds(130))
        #expect(ring.hardLimitEvents(since: t0) == 1003)
        // A fourth minute reuses the first minute's slot: the first minute's 2 events are gone.
        ring.recordHardLimitCounter(10, at: t0 + .seconds(190))
        #expect(ring.hardLimitEvents(since: t0) == 1000 + 1 + 6)
        // However many readings, the slots stay three.
        for second in 200..<5000 { ring.recordHardLimitCounter(Int64(10 + second), at: t0 + .seconds(Int64(second))) }
        #expect(ring.bytes == 3 * 12, "no samples: only the three event slots")
        #expect(ring.hardLimitEvents(since: t0) <= 180, "at most the last three minutes' events (one a second)")
    }

    @Test func minutesAreMeanAndPeak() {
        var accumulator = MinuteAccumulator()
        var finished: [UsageMinute] = []
        for second in 0..<150 {
            let value = Double(second % 60)
            if let minute = accumulator.add(
                value, at: Timestamp(milliseconds: 1_800_000_000_000 + Int64(second) * 1000), agent: "a", resource: .memory)
            {
                finished.append(minute)
            }
        }
        #expect(finished.count == 2)
        #expect(finished[0].mean == 29.5 && finished[0].peak == 59 && finished[0].samples == 60)
        #expect(finished[0].minute.milliseconds % 60_000 == 0)
        #expect(finished[1].minute.milliseconds - finished[0].minute.milliseconds == 60_000)
    }
}

@Suite("Usage ring over long spans")
struct UsageRingSpanTests {
    @Test func timesSurviveRebasing() {
        var ring = UsageRing(capacity: 4)
        let start: Int64 = 1_800_000_000_000
        let day: Int64 = 86_400_000
        for i in 0..<40 { ring.append(Double(i), at: Timestamp(milliseconds: start + Int64(i) * day)) }  // 40 days, one a day
        #expect(ring.samples().map(\.0.milliseconds) == (36..<40).map { start + Int64($0) * day })
        #expect(ring.values() == [36, 37, 38, 39])
        #expect(ring.newest == Timestamp(milliseconds: start + 39 * day))
    }
}
