import CorralConfig
import CorralCore
import Testing

@Suite("Every error is reported; an invalid file changes nothing")
struct ManyErrorsTests {
    /// Twelve errors across every section; agents come before the groups they use.
    static let brokenFile = """
        cgroup_root: relative/path
        intervals:
          sampling: 0s
          every: 5m
        reservation: {memory: 150%, cpu: 0.8}
        agents:
          crawler: {group: nosuch}
          ../escape: {}
        groups:
          standard_agent:
            limits:
              memory: {soft: 600MB}
              cpu: {hard: 10 cores}
          batch:
            limits:
              memory: {hard: -1G, action: explode}
          lightweight_agent:
            limits:
              memory: {soft: 1M}
              memory: {soft: 2M}
        """

    @Test func allErrorsAreReportedSortedByPosition() throws {
        let found = issues(of: Self.brokenFile)
        let expected = [
            "1:14 cgroup_root",
            "3:13 intervals.sampling",
            "4:3 intervals.every",
            "5:23 reservation.memory",
            "5:34 reservation.cpu",
            "7:20 agents.crawler.group",
            "8:3 agents.../escape",
            "12:22 groups.standard_agent.limits.memory.soft",
            "13:19 groups.standard_agent.limits.cpu.hard",
            "16:22 groups.batch.limits.memory.hard",
            "16:35 groups.batch.limits.memory.action",
            "20:7 groups.lightweight_agent.limits.memory",
        ]
        #expect(found.map { "\($0.line):\($0.column) \($0.key)" } == expected)
        #expect(found.allSatisfy { !($0.accepted ?? "").isEmpty })
        #expect(found.allSatisfy { !$0.message.isEmpty })
    }

    @Test func errorDescriptionListsEveryIssue() throws {
        do {
            _ = try ConfigLoader.load(Self.brokenFile, file: "broken.yaml")
            Issue.record("accepted")
        } catch {
            let lines = error.description.split(separator: "\n")
            #expect(lines.first == "broken.yaml: 12 errors; nothing was applied")
            #expect(lines.count == 13)
            #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("broken.yaml:") && $0.contains("(accepted: ") })
        }
    }

    @Test func issuesAreSortedEvenWhenFoundOutOfOrder() {
        // Groups are read before agents whatever the order in the file.
        let text = "agents:\n  a1: {group: nope}\ngroups:\n  g: {}\n"
        let found = issues(of: text)
        #expect(found.map(\.line) == [2, 4])
        #expect(found.map(\.key) == ["agents.a1.group", "groups.g"])
    }

    @Test func anInvalidFileYieldsNoConfiguration() {
        // Everything is valid except the last line: nothing of the rest is returned.
        let text = completeFile + "  late-agent: {group: missing}\n"
        #expect(throws: ConfigError.self) { try ConfigLoader.load(text) }
        #expect((try? ConfigLoader.load(text)) == nil)
        let found = issues(of: text)
        #expect(found.count == 1)
        #expect(found.first?.key == "agents.late-agent.group")
    }

    @Test func aFailedLoadLeavesTheBuiltInConfigurationAlone() throws {
        let before = CorralConfiguration.builtIn
        for text in [
            Self.brokenFile, completeFile + "bogus: 1\n", "groups:\n  standard_agent:\n    limits:\n      memory: {hard: 1M}\n  x/y: {}\n",
        ] {
            #expect(throws: ConfigError.self) { try ConfigLoader.load(text) }
        }
        #expect(CorralConfiguration.builtIn == before)
        #expect(CorralConfiguration.builtIn == CorralConfiguration())
        #expect(CorralConfiguration.builtIn.groups["standard_agent"] == QuotaGroup.standard)
        #expect(try ConfigLoader.load("") == .builtIn)
        // A valid file loaded afterwards starts from the built-in configuration, not from the failed attempt.
        let config = try ConfigLoader.load("groups:\n  lightweight_agent:\n    description: Small\n")
        #expect(config.groups["standard_agent"] == QuotaGroup.standard)
        #expect(config.groups["lightweight_agent"]?.limits == QuotaGroup.lightweight.limits)
    }
}
