import CorralAPI
import CorralCore
import CorralTestSupport
import Foundation
import Testing

/// `corral serve` on a real kernel: agents in all three groups, violations
/// of memory, CPU and processes, the ladder walking warn → throttle →
/// suspend → terminate with shortened delays, each step checked against the
/// kernel's own files, and a `kill -9` of the daemon mid-escalation followed
/// by a restart that re-attaches every agent and continues the ladder.
@Suite("e2e: the daemon walks the escalation ladder", .serialized, .enabled(if: E2E.enabled))
struct DaemonTests {
    /// A daemon process with its own socket, state and cgroup root.
    final class Daemon: @unchecked Sendable {
        let binary: String
        let corral: String
        let socket: String
        let state: String
        let config: String
        let root: String
        var process: Subprocess.Running?

        /// More `corrald` arguments (say, `--metrics-address`).
        var extraArguments: [String] = []
        /// The log (stderr) of each run of the daemon that ended, oldest first.
        private(set) var pastLogs: [String] = []

        init(
            name: String, intervals: String = "{sampling: 500ms}", extraConfig: String = "",
            delays: String = "{warn: 0s, throttle: 3s, suspend: 6s, terminate: 9s}"
        ) throws {
            let (corral, _) = try E2E.binaries()
            guard let daemon = ProcessInfo.processInfo.environment["CORRAL_DAEMON"], FileManager.default.isExecutableFile(atPath: daemon)
            else {
                throw E2E.NotReady(description: "CORRAL_DAEMON must name the corrald binary (scripts/e2e sets it)")
            }
            self.binary = daemon
            self.corral = corral
            let base = "/tmp/corral-e2e-\(name)-\(getpid())"
            try? FileManager.default.removeItem(atPath: base)
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            socket = base + "/corral.sock"
            state = base + "/state"
            config = base + "/corral.yaml"
            root = E2E.root(name)
            // Delays shortened from the built-in 30 s / 5 min / 10 min.
            try """
            intervals: \(intervals)
            escalation:
              delays: \(delays)
              termination_grace: 1s
            """.appending(extraConfig).write(toFile: config, atomically: true, encoding: .utf8)
        }

        func start() throws {
            process = try Subprocess.start(
                binary,
                ["--socket", socket, "--state-dir", state, "--config", config, "--cgroup-root", root, "--log-level", "debug"]
                    + extraArguments)
            guard E2E.eventually(timeout: 60, { (try? self.cli(["agents", "list"]))?.status == 0 }) else {
                let output = process?.wait(timeout: 1)
                throw E2E.NotReady(description: "corrald did not come up on \(socket): \(output.map { "\($0)" } ?? "")")
            }
        }

        func crash() {
            process?.signal(SIGKILL)
            if let result = process?.wait(timeout: 30) { pastLogs.append(result.stderr) }
            process = nil
        }

        func stop() -> CommandResult? {
            process?.signal(SIGTERM)
            let result = process?.wait(timeout: 60)
            if let result { pastLogs.append(result.stderr) }
            process = nil
            return result
        }

        /// The daemon's log lines (all its runs, a `--- restart` line between them) that
        /// mention `text`, the last `limit` of them.
        func logLines(mentioning text: String, limit: Int = 60) -> [String] {
            let runs = pastLogs + [process?.stderrSoFar ?? ""]
            let lines = runs.enumerated().flatMap { index, log in
                (index == 0 ? [] : ["--- restart \(index)"]) + log.split(separator: "\n").map(String.init).filter { $0.contains(text) }
            }
            return Array(lines.suffix(limit))
        }

        func cli(_ arguments: [String]) throws -> CommandResult {
            // Options go before a `--`: what follows it is the agent's command.
            var arguments = arguments
            arguments.insert(contentsOf: ["--socket", socket], at: arguments.firstIndex(of: "--") ?? arguments.endIndex)
            return try Subprocess.run(corral, arguments, timeout: 120)
        }

        /// `corral agents start ARGS`, failing the test with the command's output.
        func startAgent(_ arguments: [String]) throws {
            let result = try cli(["agents", "start"] + arguments)
            #expect(result.status == 0, "corral agents start \(arguments.joined(separator: " ")): \(result)")
        }

        func json<T: Decodable>(_ arguments: [String], as type: T.Type) throws -> T {
            let result = try cli(arguments + ["--json"])
            guard result.status == 0 else { throw E2E.NotReady(description: "corral \(arguments): \(result)") }
            return try CorralJSON.decode(type, from: result.stdout)
        }

        /// `GET /v1/health` (no CLI command shows it whole).
        func health() throws -> Health {
            let result = try Subprocess.run("/usr/bin/curl", ["-sS", "--unix-socket", socket, "http://corral/v1/health"], timeout: 30)
            return try CorralJSON.decode(Health.self, from: result.stdout)
        }

        func history(_ agent: String) throws -> [EnforcementRecord] {
            try json(["history", agent], as: [EnforcementRecord].self)
        }

        func actions(_ agent: String, _ resource: Resource) throws -> [EnforcementAction] {
            try history(agent).filter { $0.resource == resource && $0.succeeded }.map(\.action)
        }

        func cgroup(_ group: String, _ agent: String) -> String { "\(root)/\(group)/\(agent)" }
    }

    @Test func ladderRunsOnRealViolationsAndSurvivesACrash() throws {
        let (_, stress) = try E2E.binaries()
        let daemon = try Daemon(name: "daemon")
        try daemon.start()
        defer {
            for agent in ["forker", "spinner", "soft", "oomer"] { _ = try? daemon.cli(["agents", "kill", agent]) }
            _ = E2E.eventually(timeout: 30) { ((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? [AgentRecord]()).isEmpty }
            _ = daemon.stop()
            E2E.removeEmptyTree(daemon.root)
        }

        // heavy_computation_agent: processes → terminate. A process that keeps
        // hitting pids.max is a persisting hard violation.
        try daemon.startAgent([
            "--name", "forker", "--group", "heavy_computation_agent", "--pids-max", "8", "--", stress, "forkloop", "64", "600",
        ])
        // lightweight_agent: cpu → throttle. A spinner pinned at cpu.max.
        try daemon.startAgent(["--name", "spinner", "--group", "lightweight_agent", "--", stress, "spin", "600"])
        // standard_agent: memory over memory.high (soft) → warn.
        try daemon.startAgent([
            "--name", "soft", "--group", "standard_agent", "--memory-high", "16M", "--memory-max", "200M", "--", stress, "mem", "19", "600",
            "1",
        ])

        let forker = daemon.cgroup("heavy_computation_agent", "forker")
        // warn at once, throttle after 3 s: pids.max lowered (to the processes it has).
        #expect(E2E.eventually(timeout: 120) { ((try? daemon.actions("forker", .processes)) ?? []).contains(.throttle) })
        let pidsMax = E2E.read(forker + "/pids.max")?.trimmingCharacters(in: .whitespacesAndNewlines)
        E2E.report("forker throttled: pids.max \(pidsMax ?? "?")")
        #expect(Int(pidsMax ?? "") ?? 99 <= 8)
        #expect(try daemon.actions("forker", .processes).prefix(2) == [.warn, .throttle])

        // The spinner's cpu.max is lowered from 10% (10000 100000).
        #expect(E2E.eventually(timeout: 120) { ((try? daemon.actions("spinner", .cpu)) ?? []).contains(.throttle) })
        let cpuMax =
            E2E.read(daemon.cgroup("lightweight_agent", "spinner") + "/cpu.max")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        E2E.report("spinner throttled: cpu.max \(cpuMax)")
        #expect(cpuMax.hasPrefix("9000 ") || cpuMax.hasPrefix("8500 ") || cpuMax.hasPrefix("7000 ") || cpuMax.hasPrefix("5000 "))

        // Crash the daemon mid-escalation (before the forker's suspend at 6 s if we are quick enough).
        let before = try daemon.json(["history"], as: [EnforcementRecord].self)
        let liveBefore = try daemon.json(["agents", "list"], as: [AgentRecord].self).filter(\.state.isLive).map(\.id)
        let spinner = daemon.cgroup("lightweight_agent", "spinner")
        let memoryHigh = E2E.read(spinner + "/memory.high")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        daemon.crash()
        E2E.report("daemon killed with SIGKILL after \(before.count) records")
        #expect(CgroupEvents(parsing: E2E.read(forker + "/cgroup.events") ?? "").populated, "agents keep running while the daemon is down")
        // A host-pressure clamp written just before the kill, its step never saved: the
        // restart puts the spinner's memory.high back (no saved state holds it) and keeps the
        // cpu.max its own ladder throttled (saved, with its record).
        #expect(E2E.write("1048576", to: spinner + "/memory.high"))
        try daemon.start()
        let restoredHigh = E2E.read(spinner + "/memory.high")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let cpuAfter = E2E.read(spinner + "/cpu.max")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        E2E.report("spinner after restart: memory.high \(restoredHigh) (before the kill \(memoryHigh)), cpu.max \(cpuAfter)")
        #expect(restoredHigh == memoryHigh, "an unsaved clamp is put back to the configured memory.high")
        #expect(cpuAfter != "10000 100000" && !cpuAfter.isEmpty, "the ladder's saved throttle stays in force")
        let agents = try daemon.json(["agents", "list"], as: [AgentRecord].self)
        E2E.report("after restart: \(agents.map { "\($0.id)=\($0.state.rawValue)" }.joined(separator: ", "))")
        #expect(Set(liveBefore).isSuperset(of: ["forker", "spinner", "soft"]))
        // Every agent live at the crash is re-attached, unless the ladder had
        // already sent it its termination (on a slow machine the forker's
        // terminate can come before the crash): then its processes end and
        // it is recorded as terminated, which is checked below.
        let terminating = Set(
            try daemon.json(["history"], as: [EnforcementRecord].self).filter { $0.action == .terminate }.map(\.agent))
        let missing = Set(liveBefore).subtracting(agents.map(\.id)).subtracting(terminating)
        #expect(missing.isEmpty, "live agents re-attached; missing: \(missing.sorted())")
        // lightweight_agent: memory past memory.max (hard) → OOM kill, recorded. Started now:
        // an agent that dies while the daemon is down leaves no violation to record.
        try daemon.startAgent(["--name", "oomer", "--group", "lightweight_agent", "--memory-high", "100MB", "--", stress, "mem", "300"])

        // The ladder continues: suspend (frozen, confirmed by cgroup.events), then terminate.
        #expect(E2E.eventually(timeout: 180) { ((try? daemon.actions("forker", .processes)) ?? []).contains(.suspend) })
        #expect(
            E2E.eventually(timeout: 30) { CgroupEvents(parsing: E2E.read(forker + "/cgroup.events") ?? "").frozen }
                || ((try? daemon.actions("forker", .processes)) ?? []).contains(.terminate),
            "suspend froze the cgroup")
        #expect(E2E.eventually(timeout: 180) { !E2E.exists(forker) }, "terminate ended the agent and its cgroup was removed")
        let forkerHistory = try daemon.history("forker").filter { $0.resource == .processes }
        E2E.report(
            "forker history: "
                + forkerHistory.map { "\($0.action.rawValue)\($0.succeeded ? "" : "(failed)")@\($0.at)" }.joined(separator: " "))
        let forkerActions = forkerHistory.map(\.action)
        #expect(forkerActions.filter { $0 == .warn }.count == 1, "no record duplicated across the crash")
        #expect(forkerActions.filter { $0 == .throttle }.count == 1)
        #expect(Array(forkerActions.prefix(4)) == [.warn, .throttle, .suspend, .terminate])
        let ended = try daemon.json(["agents", "show", "forker"], as: AgentStatusShape.self)
        #expect(ended.agent.state == .terminated)

        // History across the crash: every record from before is still there, ids unique.
        let after = try daemon.json(["history"], as: [EnforcementRecord].self)
        #expect(Set(after.compactMap(\.id)).count == after.count)
        #expect(Set(before.compactMap(\.id)).isSubset(of: Set(after.compactMap(\.id))))

        // The soft memory violation was warned about; the OOM kill was a hard one.
        #expect(E2E.eventually(timeout: 60) { ((try? daemon.actions("soft", .memory)) ?? []).contains(.warn) })
        #expect(
            E2E.eventually(timeout: 120) {
                ((try? daemon.json(["agents", "list", "--all"], as: [AgentRecord].self)) ?? []).first { $0.id == "oomer" }?.state.isLive
                    == false
            })
        let oomer = try daemon.history("oomer").filter { $0.resource == .memory }
        E2E.report("oomer: " + oomer.map { "\($0.kind.rawValue) \($0.action.rawValue)" }.joined(separator: ", "))
        #expect(oomer.contains { $0.kind == .hard && $0.action == .warn })

        // A graceful stop leaves the agents running.
        let stopped = daemon.stop()
        #expect(stopped?.status == 0, "\(stopped.map { "\($0)" } ?? "")")
        #expect(CgroupEvents(parsing: E2E.read(daemon.cgroup("lightweight_agent", "spinner") + "/cgroup.events") ?? "").populated)
        try daemon.start()
    }

    struct AgentStatusShape: Decodable {
        var agent: AgentRecord
    }

    struct Event: Decodable {
        struct Ack: Decodable {
            var sequence: Int64
            var kind: String
            var note: String?
        }
        var sequence: Int64?
        var kind: String
        var agent: String?
        var message: String
        /// `acknowledged` events: which event the agent answered.
        var ack: Ack?
    }

    /// `corral events --agent ID --json`: one event per line.
    func events(_ daemon: Daemon, agent: String) throws -> [Event] {
        let result = try daemon.cli(["events", "--agent", agent, "--json"])
        return result.stdout.split(separator: "\n").compactMap { try? CorralJSON.decode(Event.self, from: String($0)) }
    }

    /// The agent channel and degradation on a real kernel: two twins press on
    /// the same memory limit; the example agent gets the scale-down request,
    /// frees memory before the deadline and is never suspended or killed; its
    /// uncooperative twin is suspended and terminated. A third agent's process
    /// count climbs minimal → moderate → aggressive and recovers stage by stage
    /// at the configured spacing.
    @Test func twinsUnderMemoryPressureAndStagedRecovery() throws {
        guard let example = ProcessInfo.processInfo.environment["CORRAL_EXAMPLE_AGENT"],
            FileManager.default.isExecutableFile(atPath: example)
        else {
            throw E2E.NotReady(description: "CORRAL_EXAMPLE_AGENT must name corral-example-agent (scripts/e2e sets it)")
        }
        // memory.high = memory.max: the twins reach the hard limit without
        // being slowed at memory.high first.
        let daemon = try Daemon(
            name: "channel",
            extraConfig: """

                recovery: {stage_interval: 5s, quiet_period: 5s}
                groups:
                  twins:
                    limits:
                      memory: {soft: 96MiB, hard: 96MiB, action: scale_down}
                  counted:
                    limits:
                      processes: {soft: 20, hard: 200, action: warn}

                """)
        try daemon.start()
        defer {
            for agent in ["coop", "uncoop", "counted"] { _ = try? daemon.cli(["agents", "kill", agent]) }
            _ = E2E.eventually(timeout: 30) { ((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? [AgentRecord]()).isEmpty }
            _ = daemon.stop()
            E2E.removeEmptyTree(daemon.root)
        }
        try daemon.startAgent(["--name", "coop", "--group", "twins", "--", example, "--fill", "99", "--seconds", "600"])
        try daemon.startAgent([
            "--name", "uncoop", "--group", "twins", "--", example, "--fill", "99", "--seconds", "600", "--uncooperative",
        ])
        // 1 shell + 17 sleeps + the foreground sleep = 19 of 20 (0.95, minimal); +4 = 23 (1.15, moderate);
        // +4 = 27 (1.35, aggressive); then 2 (the shell and one sleep).
        let script = """
            pids=(); spawn() { for i in $(seq $1); do sleep 600 & pids+=($!); done; }
            spawn 17; sleep 15; spawn 4; sleep 15; spawn 4; sleep 15
            kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null; sleep 600
            """
        try daemon.startAgent(["--name", "counted", "--group", "counted", "--", "/bin/bash", "-c", script])

        // The uncooperative twin: scale-down missed → suspend (frozen) → terminate, agent gone.
        let uncoop = daemon.cgroup("twins", "uncoop")
        #expect(E2E.eventually(timeout: 240) { ((try? daemon.actions("uncoop", .memory)) ?? []).contains(.suspend) })
        let frozen = CgroupEvents(parsing: E2E.read(uncoop + "/cgroup.events") ?? "").frozen
        #expect(frozen, "the recorded suspend left the uncooperative twin frozen (cgroup.events)")
        #expect(E2E.eventually(timeout: 120) { !E2E.exists(uncoop) }, "terminate ended the uncooperative twin")
        let uncoopHistory = try daemon.history("uncoop").filter { $0.resource == .memory }
        E2E.report(
            "uncoop (frozen seen: \(frozen)): "
                + uncoopHistory.map { "\($0.action.rawValue)\($0.succeeded ? "" : "(failed: \($0.error ?? ""))")@\($0.at)" }.joined(
                    separator: " "))
        let missed = uncoopHistory.first { $0.action == .scaleDown && !$0.succeeded }
        #expect(missed?.error == "deadline missed")
        #expect(uncoopHistory.contains { $0.action == .suspend && $0.succeeded })
        #expect(uncoopHistory.contains { $0.action == .terminate })
        // In that order: the missed deadline, then the suspend (same step), then
        // terminate no sooner than the policy's suspend → terminate gap (9 s - 6 s).
        let missedRecord = try #require(missed)
        let suspendRecord = try #require(uncoopHistory.first { $0.action == .suspend && $0.succeeded })
        let terminateRecord = try #require(uncoopHistory.first { $0.action == .terminate })
        #expect(missedRecord.at <= suspendRecord.at && suspendRecord.at < terminateRecord.at)
        #expect(terminateRecord.at - suspendRecord.at >= .seconds(3))
        let ids = [missedRecord.id, suspendRecord.id, terminateRecord.id].map { $0 ?? -1 }
        #expect(ids[0] >= 0 && ids[0] < ids[1] && ids[1] < ids[2], "history ids \(ids)")

        // The cooperative twin: the request met, never suspended or terminated, still running.
        let coopHistory = try daemon.history("coop").filter { $0.resource == .memory }
        E2E.report(
            "coop: " + coopHistory.map { "\($0.action.rawValue)\($0.succeeded ? "" : "(failed)") \($0.details)" }.joined(separator: " | "))
        #expect(coopHistory.contains { $0.action == .scaleDown && $0.succeeded && $0.details.hasPrefix("met") })
        #expect(!coopHistory.contains { $0.action == .suspend || $0.action == .terminate })
        let coop = try daemon.json(["agents", "show", "coop"], as: AgentStatusShape.self)
        #expect(coop.agent.state == .running)
        let current = Double(
            E2E.read(daemon.cgroup("twins", "coop") + "/memory.current")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
        E2E.report("coop memory.current now \(current.map { Int($0) >> 20 } ?? -1) MiB of 96 MiB")
        #expect((current ?? .infinity) <= 0.8 * 96 * 1_048_576)
        let coopEvents = try events(daemon, agent: "coop")
        let acks = coopEvents.filter { $0.kind == "acknowledged" }
        E2E.report("coop acks: " + acks.map(\.message).joined(separator: " | "))
        #expect(acks.contains { $0.message.contains("scale_down_request") })
        // It answered a scale-down request or degradation plan it was sent: the
        // ack names the sequence and kind of an event on its own stream.
        let sent = coopEvents.filter { $0.kind == "scale_down_request" || $0.kind == "degradation_strategy" }
        let answered = acks.compactMap(\.ack).filter { $0.kind == "scale_down_request" || $0.kind == "degradation_strategy" }
        #expect(!answered.isEmpty, "\(acks.map(\.message))")
        #expect(answered.contains { ack in sent.contains { $0.sequence == ack.sequence && $0.kind == ack.kind } })

        // Degradation of the counted agent, then recovery one stage per 5 s.
        #expect(
            E2E.eventually(timeout: 240) {
                ((try? daemon.json(["degradation", "counted"], as: [DegradationPlan].self)) ?? []).last?.level == DegradationLevel.none
            })
        let plans = try daemon.json(["degradation", "counted"], as: [DegradationPlan].self)
        E2E.report(
            "counted: "
                + plans.map { "\($0.reason.rawValue) \($0.level.rawValue) (\(Int($0.usage)) of \(Int($0.limit)))@\($0.at)" }.joined(
                    separator: ", "))
        #expect(plans.filter { $0.reason == .pressure }.map(\.level) == [.minimal, .moderate, .aggressive])
        let stages = plans.filter { $0.reason == .recovery }
        #expect(stages.map(\.level) == [.moderate, .minimal, .none])
        let spacing = zip(stages.dropFirst(), stages).map { Double(($0.at - $1.at).milliseconds) / 1000 }
        E2E.report("recovery spacing (configured 5 s): \(spacing)")
        #expect(spacing.count == 2 && spacing.allSatisfy { $0 >= 5 && $0 < 7 })
    }

    /// Analytics from real samples: an agent whose memory grows steadily gets
    /// an increase, an idle one a decrease (and a smaller group); the report
    /// shows their patterns.
    @Test func recommendationsFromRealSamples() throws {
        let (_, stress) = try E2E.binaries()
        let daemon = try Daemon(
            name: "analytics", intervals: "{sampling: 500ms, analytics: 1h, analytics_window: 100s}")
        try daemon.start()
        defer {
            for agent in ["grower", "idler"] { _ = try? daemon.cli(["agents", "kill", agent]) }
            _ = E2E.eventually(timeout: 30) { ((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? [AgentRecord]()).isEmpty }
            _ = daemon.stop()
            E2E.removeEmptyTree(daemon.root)
        }
        // standard_agent: memory soft 200 MB, hard 500 MB. 5 → 150 MB over 100 s; and 1 MB held.
        try daemon.startAgent(["--name", "grower", "--", stress, "memramp", "150", "100", "600"])
        try daemon.startAgent(["--name", "idler", "--", stress, "mem", "1", "600"])
        Thread.sleep(forTimeInterval: 105)
        let made = try daemon.json(["recommend", "--run"], as: [Recommendation].self)
        E2E.report(
            "recommendations: "
                + made.map { "\($0.agent) \($0.kind.rawValue) \($0.resource.rawValue) (\($0.pattern.rawValue)): \($0.rationale)" }.joined(
                    separator: " | "))
        let grower = made.filter { $0.agent == "grower" && $0.resource == .memory }
        let idler = made.filter { $0.agent == "idler" && $0.resource == .memory }
        #expect(grower.contains { $0.kind == .increaseQuota && $0.pattern == .growing })
        #expect(idler.contains { $0.kind == .decreaseQuota })
        #expect(made.contains { $0.agent == "idler" && $0.kind == .changeGroup && $0.group == "lightweight_agent" })
        // Stored per agent: asking for one agent returns only its own.
        let stored = try daemon.json(["recommend", "idler"], as: [Recommendation].self)
        #expect(!stored.isEmpty && stored.allSatisfy { $0.agent == "idler" })
        // The report, as JSON, from the same samples.
        let report = try daemon.json(["report", "--since", "2m"], as: UsageReportShape.self)
        let patterns = report.agents.map { agent in
            "\(agent.agent): " + agent.resources.map { "\($0.resource.rawValue) \($0.pattern.rawValue)" }.joined(separator: ", ")
        }
        E2E.report("report: " + patterns.joined(separator: "; "))
        #expect(report.agents.first { $0.agent == "grower" }?.resources.first { $0.resource == .memory }?.pattern == .growing)
        // Applying the idle agent's decrease rewrites its memory.high.
        let applied = try daemon.cli(["recommend", "idler", "--apply", "memory"])
        #expect(applied.status == 0, "\(applied)")
        let suggested = idler.first { $0.kind == .decreaseQuota }?.suggested?.soft ?? 0
        let high = E2E.read(daemon.cgroup("standard_agent", "idler") + "/memory.high")?.trimmingCharacters(in: .whitespacesAndNewlines)
        E2E.report("idler memory.high after apply: \(high ?? "?") (suggested \(Int(suggested)))")
        #expect(high == String(Int64(suggested)))
    }

    struct UsageReportShape: Decodable {
        struct Agent: Decodable {
            struct Resource: Decodable {
                var resource: CorralCore.Resource
                var pattern: UsagePattern
            }
            var agent: String
            var resources: [Resource]
        }
        var agents: [Agent]
    }
}
