import CorralCore
import Testing

@Suite struct TimestampTests {
    @Test func roundTripsItsOwnText() {
        for milliseconds: Int64 in [0, 1, 999, 1_764_409_800_123, -1, -86_400_000, 253_402_300_799_999] {
            let time = Timestamp(milliseconds: milliseconds)
            #expect(Timestamp(iso8601: time.iso8601) == time, "\(time.iso8601)")
        }
    }

    @Test func readsFractionsOfAnyLength() {
        let base = Timestamp(iso8601: "2026-11-29T09:50:00Z")!
        #expect(Timestamp(iso8601: "2026-11-29T09:50:00.1Z") == Timestamp(milliseconds: base.milliseconds + 100))
        #expect(Timestamp(iso8601: "2026-11-29T09:50:00.12Z") == Timestamp(milliseconds: base.milliseconds + 120))
        // More than three digits: found by Schemathesis, a range 6..<3 trapped the daemon.
        #expect(Timestamp(iso8601: "2026-11-29T09:50:00.252327Z") == Timestamp(milliseconds: base.milliseconds + 252))
        #expect(Timestamp(iso8601: "0459-10-13T12:37:23.252327+07:21") != nil)
    }

    @Test func appliesOffsets() {
        let utc = Timestamp(iso8601: "2026-11-29T09:50:00Z")!
        #expect(Timestamp(iso8601: "2026-11-29T11:50:00+02:00") == utc)
        #expect(Timestamp(iso8601: "2026-11-29T04:20:00-05:30") == utc)
        #expect(Timestamp(iso8601: "2026-11-29T09:50:00+00:00") == utc)
        #expect(Timestamp(iso8601: "2026-11-29t09:50:00z") == utc)
    }

    @Test func rejectsWhatIsNotATime() {
        for text in [
            "", "2026", "2026-11-29", "2026-11-29T09:50:00", "2026-11-29T09:50:00.Z", "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z", "2026-11-29T09:50:00+2:00", "2026-11-29T09:50:00+02:60", "2026-11-29T09:50:00ZZ",
            "2026-11-29T09:50:00.123", "２０２６-11-29T09:50:00Z", "2026-11-29T09:50:00.1234567890123456789012345Zx",
        ] {
            #expect(Timestamp(iso8601: text) == nil, "\(text)")
        }
    }
}
