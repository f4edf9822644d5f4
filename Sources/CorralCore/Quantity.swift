/// Parsing and formatting of sizes, percentages, counts and durations as
/// people write them in flags and configuration files.
///
/// Sizes: a bare number is bytes; `K M G T P` and `KiB MiB GiB TiB PiB` are
/// powers of 1024 (as systemd and Docker read them); `kB KB MB GB TB PB` are
/// powers of 1000 (the built-in groups' numbers: 50 MB is 50_000_000). Underscores may
/// group digits (`50_000_000`).
public enum Quantity {
    /// Why a text is not a valid quantity. `description` names the value and what is accepted.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var value: String
        public var reason: String
        public var accepted: String

        public var description: String { "\(reason) in '\(value)'; accepted: \(accepted)" }
    }

    public static let acceptedSizes =
        "a byte count or a number with a unit: K, M, G, T (×1024), KiB, MiB, GiB, TiB (×1024), kB, MB, GB, TB (×1000), e.g. 512M, 2G, 1.5GiB, 50MB"
    /// 10,000 CPUs: far above any host, far below an overflow of cpu.max's microseconds.
    public static let maximumPercent: Double = 1_000_000
    /// Counts above 2^53 are not whole numbers in a `Double` and overflow `Int64` once written to the kernel.
    public static let maximumCount: Double = 9_007_199_254_740_992
    public static let acceptedPercents = "a percentage of one CPU up to 1000000% (10000 CPUs), e.g. 30%, 250% (two and a half CPUs), 2.5%"
    public static let acceptedCounts = "a whole number up to 9007199254740992, e.g. 100"
    public static let acceptedDurations = "a number with a unit: us, ms, s, m, h, d (e.g. 500ms, 30s, 5m, 1h, 2d); a bare number is seconds"

    private static let sizeUnits: [String: Double] = {
        var units: [String: Double] = ["": 1, "b": 1]
        let binary = ["k", "m", "g", "t", "p"]
        for (index, prefix) in binary.enumerated() {
            let factor = pow(1024, index + 1)
            units[prefix] = factor
            units[prefix + "ib"] = factor
            units[prefix + "i"] = factor
            units[prefix + "b"] = pow(1000, index + 1)
        }
        return units
    }()

    private static func pow(_ base: Double, _ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<exponent { result *= base }
        return result
    }

    /// Splits "1.5GiB" into (1.5, "GiB"). Rejects signs, exponents and empty numbers.
    static func splitNumber(_ raw: String, accepted: String) -> Result<(Double, String), ParseError> {
        let text = raw.trimmingSpaces()
        func fail(_ reason: String) -> Result<(Double, String), ParseError> {
            .failure(ParseError(value: raw, reason: reason, accepted: accepted))
        }
        if text.isEmpty { return fail("empty value") }
        if text.hasPrefix("-") { return fail("negative value") }
        var digits = ""
        var rest = Substring(text)
        var seenDot = false
        var previousWasDigit = false
        while let char = rest.first {
            if char.isASCII, char.isNumber {
                digits.append(char)
                previousWasDigit = true
            } else if char == "_", previousWasDigit, let next = rest.dropFirst().first, next.isASCII, next.isNumber {
                previousWasDigit = false
            } else if char == ".", !seenDot {
                seenDot = true
                digits.append(char)
                previousWasDigit = false
            } else {
                break
            }
            rest = rest.dropFirst()
        }
        guard digits.contains(where: \.isNumber), let number = Double(digits), number.isFinite else {
            return fail("not a number")
        }
        return .success((number, String(rest).trimmingSpaces()))
    }

    /// Parses a size into bytes ("512M" → 536870912, "50MB" → 50000000, "4096" → 4096).
    public static func parseSize(_ text: String) -> Result<Double, ParseError> {
        splitNumber(text, accepted: acceptedSizes).flatMap { number, unit in
            guard let factor = sizeUnits[unit.lowercased()], unit.lowercased() != "i" else {
                return .failure(ParseError(value: text, reason: "unknown size unit '\(unit)'", accepted: acceptedSizes))
            }
            let bytes = (number * factor).rounded()
            guard bytes <= 9.0e18 else {
                return .failure(ParseError(value: text, reason: "size too large", accepted: acceptedSizes))
            }
            return .success(bytes)
        }
    }

    /// Parses a percentage of one CPU ("30%" and "30" → 30).
    public static func parsePercent(_ text: String) -> Result<Double, ParseError> {
        splitNumber(text, accepted: acceptedPercents).flatMap { number, unit in
            guard unit.isEmpty || unit == "%" else {
                return .failure(ParseError(value: text, reason: "unknown unit '\(unit)'", accepted: acceptedPercents))
            }
            guard number <= maximumPercent else {
                return .failure(ParseError(value: text, reason: "too large", accepted: acceptedPercents))
            }
            return .success(number)
        }
    }

    /// Parses a whole count ("100", "2_000").
    public static func parseCount(_ text: String) -> Result<Double, ParseError> {
        splitNumber(text, accepted: acceptedCounts).flatMap { number, unit in
            guard unit.isEmpty else {
                return .failure(ParseError(value: text, reason: "unexpected unit '\(unit)'", accepted: acceptedCounts))
            }
            guard number == number.rounded() else {
                return .failure(ParseError(value: text, reason: "not a whole number", accepted: acceptedCounts))
            }
            guard number <= maximumCount else {
                return .failure(ParseError(value: text, reason: "too large", accepted: acceptedCounts))
            }
            return .success(number)
        }
    }

    /// Parses an amount in `unit`.
    public static func parse(_ text: String, as unit: ResourceUnit) -> Result<Double, ParseError> {
        switch unit {
        case .bytes: parseSize(text)
        case .percentOfCPU: parsePercent(text)
        case .count: parseCount(text)
        case .bytesPerSecond:
            parseSize(text.hasSuffix("/s") ? String(text.dropLast(2)) : text)
        }
    }

    /// What `parse(_:as:)` accepts for `unit`, for error messages.
    public static func accepted(for unit: ResourceUnit) -> String {
        switch unit {
        case .bytes: acceptedSizes
        case .percentOfCPU: acceptedPercents
        case .count: acceptedCounts
        case .bytesPerSecond: acceptedSizes + ", optionally followed by /s"
        }
    }

    /// Parses a duration ("30s", "5m", "500ms", "1h", "0"; bare numbers are seconds).
    public static func parseDuration(_ text: String) -> Result<Duration, ParseError> {
        splitNumber(text, accepted: acceptedDurations).flatMap { number, unit in
            let seconds: Double
            switch unit.lowercased() {
            case "", "s", "sec", "secs", "second", "seconds": seconds = number
            case "ms", "msec": seconds = number / 1000
            case "us", "usec", "µs": seconds = number / 1_000_000
            case "m", "min", "mins", "minute", "minutes": seconds = number * 60
            case "h", "hr", "hour", "hours": seconds = number * 3600
            case "d", "day", "days": seconds = number * 86400
            default:
                return .failure(ParseError(value: text, reason: "unknown duration unit '\(unit)'", accepted: acceptedDurations))
            }
            guard seconds < 1.0e9 else {
                return .failure(ParseError(value: text, reason: "duration too long", accepted: acceptedDurations))
            }
            return .success(.microseconds(Int64((seconds * 1_000_000).rounded())))
        }
    }

    // MARK: Formatting

    /// "100 MB", "512 MiB", "95.4 MiB", "812 B": the largest binary unit, whole
    /// when exact; decimal sizes (50 MB) stay decimal.
    public static func formatBytes(_ bytes: Double) -> String {
        let names = ["KiB", "MiB", "GiB", "TiB", "PiB"]
        let siNames = ["kB", "MB", "GB", "TB", "PB"]
        if bytes < 1024 { return "\(Int64(bytes)) B" }
        var exponent = 1
        while exponent < 5, bytes >= pow(1024, exponent + 1) { exponent += 1 }
        let binary = pow(1024, exponent)
        if bytes.truncatingRemainder(dividingBy: binary) == 0 {
            return "\(Int64(bytes / binary)) \(names[exponent - 1])"
        }
        for si in stride(from: 5, through: 2, by: -1) {
            let decimal = pow(1000, si)
            if bytes >= decimal, bytes.truncatingRemainder(dividingBy: decimal) == 0, bytes / decimal < 1000 {
                return "\(Int64(bytes / decimal)) \(siNames[si - 1])"
            }
        }
        return formatDecimal(bytes / binary, places: 1) + " " + names[exponent - 1]
    }

    /// "30%", "2.5%".
    public static func formatPercent(_ percent: Double) -> String {
        formatDecimal(percent, places: 1) + "%"
    }

    public static func formatCount(_ count: Double) -> String {
        count == count.rounded() ? "\(Int64(count))" : formatDecimal(count, places: 1)
    }

    /// "1.234 s", "45 ms", "5m", used in summaries.
    public static func formatSeconds(_ seconds: Double) -> String {
        if seconds < 1 { return formatDecimal(seconds * 1000, places: 1) + " ms" }
        return formatDecimal(seconds, places: 2) + " s"
    }

    /// Configuration spelling of a duration: "30s", "5m", "500ms".
    public static func formatDuration(_ duration: Duration) -> String {
        let micros = duration.microseconds
        if micros == 0 { return "0s" }
        if micros % 3_600_000_000 == 0 { return "\(micros / 3_600_000_000)h" }
        if micros % 60_000_000 == 0 { return "\(micros / 60_000_000)m" }
        if micros % 1_000_000 == 0 { return "\(micros / 1_000_000)s" }
        if micros % 1000 == 0 { return "\(micros / 1000)ms" }
        return "\(micros)us"
    }

    /// Fixed-point rendering without Foundation; drops a trailing ".0".
    public static func formatDecimal(_ value: Double, places: Int) -> String {
        let scale = pow(10, places)
        let scaled = (abs(value) * scale).rounded()
        let whole = Int64(scaled / scale)
        let fraction = Int64(scaled.truncatingRemainder(dividingBy: scale))
        var text = value < 0 && scaled > 0 ? "-\(whole)" : "\(whole)"
        if fraction != 0 {
            var digits = String(fraction)
            while digits.count < places { digits = "0" + digits }
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return text
    }
}

extension Duration {
    /// Whole microseconds in this duration (truncated).
    public var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

    /// This duration in seconds as a `Double`.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension StringProtocol {
    /// The string without leading and trailing spaces, tabs and newlines.
    public func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return String(self[start...end])
    }
}
