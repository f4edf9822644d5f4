import CorralCore
import Testing

@Suite("Sizes, percentages, counts, durations")
struct QuantityTests {
    @Test(arguments: [
        ("512M", 536_870_912.0), ("2G", 2_147_483_648), ("1.5GiB", 1_610_612_736), ("50MB", 50_000_000),
        ("100MB", 100_000_000), ("4096", 4096), ("1k", 1024), ("1kB", 1000), ("1KiB", 1024), ("2 GiB", 2_147_483_648),
        ("50_000_000", 50_000_000), ("0", 0), (" 64M ", 67_108_864), ("1T", 1_099_511_627_776), ("10b", 10),
        ("1.5k", 1536), ("3mi", 3_145_728),
    ])
    func sizes(text: String, bytes: Double) {
        #expect(Quantity.parseSize(text) == .success(bytes))
    }

    @Test(arguments: [
        ("-5M", "negative value"), ("", "empty value"), ("abc", "not a number"), ("5X", "unknown size unit 'X'"),
        ("1e6", "unknown size unit 'e6'"), ("5 megabytes", "unknown size unit 'megabytes'"), ("M", "not a number"),
        ("1..5M", "unknown size unit '.5M'"), ("_5", "not a number"), ("5i", "unknown size unit 'i'"),
    ])
    func badSizes(text: String, reason: String) throws {
        guard case .failure(let error) = Quantity.parseSize(text) else {
            Issue.record("'\(text)' should not parse")
            return
        }
        #expect(error.reason == reason)
        #expect(error.value == text)
        #expect(error.description.contains("accepted"))
    }

    @Test(arguments: [("30%", 30.0), ("30", 30), ("2.5%", 2.5), ("250%", 250), (" 10 % ", 10)])
    func percents(text: String, value: Double) {
        #expect(Quantity.parsePercent(text) == .success(value))
    }

    @Test(arguments: ["-5%", "5 cpus", "x", "%"])
    func badPercents(text: String) {
        #expect(throws: Quantity.ParseError.self) { try Quantity.parsePercent(text).get() }
    }

    @Test func counts() throws {
        #expect(Quantity.parseCount("100") == .success(100))
        #expect(Quantity.parseCount("2_000") == .success(2000))
        #expect(throws: Quantity.ParseError.self) { try Quantity.parseCount("1.5").get() }
        #expect(throws: Quantity.ParseError.self) { try Quantity.parseCount("10 procs").get() }
    }

    @Test(arguments: [
        ("30s", Duration.seconds(30)), ("5m", .seconds(300)), ("10m", .seconds(600)), ("500ms", .milliseconds(500)),
        ("1h", .seconds(3600)), ("0", .zero), ("2", .seconds(2)), ("1.5s", .milliseconds(1500)), ("2d", .seconds(172_800)),
        ("250us", .microseconds(250)),
    ])
    func durations(text: String, duration: Duration) {
        #expect(Quantity.parseDuration(text) == .success(duration))
    }

    @Test(arguments: ["-1s", "5 fortnights", "soon", ""])
    func badDurations(text: String) {
        #expect(throws: Quantity.ParseError.self) { try Quantity.parseDuration(text).get() }
    }

    /// The units the error message and `--since`'s help list are the units the parser takes.
    @Test func acceptedDurationUnitsAreTheParsedOnes() throws {
        let text = Quantity.acceptedDurations
        let list = try #require(
            text.range(of: "unit: ").flatMap { start in
                text.range(of: " (", range: start.upperBound..<text.endIndex).map { text[start.upperBound..<$0.lowerBound] }
            })
        let units = list.split(separator: ", ").map(String.init)
        #expect(units == ["us", "ms", "s", "m", "h", "d"])
        for unit in units {
            #expect((try? Quantity.parseDuration("2" + unit).get()) != nil, "\(unit) is listed but not parsed")
        }
        guard case .failure(let error) = Quantity.parseDuration("3w") else {
            Issue.record("3w parsed")
            return
        }
        #expect(error.description.contains(text))
    }

    @Test func formatting() {
        #expect(Quantity.formatBytes(100_000_000) == "100 MB")
        #expect(Quantity.formatBytes(536_870_912) == "512 MiB")
        #expect(Quantity.formatBytes(99_999_744) == "95.4 MiB")
        #expect(Quantity.formatBytes(812) == "812 B")
        #expect(Quantity.formatBytes(2_000_000_000) == "2 GB")
        #expect(Quantity.formatBytes(1536) == "1.5 KiB")
        #expect(Quantity.formatPercent(30) == "30%")
        #expect(Quantity.formatPercent(2.25) == "2.3%")
        #expect(Quantity.formatDuration(.seconds(300)) == "5m")
        #expect(Quantity.formatDuration(.milliseconds(1500)) == "1500ms")
        #expect(Quantity.formatSeconds(0.0452) == "45.2 ms")
        #expect(Quantity.formatSeconds(3.5) == "3.5 s")
        #expect(Quantity.formatDecimal(-0.04, places: 1) == "0")
    }

    @Test func roundTripsThroughFormatting() throws {
        for text in ["512M", "2G", "50MB", "1.5GiB", "100MB"] {
            let bytes = try Quantity.parseSize(text).get()
            #expect(try Quantity.parseSize(Quantity.formatBytes(bytes)).get() == bytes, "\(text)")
        }
    }
}
