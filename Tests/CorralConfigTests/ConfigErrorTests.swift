import CorralConfig
import CorralCore
import Testing

/// One invalid file and the single issue it must be rejected with.
struct ErrorCase: Sendable, CustomTestStringConvertible {
    var name: String
    var text: String
    var line: Int
    var column: Int
    var key: String
    var value: String?
    /// A part of the message.
    var message: String
    /// A part of what is accepted.
    var accepted: String

    var testDescription: String { name }
}

private let sizes = Quantity.acceptedSizes
private let actions = EnforcementAction.acceptedNames

/// `groups: standard_agent: limits: memory: <flow>` — the flow mapping's first key is at 4:16.
private func memory(_ flow: String) -> String {
    "groups:\n  standard_agent:\n    limits:\n      memory: \(flow)\n"
}

let errorCases: [ErrorCase] = [
    // Unknown keys, at every level.
    ErrorCase(
        name: "unknown top-level key", text: "cgroup_rot: /x\n", line: 1, column: 1, key: "cgroup_rot", value: "cgroup_rot",
        message: "unknown key 'cgroup_rot'", accepted: "cgroup_root, intervals, reservation, escalation, recovery, handlers, groups, agents"
    ),
    ErrorCase(
        name: "unknown key in intervals", text: "intervals:\n  sample: 1s\n", line: 2, column: 3, key: "intervals.sample",
        value: "sample", message: "unknown key 'sample'",
        accepted: "sampling, idle_sampling, analytics, analytics_window, history_retention"),
    ErrorCase(
        name: "unknown key in a group", text: "groups:\n  standard_agent:\n    descripton: x\n", line: 3, column: 5,
        key: "groups.standard_agent.descripton", value: "descripton", message: "unknown key 'descripton'",
        accepted: "description, limits, totals, escalation"),
    ErrorCase(
        name: "unknown key in a limit", text: memory("{soft: 100MB, hrad: 400MB}"), line: 4, column: 29,
        key: "groups.standard_agent.limits.memory.hrad", value: "hrad", message: "unknown key 'hrad'", accepted: "soft, hard, burst, action"
    ),
    ErrorCase(
        name: "unknown key in an agent", text: "agents:\n  a1:\n    grup: standard_agent\n", line: 3, column: 5, key: "agents.a1.grup",
        value: "grup", message: "unknown key 'grup'", accepted: "group, limits"),
    ErrorCase(
        name: "unknown key in escalation", text: "escalation:\n  grace: 5s\n", line: 2, column: 3, key: "escalation.grace", value: "grace",
        message: "unknown key 'grace'", accepted: "delays, termination_grace"),
    ErrorCase(
        name: "unknown key in a group's escalation", text: "groups:\n  standard_agent:\n    escalation: {delay: {warn: 1s}}\n",
        line: 3, column: 18, key: "groups.standard_agent.escalation.delay", value: "delay", message: "unknown key 'delay'",
        accepted: "delays, termination_grace"),
    ErrorCase(
        name: "unknown resource in limits", text: "groups:\n  standard_agent:\n    limits:\n      gpu: {hard: 1}\n", line: 4, column: 7,
        key: "groups.standard_agent.limits.gpu", value: "gpu", message: "unknown resource", accepted: "memory, cpu, processes, files"),

    // soft > hard.
    ErrorCase(
        name: "soft above hard in one limit",
        text: "groups:\n  batch:\n    limits:\n      memory: {soft: 2G, hard: 1G, action: warn}\n", line: 4, column: 22,
        key: "groups.batch.limits.memory.soft", value: "2G", message: "soft limit 2 GiB is above the hard limit 1 GiB",
        accepted: "at most the hard limit (1 GiB)"),
    ErrorCase(
        name: "soft above the seed's hard", text: memory("{soft: 600MB}"), line: 4, column: 22,
        key: "groups.standard_agent.limits.memory.soft", value: "600MB",
        message: "soft limit 600 MB is above the hard limit 500 MB (from the built-in group standard_agent)", accepted: "500 MB"),
    ErrorCase(
        name: "soft above the seed's hard, block style",
        text: "groups:\n  lightweight_agent:\n    limits:\n      processes:\n        soft: 30\n", line: 5, column: 15,
        key: "groups.lightweight_agent.limits.processes.soft", value: "30", message: "soft limit 30 is above the hard limit 20",
        accepted: "at most the hard limit (20)"),
    ErrorCase(
        name: "soft above hard after an agent's override", text: "agents:\n  a1:\n    limits:\n      memory: {soft: 600MB}\n",
        line: 4, column: 22, key: "agents.a1.limits.memory.soft", value: "600MB",
        message: "soft limit 600 MB is above the hard limit 500 MB (from group standard_agent)", accepted: "500 MB"),

    // Sizes and amounts.
    ErrorCase(
        name: "negative size", text: memory("{hard: -5M}"), line: 4, column: 22, key: "groups.standard_agent.limits.memory.hard",
        value: "-5M", message: "negative value", accepted: sizes),
    ErrorCase(
        name: "unparsable size", text: memory("{hard: lots}"), line: 4, column: 22, key: "groups.standard_agent.limits.memory.hard",
        value: "lots", message: "not a number", accepted: sizes),
    ErrorCase(
        name: "unknown size unit", text: memory("{hard: 5XB}"), line: 4, column: 22, key: "groups.standard_agent.limits.memory.hard",
        value: "5XB", message: "unknown size unit 'XB'", accepted: sizes),
    ErrorCase(
        name: "empty size", text: memory("{hard: }"), line: 4, column: 22, key: "groups.standard_agent.limits.memory.hard",
        value: "", message: "empty value", accepted: sizes),
    ErrorCase(
        name: "zero hard limit", text: memory("{hard: 0}"), line: 4, column: 22, key: "groups.standard_agent.limits.memory.hard",
        value: "0", message: "must be greater than zero", accepted: "above zero"),
    ErrorCase(
        name: "fractional process count", text: "groups:\n  standard_agent:\n    limits:\n      processes: {hard: 2.5}\n", line: 4,
        column: 25, key: "groups.standard_agent.limits.processes.hard", value: "2.5", message: "not a whole number",
        accepted: Quantity.acceptedCounts),
    ErrorCase(
        name: "process count too large for the kernel",
        text: "groups:\n  standard_agent:\n    limits:\n      processes: {hard: 99999999999999999999}\n", line: 4, column: 25,
        key: "groups.standard_agent.limits.processes.hard", value: "99999999999999999999", message: "too large",
        accepted: "a whole number up to"),
    ErrorCase(
        name: "cpu percentage too large for cpu.max", text: "groups:\n  standard_agent:\n    totals: {cpu: 99999999999999999%}\n",
        line: 3, column: 19, key: "groups.standard_agent.totals.cpu", value: "99999999999999999%", message: "too large",
        accepted: "a percentage of one CPU up to"),
    ErrorCase(
        name: "cpu unit", text: "groups:\n  standard_agent:\n    limits:\n      cpu: {hard: 2 cores}\n", line: 4, column: 19,
        key: "groups.standard_agent.limits.cpu.hard", value: "2 cores", message: "unknown unit 'cores'", accepted: Quantity.acceptedPercents
    ),
    ErrorCase(
        name: "cpu hard limit below the kernel's minimum",
        text: "groups:\n  standard_agent:\n    limits:\n      cpu: {soft: 0, hard: 0.05%}\n",
        line: 4, column: 28, key: "groups.standard_agent.limits.cpu.hard", value: "0.05%", message: "below the kernel's minimum of 0.1%",
        accepted: "at least 0.1%"),

    // Bursts.
    ErrorCase(
        name: "cpu burst below hard", text: "groups:\n  standard_agent:\n    limits:\n      cpu: {burst: 20%}\n", line: 4, column: 20,
        key: "groups.standard_agent.limits.cpu.burst", value: "20%",
        message: "cpu burst 20% is below the hard limit 30% (from the built-in group standard_agent)",
        accepted: "at or above the hard limit (30%)"),
    ErrorCase(
        name: "memory burst above hard", text: memory("{burst: 600MB}"), line: 4, column: 23,
        key: "groups.standard_agent.limits.memory.burst",
        value: "600MB", message: "burst 600 MB is not between soft 200 MB (from the built-in group standard_agent) and hard 500 MB",
        accepted: "between the soft and the hard limit (200 MB to 500 MB)"),

    // Actions.
    ErrorCase(
        name: "unknown action", text: memory("{action: explode}"), line: 4, column: 24, key: "groups.standard_agent.limits.memory.action",
        value: "explode", message: "unknown action", accepted: actions),
    ErrorCase(
        name: "the seed's custom_handler", text: memory("{action: custom_handler}"), line: 4, column: 24,
        key: "groups.standard_agent.limits.memory.action", value: "custom_handler", message: "custom_handler is called custom",
        accepted: actions),
    ErrorCase(
        name: "the seed's custom_handler as a delay", text: "escalation:\n  delays: {custom_handler: 1s}\n", line: 2, column: 12,
        key: "escalation.delays.custom_handler", value: "custom_handler", message: "custom_handler is called custom", accepted: actions),
    ErrorCase(
        name: "unknown action in delays", text: "escalation:\n  delays: {explode: 1s}\n", line: 2, column: 12,
        key: "escalation.delays.explode", value: "explode", message: "unknown action", accepted: actions),

    // Durations and intervals.
    ErrorCase(
        name: "bad duration", text: "intervals:\n  analytics: 5 fortnights\n", line: 2, column: 14, key: "intervals.analytics",
        value: "5 fortnights", message: "unknown duration unit 'fortnights'", accepted: Quantity.acceptedDurations),
    ErrorCase(
        name: "zero sampling interval", text: "intervals:\n  sampling: 0s\n", line: 2, column: 13, key: "intervals.sampling", value: "0s",
        message: "must be greater than zero", accepted: "above zero"),
    ErrorCase(
        name: "sampling interval that rounds to zero", text: "intervals:\n  sampling: 0.0000001\n", line: 2, column: 13,
        key: "intervals.sampling", value: "0.0000001", message: "must be greater than zero", accepted: "above zero"),
    ErrorCase(
        name: "negative delay", text: "escalation:\n  delays: {throttle: -1s}\n", line: 2, column: 22, key: "escalation.delays.throttle",
        value: "-1s", message: "negative value", accepted: Quantity.acceptedDurations),
    ErrorCase(
        name: "bad termination grace", text: "escalation:\n  termination_grace: soon\n", line: 2, column: 22,
        key: "escalation.termination_grace", value: "soon", message: "not a number", accepted: Quantity.acceptedDurations),

    // Reservation.
    ErrorCase(
        name: "reservation above 100%", text: "reservation:\n  memory: 150%\n", line: 2, column: 11, key: "reservation.memory",
        value: "150%",
        message: "more than the whole host", accepted: "at most 100%"),
    ErrorCase(
        name: "zero reservation", text: "reservation:\n  cpu: 0%\n", line: 2, column: 8, key: "reservation.cpu", value: "0%",
        message: "must be greater than zero", accepted: "above 0%"),
    ErrorCase(
        name: "reservation written as a fraction", text: "reservation: {cpu: 0.8}\n", line: 1, column: 20, key: "reservation.cpu",
        value: "0.8",
        message: "ambiguous", accepted: "e.g. 75%"),
    ErrorCase(
        name: "reservation that is not a percentage", text: "reservation: {processes: most}\n", line: 1, column: 26,
        key: "reservation.processes",
        value: "most", message: "not a percentage", accepted: "e.g. 75%"),

    // Names.
    ErrorCase(
        name: "group name with ..", text: "groups:\n  ../x:\n    limits: {}\n", line: 2, column: 3, key: "groups.../x", value: "../x",
        message: "must start with a letter or digit", accepted: CgroupName.pattern),
    ErrorCase(
        name: "group name with a slash", text: "groups:\n  a/b:\n    limits: {}\n", line: 2, column: 3, key: "groups.a/b", value: "a/b",
        message: "contains '/'", accepted: CgroupName.pattern),
    ErrorCase(
        name: "reserved group name", text: "groups:\n  supervisor: {}\n", line: 2, column: 3, key: "groups.supervisor", value: "supervisor",
        message: "reserved", accepted: CgroupName.pattern),
    ErrorCase(
        name: "agent id with a space", text: "agents:\n  \"web crawler\": {group: standard_agent}\n", line: 2, column: 3,
        key: "agents.web crawler", value: "web crawler", message: "contains ' '", accepted: CgroupName.pattern),
    ErrorCase(
        name: "agent id too long", text: "agents:\n  \(String(repeating: "a", count: 65)): {}\n", line: 2, column: 3,
        key: "agents.\(String(repeating: "a", count: 65))", value: String(repeating: "a", count: 65), message: "at most 64",
        accepted: CgroupName.pattern),
    ErrorCase(
        name: "agent in an unknown group", text: "agents:\n  crawler:\n    group: nosuch\n", line: 3, column: 12,
        key: "agents.crawler.group",
        value: "nosuch", message: "unknown group", accepted: "heavy_computation_agent, lightweight_agent, standard_agent"),
    ErrorCase(
        name: "relative cgroup root", text: "cgroup_root: corral\n", line: 1, column: 14, key: "cgroup_root", value: "corral",
        message: "absolute path", accepted: "/sys/fs/cgroup/corral"),
    ErrorCase(
        name: "cgroup root with ..", text: "cgroup_root: /sys/fs/cgroup/../etc\n", line: 1, column: 14, key: "cgroup_root",
        value: "/sys/fs/cgroup/../etc", message: "without '..'", accepted: "/sys/fs/cgroup/corral"),

    // New groups and limits must be complete.
    ErrorCase(
        name: "new group without limits", text: "groups:\n  batch:\n    description: Batch\n", line: 2, column: 3, key: "groups.batch",
        value: nil, message: "a new group needs limits", accepted: "limits:"),
    ErrorCase(
        name: "new group with empty limits", text: "groups:\n  batch:\n    limits: {}\n", line: 3, column: 13, key: "groups.batch.limits",
        value: nil, message: "at least one limit", accepted: "limits:"),
    ErrorCase(
        name: "new limit without soft and action", text: "groups:\n  batch:\n    limits:\n      memory: {hard: 1G}\n", line: 4, column: 7,
        key: "groups.batch.limits.memory", value: nil, message: "a new memory limit needs soft, action", accepted: "soft, hard, action"),
    ErrorCase(
        name: "new limit in a seed group without hard",
        text: "groups:\n  standard_agent:\n    limits:\n      files: {soft: 10, action: warn}\n",
        line: 4, column: 7, key: "groups.standard_agent.limits.files", value: nil, message: "a new files limit needs hard",
        accepted: "soft, hard, action"),
    ErrorCase(
        name: "agent limit its group lacks, without hard", text: "agents:\n  a1:\n    limits:\n      files: {soft: 5}\n", line: 4,
        column: 7,
        key: "agents.a1.limits.files", value: nil, message: "group standard_agent sets no files limit", accepted: "hard"),

    // Totals.
    ErrorCase(
        name: "totals for a resource without a controller", text: "groups:\n  standard_agent:\n    totals: {network: 10M}\n", line: 3,
        column: 14, key: "groups.standard_agent.totals.network", value: "network", message: "only for memory, cpu and processes",
        accepted: "memory, cpu, processes"),
    ErrorCase(
        name: "totals for an unknown resource", text: "groups:\n  standard_agent:\n    totals: {gpus: 2}\n", line: 3, column: 14,
        key: "groups.standard_agent.totals.gpus", value: "gpus", message: "unknown resource", accepted: "memory, cpu, processes"),
    ErrorCase(
        name: "zero total", text: "groups:\n  standard_agent:\n    totals: {processes: 0}\n", line: 3, column: 25,
        key: "groups.standard_agent.totals.processes", value: "0", message: "must be greater than zero", accepted: "above zero"),
    ErrorCase(
        name: "cpu total below the kernel's minimum", text: "groups:\n  standard_agent:\n    totals: {cpu: 0.01%}\n", line: 3, column: 19,
        key: "groups.standard_agent.totals.cpu", value: "0.01%", message: "minimum of 0.1%", accepted: Quantity.acceptedPercents),

    // Shapes.
    ErrorCase(
        name: "a list where a mapping is expected", text: "groups:\n  - standard_agent\n", line: 2, column: 3, key: "groups", value: nil,
        message: "expected a mapping (key: value lines), not a list", accepted: "group names mapped to"),
    ErrorCase(
        name: "a value where a mapping is expected", text: "intervals: 1s\n", line: 1, column: 12, key: "intervals", value: "1s",
        message: "expected a mapping", accepted: "sampling, idle_sampling, analytics, analytics_window, history_retention"),
    ErrorCase(
        name: "a value where a limit is expected", text: memory("512M"), line: 4, column: 15, key: "groups.standard_agent.limits.memory",
        value: "512M", message: "expected a mapping", accepted: "soft, hard, burst, action"),
    ErrorCase(
        name: "a mapping where a value is expected", text: "intervals:\n  sampling: {every: 1s}\n", line: 2, column: 13,
        key: "intervals.sampling",
        value: nil, message: "expected a single value, not a mapping", accepted: Quantity.acceptedDurations),
    ErrorCase(
        name: "a list where a value is expected", text: memory("{hard: [1G, 2G]}"), line: 4, column: 22,
        key: "groups.standard_agent.limits.memory.hard", value: nil, message: "expected a single value, not a list", accepted: sizes),
    ErrorCase(
        name: "a list as the document", text: "- groups\n- agents\n", line: 1, column: 1, key: "", value: nil,
        message: "expected a mapping", accepted: "cgroup_root, intervals"),
    ErrorCase(
        name: "a list as a key", text: "? [a, b]\n: 1\n", line: 1, column: 3, key: "", value: nil,
        message: "a key must be a plain name, not a list",
        accepted: "cgroup_root, intervals"),
    ErrorCase(
        name: "a description that is a mapping", text: "groups:\n  standard_agent:\n    description: {text: x}\n", line: 3, column: 18,
        key: "groups.standard_agent.description", value: nil, message: "expected text, not a mapping", accepted: "text"),

    // Duplicate keys: reported at the second one, with the key path and where the first is.
    ErrorCase(
        name: "duplicate top-level key", text: "intervals: {sampling: 1s}\nintervals: {sampling: 2s}\n", line: 2, column: 1,
        key: "intervals",
        value: "intervals", message: "more than once in this mapping (first at 1:1)", accepted: "each key once"),
    ErrorCase(
        name: "duplicate resource", text: "groups:\n  standard_agent:\n    limits:\n      memory: {hard: 1G}\n      memory: {hard: 2G}\n",
        line: 5, column: 7, key: "groups.standard_agent.limits.memory", value: "memory",
        message: "more than once in this mapping (first at 4:7)",
        accepted: "each key once"),
    ErrorCase(
        name: "duplicate field in a flow mapping", text: memory("{hard: 1G, hard: 2G}"), line: 4, column: 26,
        key: "groups.standard_agent.limits.memory.hard", value: "hard", message: "first at 4:16", accepted: "each key once"),
    ErrorCase(
        name: "duplicate field, once quoted", text: memory("{\"hard\": 1G, hard: 2G}"), line: 4, column: 28,
        key: "groups.standard_agent.limits.memory.hard", value: "hard", message: "first at 4:16", accepted: "each key once"),
    ErrorCase(
        name: "duplicate group",
        text: "groups:\n  standard_agent: {}\n  batch: {limits: {cpu: {soft: 1, hard: 2, action: warn}}}\n  standard_agent: {}\n",
        line: 4, column: 3, key: "groups.standard_agent", value: "standard_agent", message: "first at 2:3", accepted: "each key once"),
    ErrorCase(
        name: "duplicate agent", text: "agents:\n  a1: {}\n  'a1': {}\n", line: 3, column: 3, key: "agents.a1", value: "a1",
        message: "first at 2:3", accepted: "each key once"),

    // YAML syntax errors keep libyaml's line:column.
    ErrorCase(
        name: "tab indentation", text: "intervals:\n\tsampling: 1s\n", line: 2, column: 1, key: "", value: nil,
        message: "found character that cannot start any token", accepted: "spaces (not tabs)"),
    ErrorCase(
        name: "unclosed flow mapping", text: "groups: {a: 1\n", line: 2, column: 1, key: "", value: nil,
        message: "did not find expected ',' or '}' (while parsing a flow mapping at 1:9)", accepted: "YAML"),
    ErrorCase(
        name: "unclosed quote", text: "cgroup_root: \"/x\n", line: 2, column: 1, key: "", value: nil,
        message: "found unexpected end of stream (while scanning a quoted scalar at 1:14)", accepted: "YAML"),
    ErrorCase(
        name: "bad indentation", text: "intervals:\n  sampling: 1s\n bad: 2\n", line: 3, column: 2, key: "", value: nil,
        message: "did not find expected key", accepted: "YAML"),
    ErrorCase(
        name: "a value after a value", text: "intervals:\n  sampling: 1s\n    analytics: 2m\n", line: 3, column: 14, key: "", value: nil,
        message: "mapping values are not allowed in this context", accepted: "YAML"),
    ErrorCase(
        name: "undefined alias", text: "intervals: *defaults\n", line: 1, column: 12, key: "", value: nil, message: "found undefined alias",
        accepted: "YAML"),
    ErrorCase(
        name: "two documents", text: "intervals: {sampling: 1s}\n---\nintervals: {sampling: 2s}\n", line: 2, column: 1, key: "", value: nil,
        message: "but found another document", accepted: "one document"),
    ErrorCase(
        name: "control character",
        text: "groups:\n  standard_agent:\n    description: \"caf\u{E9}\"\n    limits: {memory: {hard: 1\u{7}G}}\n",
        line: 4, column: 30, key: "", value: nil, message: "control characters are not allowed", accepted: "UTF-8 text"),
    ErrorCase(
        // At the bracket that would open the 1,001st level (the document's mapping is the first).
        name: "nesting too deep", text: "intervals: " + String(repeating: "[", count: 5000), line: 1, column: 1011, key: "", value: nil,
        message: "nested too deeply", accepted: "YAML"),
]

@Suite("Errors: line:column, key, value and what is accepted")
struct ConfigErrorTests {
    @Test(arguments: errorCases)
    func singleError(_ expected: ErrorCase) throws {
        let found = issues(of: expected.text)
        try #require(found.count == 1, "\(found.map(\.description))")
        let issue = found[0]
        #expect(issue.line == expected.line)
        #expect(issue.column == expected.column)
        #expect(issue.key == expected.key)
        #expect(issue.value == expected.value)
        #expect(issue.message.contains(expected.message), "message: \(issue.message)")
        let accepted = try #require(issue.accepted)
        #expect(accepted.contains(expected.accepted), "accepted: \(accepted)")
        // The printed form carries all of it.
        #expect(issue.description.hasPrefix("\(expected.line):\(expected.column): "))
        #expect(issue.description.contains("(accepted: \(accepted))"))
        if let value = expected.value { #expect(issue.description.contains("'\(value)'")) }
    }

    @Test func errorDescriptionNamesTheFileAndSaysNothingWasApplied() {
        do {
            _ = try ConfigLoader.load("intervals:\n  sampling: 0s\n", file: "/etc/corral.yaml")
            Issue.record("accepted")
        } catch {
            #expect(
                error.description == """
                    /etc/corral.yaml: 1 error; nothing was applied
                    /etc/corral.yaml:2:13: intervals.sampling: '0s': must be greater than zero (accepted: above zero: \(Quantity.acceptedDurations))
                    """)
        }
    }

    @Test func cpuBurstStaysValidOnlyAtOrAboveHard() throws {
        let text = "groups:\n  standard_agent:\n    limits:\n      cpu: {hard: 50%, burst: 40%}\n"
        let found = issues(of: text)
        try #require(found.count == 1)
        // Both were written here: the burst is the value to change.
        #expect(found[0].key == "groups.standard_agent.limits.cpu.burst")
        #expect(found[0].value == "40%")
        #expect(!found[0].message.contains("from the built-in"))
    }

    @Test func agentLimitsAreCheckedInTheGroupTheyName() throws {
        // 40 processes is above lightweight's hard limit of 20 but below standard's 100.
        let text = "agents:\n  a1:\n    group: lightweight_agent\n    limits:\n      processes: {soft: 40}\n"
        let found = issues(of: text)
        try #require(found.count == 1)
        #expect(found[0].key == "agents.a1.limits.processes.soft")
        #expect((found[0].line, found[0].column) == (5, 25))
        #expect(found[0].message.contains("above the hard limit 20 (from group lightweight_agent)"))
        #expect(configuration(of: "agents:\n  a1:\n    limits:\n      processes: {soft: 40}\n") != nil)
    }

    @Test func duplicateUnderARejectedKeyIsStillReported() throws {
        // The reader never walks into `extra`; the duplicate inside it is found anyway.
        let found = issues(of: "extra:\n  x: 1\n  x: 2\n")
        #expect(found.map { "\($0.line):\($0.column) \($0.key) \($0.value ?? "-")" } == ["1:1 extra extra", "3:3 extra.x x"])
        #expect(found.last?.message.contains("first at 2:3") == true)
    }

    @Test func duplicateBeforeASyntaxErrorIsReportedWithIt() {
        let text = "intervals:\n  sampling: 1s\n  sampling: 2s\ngroups: {a: 1\n"
        let found = issues(of: text)
        #expect(found.map { "\($0.line):\($0.column) \($0.value ?? "-")" } == ["2:3 sampling", "5:1 -"])
        #expect(found.first?.message.contains("more than once") == true)
        #expect(found.last?.message.contains("did not find expected ',' or '}'") == true)
    }

    @Test func mergeKeysAreRejectedByName() {
        let text = "groups:\n  batch: &base\n    limits: {cpu: {soft: 1, hard: 2, action: warn}}\n  batch2:\n    <<: *base\n"
        let found = issues(of: text)
        #expect(found.map { "\($0.line):\($0.column) \($0.key)" } == ["4:3 groups.batch2", "5:5 groups.batch2.<<"])
        #expect(found.last?.message == "YAML merge keys are not supported")
    }

    @Test func bothCopiesOfARepeatedSectionAreChecked() {
        let text = "groups:\n  a/b: {}\ngroups:\n  c/d: {}\n"
        let found = issues(of: text)
        #expect(found.map { "\($0.line):\($0.column) \($0.key)" } == ["2:3 groups.a/b", "3:1 groups", "4:3 groups.c/d"])
    }

    @Test func everyDuplicateIsReportedWithItsKeyPath() {
        let text = "agents:\n" + (0..<40).map { "  a\($0): {}\n  a\($0): {}\n" }.joined()
        let found = issues(of: text)
        // Each at its second occurrence, naming the first: no limit on how many.
        #expect(found.count == 40)
        #expect(found.map(\.line) == (0..<40).map { 3 + 2 * $0 })
        #expect(found.allSatisfy { $0.column == 3 && $0.accepted != nil })
        #expect(found.enumerated().allSatisfy { $0.element.key == "agents.a\($0.offset)" && $0.element.value == "a\($0.offset)" })
        #expect(found.enumerated().allSatisfy { $0.element.message.contains("first at \(2 + 2 * $0.offset):3") })
    }

    /// Aliases are resolved: a key given twice inside an anchored mapping is
    /// reported once, and the alias reads the same values.
    @Test func aliasesAreResolved() throws {
        let text = "groups:\n  batch: &b {limits: {cpu: {soft: 1, hard: 2, action: warn}}}\n  batch2: *b\n"
        let configuration = try ConfigLoader.load(text)
        let batch2 = try #require(configuration.groups["batch2"])
        #expect(batch2.limits.limits[.cpu] != nil)
        #expect(batch2.limits == configuration.groups["batch"]?.limits)
    }

    @Test func thriceGivenKeyIsReportedTwice() {
        let text = "intervals:\n  sampling: 1s\n  sampling: 2s\n  sampling: 3s\n"
        let found = issues(of: text)
        #expect(found.map(\.line) == [3, 4])
        #expect(found.allSatisfy { $0.key == "intervals.sampling" && $0.message.contains("first at 2:3") })
    }

    @Test func duplicateAfterAByteOrderMarkAndCRLF() {
        let text = "\u{FEFF}intervals:\r\n  sampling: 1s\r\n  sampling: 0s\r\n"
        let found = issues(of: text)
        #expect(found.map { "\($0.line):\($0.column) \($0.key)" } == ["3:3 intervals.sampling", "3:13 intervals.sampling"])
    }
}

/// Group names and agent ids become cgroup directories: a name that clashes
/// with a kernel interface file (memory.max, cgroup.procs…) is refused where
/// it is written, before anything is created.
@Suite struct KernelFileNameTests {
    @Test(arguments: [
        ("groups:\n  cgroup.procs:\n    limits:\n      memory: {hard: 100MB}\n", 2, "groups.cgroup.procs"),
        ("agents:\n  memory.max:\n    group: standard_agent\n", 2, "agents.memory.max"),
    ])
    func namesThatClashWithKernelFilesAreRefused(text: String, line: Int, key: String) throws {
        do {
            _ = try ConfigLoader.load(text, file: "c.yaml")
            Issue.record("accepted a name that clashes with a kernel file: \(key)")
        } catch {
            let issue = try #require(error.issues.first { $0.key == key }, "\(error.description)")
            #expect(issue.line == line)
            #expect(issue.column == 3)
            #expect(issue.message.contains("clash"), "\(issue.message)")
        }
    }
}
