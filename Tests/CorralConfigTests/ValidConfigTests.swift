import CorralConfig
import CorralCore
import Testing

@Suite("Valid configuration files")
struct ValidConfigTests {
    @Test func completeFileSetsEveryValue() throws {
        let config = try #require(configuration(of: completeFile))

        #expect(config.cgroupRoot == "/sys/fs/cgroup/corral-test")
        #expect(config.intervals == Intervals(sampling: .milliseconds(500), analytics: .seconds(120), analyticsWindow: .seconds(7200)))
        #expect(config.reservation == SystemReservation(memory: 0.60, cpu: 0.85, processes: 0.95))

        let escalation = EscalationPolicy(
            delays: [
                .warn: .zero, .throttle: .seconds(10), .suspend: .seconds(120), .terminate: .seconds(900),
                .scaleDown: .seconds(1), .migrate: .seconds(3), .custom: .seconds(4),
            ],
            terminationGrace: .seconds(7))
        #expect(config.escalation == escalation)

        #expect(config.groupNames == ["gpu_batch", "heavy_computation_agent", "lightweight_agent", "standard_agent"])
        #expect(config.groups["lightweight_agent"] == QuotaGroup.lightweight)
        #expect(config.groups["heavy_computation_agent"] == QuotaGroup.heavyComputation)
    }

    @Test func redefinedSeedGroupIsMergedFieldByField() throws {
        let config = try #require(configuration(of: completeFile))
        let standard = try #require(config.groups["standard_agent"])

        #expect(standard.description == "Redefined standard agents")
        // memory: only hard given; the built-in soft and action stay.
        #expect(standard.limits[.memory] == ResourceLimit(soft: 200_000_000, hard: 1 * oneGiB, action: .throttle))
        // cpu: soft and burst given; the built-in hard and action stay.
        #expect(standard.limits[.cpu] == ResourceLimit(soft: 20, hard: 30, burst: 45, action: .throttle))
        // processes: not mentioned, the built-in ones.
        #expect(standard.limits[.processes] == QuotaGroup.standard.limits[.processes])
        // totals: memory replaced, cpu and processes kept.
        #expect(standard.totals == [.memory: 6 * oneGiB, .cpu: 600, .processes: 2000])
        #expect(standard.escalation == nil)
        #expect(config.escalation(for: "standard_agent") == config.escalation)
    }

    @Test func newGroupHasEveryLimitAndItsOwnEscalation() throws {
        let config = try #require(configuration(of: completeFile))
        let batch = try #require(config.groups["gpu_batch"])

        #expect(batch.name == "gpu_batch")
        #expect(batch.description == "Batch jobs")
        #expect(
            batch.limits
                == LimitSet([
                    .memory: ResourceLimit(soft: 4 * oneGiB, hard: 6 * oneGiB, burst: 5 * oneGiB, action: .suspend),
                    .cpu: ResourceLimit(soft: 150, hard: 200, burst: 300, action: .throttle),
                    .processes: ResourceLimit(soft: 200, hard: 400, action: .terminate),
                    .files: ResourceLimit(soft: 1000, hard: 4096, action: .warn),
                    .connections: ResourceLimit(soft: 50, hard: 100, action: .custom),
                    .network: ResourceLimit(soft: 10 * oneMB, hard: 20 * oneMB, action: .throttle),
                    .disk: ResourceLimit(soft: 50 * oneMB, hard: 100 * oneMB, action: .migrate),
                ]))
        #expect(batch.totals == [.memory: 24 * oneGiB, .cpu: 800, .processes: 2000])

        // The group's escalation starts from the file's (not the built-in one) and changes two delays and the grace.
        var expected = config.escalation
        expected.delays[.throttle] = .seconds(1)
        expected.delays[.suspend] = .seconds(30)
        expected.terminationGrace = .seconds(20)
        #expect(batch.escalation == expected)
        #expect(config.escalation(for: "gpu_batch") == expected)
        #expect(config.escalation(for: "gpu_batch").delay(for: .terminate) == .seconds(900))
    }

    @Test func agentOverridesApplyOnTopOfTheirGroup() throws {
        let config = try #require(configuration(of: completeFile))

        #expect(config.agents.keys.sorted() == ["anonymous_1", "crawler-1", "trainer.v2"])
        #expect(config.agents["crawler-1"] == AgentOverride(group: "lightweight_agent", limits: [.processes: LimitOverride(hard: 40)]))
        #expect(config.agents["anonymous_1"] == AgentOverride())

        let crawler = try #require(config.limits(agent: "crawler-1", group: "lightweight_agent"))
        #expect(crawler[.processes] == ResourceLimit(soft: 10, hard: 40, action: .suspend))
        #expect(crawler[.memory] == QuotaGroup.lightweight.limits[.memory])

        let trainer = try #require(config.limits(agent: "trainer.v2", group: "gpu_batch"))
        #expect(trainer[.memory] == ResourceLimit(soft: 5 * oneGiB, hard: 7 * oneGiB, burst: 6 * oneGiB, action: .suspend))
        #expect(trainer[.cpu] == ResourceLimit(soft: 150, hard: 200, burst: 300, action: .scaleDown))
    }

    @Test(arguments: [
        ("an empty file", ""),
        ("only comments", "# Corral configuration\n# nothing changed yet\n\n   # indented comment\n"),
        ("an empty document", "---\n"),
        ("an empty document with its end marker", "---\n...\n"),
        ("an empty mapping", "{}\n"),
        ("empty sections", "intervals:\nreservation:\nescalation:\n  delays:\ngroups:\nagents:\n"),
        ("sections whose entries are all commented out", "groups:\n  # gpu_batch:\n  #   limits: {}\nagents:\n  # crawler-1: {}\n"),
        ("a seed group named without changes", "groups:\n  standard_agent:\n"),
        ("a seed group with empty limits", "groups:\n  standard_agent:\n    limits:\n      memory:\n"),
    ])
    func builtInConfiguration(what: String, text: String) throws {
        let config = try #require(configuration(of: text))
        #expect(config == .builtIn, "\(what)")
        #expect(config.groups == CorralConfiguration.seedGroups)
        #expect(config.intervals == .seed && config.reservation == .seed && config.escalation == .seed)
        #expect(config.cgroupRoot == nil)
    }

    @Test func builtInConfigurationIsTheSeed() {
        let config = CorralConfiguration.builtIn
        #expect(config.groupNames == ["heavy_computation_agent", "lightweight_agent", "standard_agent"])
        #expect(config.groups["standard_agent"] == QuotaGroup.standard)
        #expect(config.agents.isEmpty)
        #expect(config.intervals == Intervals(sampling: .seconds(1), analytics: .seconds(300), analyticsWindow: .seconds(3600)))
        #expect(config.reservation == SystemReservation(memory: 0.75, cpu: 0.80, processes: 0.90))
    }

    @Test(arguments: [
        ("{hard: 1G}", ResourceLimit(soft: 200_000_000, hard: 1 * oneGiB, action: .throttle)),
        // A hard limit below the built-in soft one pulls soft down with it.
        ("{hard: 100MB}", ResourceLimit(soft: 100_000_000, hard: 100_000_000, action: .throttle)),
        ("{soft: 300MB}", ResourceLimit(soft: 300_000_000, hard: 500_000_000, action: .throttle)),
        ("{action: suspend}", ResourceLimit(soft: 200_000_000, hard: 500_000_000, action: .suspend)),
        ("{burst: 400MB}", ResourceLimit(soft: 200_000_000, hard: 500_000_000, burst: 400_000_000, action: .throttle)),
        (
            "{soft: 1G, hard: 2G, burst: 1.5G, action: terminate}",
            ResourceLimit(soft: 1 * oneGiB, hard: 2 * oneGiB, burst: 1.5 * oneGiB, action: .terminate)
        ),
        ("{}", ResourceLimit(soft: 200_000_000, hard: 500_000_000, action: .throttle)),
    ])
    func seedMemoryRedefinition(flow: String, expected: ResourceLimit) throws {
        let config = try #require(configuration(of: "groups:\n  standard_agent:\n    limits:\n      memory: \(flow)\n"))
        #expect(config.groups["standard_agent"]?.limits[.memory] == expected)
        // Everything else in the group, and the other groups, stay built-in.
        #expect(config.groups["standard_agent"]?.limits[.cpu] == QuotaGroup.standard.limits[.cpu])
        #expect(config.groups["standard_agent"]?.totals == QuotaGroup.standard.totals)
        #expect(config.groups["lightweight_agent"] == QuotaGroup.lightweight)
    }

    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("5m", .seconds(300)), ("1h", .seconds(3600)),
        ("2", .seconds(2)), ("1.5s", .milliseconds(1500)), ("250us", .microseconds(250)), ("1d", .seconds(86400)),
    ])
    func samplingDurations(text: String, expected: Duration) throws {
        let config = try #require(configuration(of: "intervals:\n  sampling: \(text)\n"))
        #expect(config.intervals.sampling == expected)
        #expect(config.intervals.analytics == Intervals.seed.analytics)
    }

    @Test(arguments: [("75%", 0.75), ("100%", 1.0), ("0.5%", 0.005), ("12.5%", 0.125), ("90", 0.90), (" 60 % ", 0.60)])
    func reservationPercentages(text: String, fraction: Double) throws {
        let config = try #require(configuration(of: "reservation:\n  processes: \"\(text)\"\n"))
        #expect(config.reservation.processes == fraction)
        #expect(config.reservation.memory == SystemReservation.seed.memory)
    }

    @Test func zeroDelaysAndGraceAreAllowed() throws {
        let config = try #require(configuration(of: "escalation:\n  delays: {terminate: 0s}\n  termination_grace: 0\n"))
        #expect(config.escalation.delay(for: .terminate) == .zero)
        #expect(config.escalation.terminationGrace == .zero)
        #expect(config.escalation.delay(for: .suspend) == .seconds(300))
    }

    @Test func agentsMayComeBeforeTheGroupsTheyUse() throws {
        let text = """
            agents:
              job-7: {group: batch, limits: {cpu: {hard: 75%}}}
            groups:
              batch:
                limits:
                  cpu: {soft: 50%, hard: 100%, action: throttle}
            """
        let config = try #require(configuration(of: text))
        #expect(config.agents["job-7"]?.group == "batch")
        #expect(config.limits(agent: "job-7", group: "batch")?[.cpu] == ResourceLimit(soft: 50, hard: 75, action: .throttle))
    }

    @Test func agentMayLimitAResourceItsGroupDoesNotWithAHardLimit() throws {
        let config = try #require(configuration(of: "agents:\n  a1:\n    limits:\n      files: {hard: 256}\n"))
        #expect(config.limits(agent: "a1", group: "standard_agent")?[.files] == ResourceLimit(soft: 256, hard: 256, action: .warn))
    }

    @Test func stylesOfYAMLAreAllRead() throws {
        // Block and flow styles, quoted keys and values, block scalars, anchors and aliases, CRLF line ends.
        let text =
            "groups:\r\n  \"standard_agent\":\r\n    description: >\r\n      Folded\r\n      text\r\n"
            + "    limits:\r\n      memory: &big {hard: '1G'}\r\n  lightweight_agent:\r\n    limits:\r\n      memory: *big\r\n"
        let config = try #require(configuration(of: text))
        #expect(config.groups["standard_agent"]?.description == "Folded text\n")
        #expect(config.groups["standard_agent"]?.limits[.memory]?.hard == 1 * oneGiB)
        #expect(config.groups["lightweight_agent"]?.limits[.memory]?.hard == 1 * oneGiB)
        #expect(config.groups["lightweight_agent"]?.limits[.memory]?.soft == 50_000_000)
    }

    @Test func loadingIsDeterministic() throws {
        let first = try ConfigLoader.load(completeFile)
        let second = try ConfigLoader.load(completeFile)
        #expect(first == second)
    }
}
