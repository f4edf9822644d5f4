import CorralConfig
import CorralCore
import Testing

/// Thousands of damaged copies of a valid file: the loader never crashes, and
/// what it accepts is usable (no limit CorralCore rejects, nothing that traps
/// when turned into kernel settings).
@Suite("Fuzz: mutated files and random amounts")
struct FuzzTests {
    static let tokens = [
        ":", ": ", "-", "- ", "{", "}", "[", "]", ",", "\n", "  ", "\t", "#", "&a ", "*a", "!!str ", "'", "\"", "---", "? ", "~",
        "null", "-5", "0", "0%", "999999999999999999999", "1e9", "%", "1.5", "_", "soft", "hard", "burst", "action", "memory",
        "cpu", "processes", "files", "groups", "agents", "standard_agent", "totals", "<<: *a", "\u{FEFF}", "\u{0}", "\u{1B}",
        "\u{85}", "\u{2028}", "é", "\u{FFFD}", "\\", "\r\n", "\r",
    ]

    static func mutate(_ bytes: inout [UInt8], using rng: inout SplitMix64) {
        guard !bytes.isEmpty else {
            bytes = Array(tokens.randomElement(using: &rng)!.utf8)
            return
        }
        let at = Int.random(in: 0..<bytes.count, using: &rng)
        switch Int.random(in: 0..<9, using: &rng) {
        case 0:
            bytes.remove(at: at)
        case 1:
            bytes.insert(bytes[at], at: at)
        case 2:
            if at + 1 < bytes.count { bytes.swapAt(at, at + 1) }
        case 3:
            bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
        case 4:
            bytes[at] = UInt8.random(in: 0...255, using: &rng)
        case 5:
            bytes.insert(contentsOf: tokens.randomElement(using: &rng)!.utf8, at: at)
        case 6, 7:
            // Duplicate (repeated keys) or delete a whole line.
            let lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
            let index = Int.random(in: 0..<lines.count, using: &rng)
            var changed = Array(lines)
            if changed.count > 1, Bool.random(using: &rng) { changed.remove(at: index) } else { changed.insert(lines[index], at: index) }
            bytes = Array(changed.joined(separator: [10]))
        default:
            // Random bytes as a value: replace what follows a ": " up to the end of its line.
            guard let colon = bytes[at...].firstIndex(of: 58), colon + 1 < bytes.count else { return }
            let end = bytes[colon...].firstIndex(of: 10) ?? bytes.count
            let noise = (0..<Int.random(in: 0...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            bytes.replaceSubrange((colon + 1)..<end, with: [32] + noise)
        }
    }

    @Test(arguments: [0x5EED_0001, 0xC0FF_EE00, 0xDEAD_BEEF] as [UInt64])
    func mutatedFilesNeverCrashTheLoader(seed: UInt64) async {
        var rng = SplitMix64(seed: seed)
        let original = Array(completeFile.utf8)
        var accepted = 0
        var rejected = 0
        for iteration in 0..<1000 {
            // A turn for the other tests: this loop would otherwise hold a thread of the
            // two-thread cooperative pool for many seconds (a CI run's deadlines lapsed so).
            await Task.yield()
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &rng) { Self.mutate(&bytes, using: &rng) }
            let text = String(decoding: bytes, as: UTF8.self)
            let context = Comment(rawValue: "seed \(seed) iteration \(iteration):\n\(text)")
            do {
                let config = try ConfigLoader.load(text)
                accepted += 1
                Self.checkUsable(config, context)
            } catch {
                rejected += 1
                Self.checkIssues(error, in: text, context)
            }
        }
        // Both outcomes are exercised.
        #expect(accepted > 30)
        #expect(rejected > 300)
    }

    /// Amounts each unit accepts, and amounts that are wrong for any or all of them.
    static let validAmounts: [ResourceUnit: [String]] = [
        .bytes: ["4096", "50MB", "100MB", "512M", "1G", "2 GiB", "1.5G"],
        .percentOfCPU: ["0.5%", "5", "10%", "30%", "150%", "300%"],
        .count: ["1", "10", "20", "100", "4096"],
        .bytesPerSecond: ["10MB/s", "512M", "1G/s"],
    ]
    static let oddAmounts = [
        "", "0", "-1", "1e3", "5XB", "max", "~", "999999999999999999999999", "9007199254740993", "0.05", "1.5", "5 cores", "0.1%",
    ]
    static let actionNames = EnforcementAction.allCases.map(\.rawValue) + ["custom_handler", "kill"]

    /// Well-formed files with random amounts: exercises the checks on merged limits.
    @Test func randomAmountsNeverYieldAnUnusableConfiguration() async {
        var rng = SplitMix64(seed: 0xA110_CA7E)
        var accepted = 0
        var rejected = 0
        for iteration in 0..<1500 {
            // A turn for the other tests: this loop would otherwise hold a thread of the
            // two-thread cooperative pool for many seconds (a CI run's deadlines lapsed so).
            await Task.yield()
            /// Mostly a valid amount, from the lower or upper half of the list (soft below hard, usually).
            func amount(_ unit: ResourceUnit, high: Bool = false) -> String {
                if Int.random(in: 0..<8, using: &rng) == 0 { return Self.oddAmounts.randomElement(using: &rng)! }
                let values = Self.validAmounts[unit]!
                let half = values.count / 2
                return Int.random(in: 0..<4, using: &rng) == 0
                    ? values.randomElement(using: &rng)!
                    : values[high ? Int.random(in: half..<values.count, using: &rng) : Int.random(in: 0..<half, using: &rng)]
            }
            func limit(_ resource: Resource) -> String {
                var fields: [String] = []
                if Int.random(in: 0..<3, using: &rng) > 0 { fields.append("soft: \"\(amount(resource.unit))\"") }
                if Int.random(in: 0..<3, using: &rng) > 0 { fields.append("hard: \"\(amount(resource.unit, high: true))\"") }
                if Int.random(in: 0..<3, using: &rng) == 0 { fields.append("burst: \"\(amount(resource.unit))\"") }
                if Int.random(in: 0..<3, using: &rng) > 0 { fields.append("action: \(Self.actionNames.randomElement(using: &rng)!)") }
                return "\(resource.rawValue): {" + fields.joined(separator: ", ") + "}"
            }
            func resource() -> Resource { Resource.allCases.randomElement(using: &rng)! }
            let group = ["standard_agent", "lightweight_agent", "heavy_computation_agent", "batch"].randomElement(using: &rng)!
            var text = "groups:\n  \(group):\n    limits:\n"
            for _ in 0..<Int.random(in: 1...3, using: &rng) { text += "      \(limit(resource()))\n" }
            let total = [Resource.memory, .cpu, .processes].randomElement(using: &rng)!
            text += "    totals: {\(total.rawValue): \"\(amount(total.unit, high: true))\"}\n"
            text += "agents:\n  a1:\n    group: \(group)\n    limits:\n      \(limit(resource()))\n"
            let context = Comment(rawValue: "iteration \(iteration):\n\(text)")
            do {
                let config = try ConfigLoader.load(text)
                accepted += 1
                Self.checkUsable(config, context)
            } catch {
                rejected += 1
                Self.checkIssues(error, in: text, context)
            }
        }
        #expect(accepted > 40)
        #expect(rejected > 100)
    }

    static func checkIssues(_ error: ConfigError, in text: String, _ context: Comment) {
        let lineCount =
            text.unicodeScalars.filter { $0 == "\n" || $0 == "\r" || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}" }.count + 1
        #expect(!error.issues.isEmpty, context)
        for issue in error.issues {
            #expect(issue.line >= 1 && issue.column >= 1, "\(issue)")
            #expect(issue.line <= lineCount + 1, "\(issue)")
            #expect(!(issue.accepted ?? "").isEmpty, "\(issue)")
            #expect(!issue.message.isEmpty, "\(issue)")
        }
        let positions = error.issues.map { [$0.line, $0.column] }
        #expect(positions == positions.sorted { $0.lexicographicallyPrecedes($1) }, context)
        // The same text fails the same way.
        #expect(throws: error) { try ConfigLoader.load(text) }
    }

    static func checkUsable(_ config: CorralConfiguration, _ context: Comment) {
        let host = HostCapacity(memoryBytes: 64 << 30, cpus: 16, pidMax: 4_194_304)
        _ = config.reservation.rootSettings(for: host)
        for share in [config.reservation.memory, config.reservation.cpu, config.reservation.processes] {
            #expect(share > 0 && share <= 1, context)
        }
        for interval in [config.intervals.sampling, config.intervals.analytics, config.intervals.analyticsWindow] {
            #expect(interval > .zero, context)
        }
        for (name, group) in config.groups {
            #expect(CgroupName.isValid(name), context)
            #expect(!group.limits.limits.isEmpty, context)
            for (resource, limit) in group.limits.limits {
                #expect(limit.problems(for: resource).isEmpty, context)
            }
            #expect(group.totals.values.allSatisfy { $0 > 0 }, context)
            _ = group.totalsSettings
            _ = CgroupSettings(agentLimits: group.limits)
        }
        for (id, agent) in config.agents {
            #expect(CgroupName.isValid(id), context)
            let groupName = agent.group ?? QuotaGroup.defaultGroupName
            guard let limits = config.limits(agent: id, group: groupName) else {
                Issue.record(Comment(rawValue: "agent \(id) in unknown group \(groupName); \(context.rawValue)"))
                continue
            }
            for (resource, limit) in limits.limits {
                #expect(limit.problems(for: resource).isEmpty, context)
            }
            _ = CgroupSettings(agentLimits: limits)
        }
    }
}
