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
        #expect(UsageRing(capacity: 3600).bytes == 3600 * 8)
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
