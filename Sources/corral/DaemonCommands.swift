import ArgumentParser
import CorralAPI
import CorralClient
import CorralCore
import CorralLinux
import CorralThreads

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// `--socket` and `--json`, shared by the commands that talk to the daemon.
struct ClientOptions: ParsableArguments {
    @Option(
        name: .long, help: ArgumentHelp("The daemon's socket (default $CORRAL_SOCKET, else /run/corral/corral.sock).", valueName: "PATH"))
    var socket: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    var client: CorralClient { CorralClient(socketPath: socket ?? CorralClient.configuredSocketPath) }

    /// Calls the daemon; any failure becomes a clean message and exit status.
    func call<T: Decodable>(_ method: String, _ path: String, body: (some Encodable)? = Optional<Int>.none, as type: T.Type) throws -> T {
        do {
            return try client.call(method, path, body: body, as: type)
        } catch {
            throw clientFailure(error)
        }
    }
}

func clientFailure(_ error: ClientError) -> ExitCode {
    switch error {
    case .api(let status, _, _): fail(error.description, status: status == 404 ? 3 : status == 403 ? 4 : ExitStatus.failure)
    default: fail(error.description)
    }
}

/// Percent-encodes a query value (agent ids are already safe; times need '+' and ':').
func queryValue(_ text: String) -> String {
    var result = ""
    for byte in text.utf8 {
        let char = Character(UnicodeScalar(byte))
        if char.isASCII && (char.isLetter || char.isNumber || "-._~".contains(char)) {
            result.append(char)
        } else {
            result += "%" + String(format2: byte)
        }
    }
    return result
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789ABCDEF")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}

/// A plain text table.
func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in index == cells.count - 1 ? cell : cell.padding(to: widths[index]) }.joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
}

func age(since: Timestamp, until end: Timestamp? = nil) -> String {
    let seconds = Double(((end ?? Timestamp.now()) - since).microseconds) / 1e6
    if seconds < 120 { return "\(Int(seconds))s" }
    if seconds < 7200 { return "\(Int(seconds / 60))m" }
    if seconds < 172_800 { return "\(Int(seconds / 3600))h" }
    return "\(Int(seconds / 86400))d"
}

func ensureValidID(_ id: String) throws {
    if let problem = CgroupName.problem(with: id, what: "agent id") { throw ValidationError(problem) }
}

// MARK: corral agents

struct AgentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents",
        abstract: "Manage the agents of a running daemon (corral serve).",
        subcommands: [
            List.self, Show.self, Start.self, Adopt.self, Stop.self, Freeze.self, Thaw.self, Kill.self, Remove.self, Limits.self,
            PriorityCommand.self,
        ],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List agents: state, usage, limits.")
        @OptionGroup var options: ClientOptions
        @Flag(name: .long, help: "Include agents that have ended.") var all = false
        @Option(
            name: .long,
            help: ArgumentHelp(
                "Show at most N agents (1–10000), in id order; the command to show the next ones goes to stderr.",
                valueName: "N")) var limit: Int?
        @Option(name: .long, help: ArgumentHelp("Start after this agent id (what a --limit page named as next).", valueName: "ID"))
        var after: String?

        func validate() throws {
            if let limit, !(1...10000).contains(limit) {
                throw ValidationError("--limit \(limit): give a whole number from 1 to 10000, e.g. --limit 100")
            }
            if let after { try ensureValidID(after) }
        }

        func run() throws {
            var path = "/v1/agents?state=\(all ? "all" : "live")"
            if let limit { path += "&limit=\(limit)" }
            if let after { path += "&after=\(after)" }
            let page = try options.call("GET", path, as: AgentList.self)
            let agents = page.agents
            if let next = page.next {
                writeOut(
                    "more agents follow: corral agents list\(all ? " --all" : "") --limit \(limit ?? agents.count) --after \(next)\n",
                    to: 2)
            }
            if options.json { return try printJSON(agents) }
            let rows = agents.map { agent in
                [
                    agent.id, agent.group, agent.state.rawValue, agent.priority.description, agent.pid.map(String.init) ?? "-",
                    agent.limits[.memory].map { Quantity.formatBytes($0.hard) } ?? "-",
                    agent.limits[.cpu].map { Quantity.formatPercent($0.hard) } ?? "-",
                    agent.limits[.processes].map { Quantity.formatCount($0.hard) } ?? "-",
                    age(since: agent.createdAt, until: agent.endedAt),
                    agent.queuePosition.map { "queued #\($0): waiting for capacity" } ?? agent.endReason ?? "",
                ]
            }
            writeOut(table(["ID", "GROUP", "STATE", "PRIO", "PID", "MEMORY MAX", "CPU MAX", "PIDS MAX", "AGE", "NOTE"], rows))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "One agent: limits, live usage, violations, escalation state.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Agent id.") var id: String

        func validate() throws { try ensureValidID(id) }

        func run() throws {
            let status = try options.call("GET", "/v1/agents/\(id)", as: AgentStatus.self)
            if options.json { return try printJSON(status) }
            let agent = status.agent
            var lines = [
                "agent      \(agent.id) (\(agent.group)), \(agent.state.rawValue)" + (agent.endReason.map { ": \($0)" } ?? ""),
                "process    \(agent.pid.map(String.init) ?? "-")  \(agent.command.joined(separator: " "))",
                "cgroup     \(agent.cgroup)",
                "started    \(agent.createdAt)" + (agent.endedAt.map { ", ended \($0)" } ?? "")
                    + (agent.exitStatus.map { ", exit status \($0)" } ?? ""),
                "isolation  \(agent.security?.summary ?? "unknown (started before policies, or adopted)")",
                "priority   \(agent.priority)\(agent.priorityIsOwn ? "" : " (its group's)"): cpu.weight \(agent.priority.weight)"
                    + (agent.limits[.memory].map { limit in
                        let low = agent.priority.memoryLow(soft: limit.soft)
                        return low > 0 ? ", memory.low \(Quantity.formatBytes(Double(low)))" : ""
                    } ?? ""),
            ]
            for resource in agent.limits.resources {
                let limit = agent.limits[resource]!
                let unit = resource.unit
                let used = status.usage[resource].map { unit.format($0) } ?? "-"
                lines.append(
                    "\(resource.rawValue.padding(to: 10)) \(used) of soft \(unit.format(limit.soft)), hard \(unit.format(limit.hard))"
                        + (limit.burst.map { ", burst \(unit.format($0))" } ?? "") + " → \(limit.action.rawValue)")
            }
            for violation in status.violations {
                lines.append(
                    "violation  \(violation.resource.rawValue) \(violation.kind.rawValue): \(violation.resource.unit.format(violation.current)) > \(violation.resource.unit.format(violation.limit))"
                )
            }
            if let ladder = status.ladder {
                for (resource, episode) in ladder.episodes.sorted(by: { $0.key < $1.key }) {
                    lines.append(
                        "escalation \(resource.rawValue) \(episode.violation.kind.rawValue) since \(episode.since): done \(episode.fired.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                if ladder.suspended { lines.append("escalation suspended by the ladder") }
            }
            for request in status.pendingRequests {
                lines.append(
                    "request    scale \(request.resource.rawValue) down to \(request.resource.unit.format(request.target)) by \(request.deadline)"
                )
            }
            for state in status.degradation {
                let strategies = state.strategies.map(\.rawValue).joined(separator: ", ")
                lines.append(
                    "degraded   \(state.resource.rawValue) \(state.level.rawValue): \(strategies)"
                        + (state.recoveryStage > 0 ? "; recovery stage \(state.recoveryStage)" : "")
                        + (state.since.map { " (since \($0))" } ?? ""))
            }
            writeOut(lines.joined(separator: "\n") + "\n")
        }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "start",
            abstract: "Start a command as an agent managed by the daemon.",
            discussion: "Example: corral agents start --name crawler --group lightweight_agent -- python3 crawl.py")
        @OptionGroup var options: ClientOptions
        @Option(name: .long, help: "Agent id (default: command name + random suffix).") var name: String?
        @Option(name: .long, help: "Quota group (default standard_agent).") var group: String?
        @OptionGroup var limits: LimitFlags
        @Option(
            name: .long, parsing: .singleValue,
            help: ArgumentHelp("Environment variable for the agent (repeatable).", valueName: "NAME=VALUE"))
        var env: [String] = []
        @Option(name: .long, help: ArgumentHelp("Working directory of the agent.", valueName: "DIR")) var cwd: String?
        @Option(name: .long, help: ArgumentHelp("Run the agent as this user (name or uid).", valueName: "USER")) var user: String?
        @Option(
            name: .long, help: ArgumentHelp("Seccomp profile instead of the group's: default, strict or none.", valueName: "PROFILE"))
        var seccomp: String?
        @Option(name: .long, help: ArgumentHelp(PriorityFlag.help, valueName: "0-10")) var priority: String?
        @Argument(parsing: .postTerminator, help: "The command, after --.") var command: [String] = []

        func validate() throws {
            guard !command.isEmpty else {
                throw ValidationError("no command given: put it after --, e.g. corral agents start -- python3 agent.py")
            }
            _ = try PriorityFlag.parse(priority)
            if case .failure(let error) = SecurityFlags.override(user: user, seccomp: seccomp) {
                throw ValidationError(error.description)
            }
            if let name { try ensureValidID(name) }
            for entry in env where !entry.contains("=") || entry.hasPrefix("=") {
                throw ValidationError("--env '\(entry)': write NAME=VALUE")
            }
            _ = try limits.overrides()
        }

        func run() throws {
            var environment: [String: String] = [:]
            for entry in env {
                let parts = entry.split(separator: "=", maxSplits: 1)
                environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            let overrides = try limits.overrides()
            let request = LaunchRequest(
                id: name, group: group, command: command, environment: environment.isEmpty ? nil : environment,
                workingDirectory: cwd, limits: overrides.isEmpty ? nil : overrides, user: user, seccomp: seccomp,
                priority: try PriorityFlag.parse(priority)?.rawValue)
            let agent = try options.call("POST", "/v1/agents", body: request, as: AgentRecord.self)
            if options.json { return try printJSON(agent) }
            if agent.state == .queued {
                return writeOut(
                    "queued \(agent.id) in \(agent.group) at position \(agent.queuePosition ?? 0) (admission: queue): it starts when capacity frees; corral capacity shows why\n"
                )
            }
            writeOut("started \(agent.id) (pid \(agent.pid.map(String.init) ?? "?")) in \(agent.group): \(agent.cgroup)\n")
        }
    }

    struct Adopt: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "adopt", abstract: "Move an existing process into a new agent cgroup.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The process id.") var pid: Int32
        @Option(name: .long, help: "Agent id.") var name: String?
        @Option(name: .long, help: "Quota group.") var group: String?

        func run() throws {
            let agent = try options.call(
                "POST", "/v1/agents/adopt", body: AdoptRequest(pid: pid, id: name, group: group), as: AgentRecord.self)
            if options.json { return try printJSON(agent) }
            writeOut("adopted pid \(pid) as \(agent.id) in \(agent.group)\n")
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop", abstract: "SIGTERM the agent's processes; cgroup.kill after the grace period.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Agent id.") var id: String
        func validate() throws { try ensureValidID(id) }
        func run() throws { try agentVerb(options, id, "stop", "stopping") }
    }

    struct Freeze: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "freeze", abstract: "Freeze the agent (cgroup.freeze, confirmed by cgroup.events).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Agent id.") var id: String
        func validate() throws { try ensureValidID(id) }
        func run() throws { try agentVerb(options, id, "freeze", "frozen") }
    }

    struct Thaw: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "thaw", abstract: "Thaw a frozen agent.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Agent id.") var id: String
        func validate() throws { try ensureValidID(id) }
        func run() throws { try agentVerb(options, id, "thaw", "thawed") }
    }

    struct Kill: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "kill", abstract: "SIGKILL every process of the agent (cgroup.kill).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Agent id.") var id: String
        func validate() throws { try ensureValidID(id) }
        func run() throws { try agentVerb(options, id, "kill", "killed") }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove", abstract: "Forget an agent that has ended (its history stays).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Agent id.") var id: String
        @Flag(name: .long, help: "Kill it first if it still runs.") var force = false
        func validate() throws { try ensureValidID(id) }
        func run() throws {
            do {
                try options.client.perform("DELETE", "/v1/agents/\(id)\(force ? "?force=true" : "")")
            } catch {
                throw clientFailure(error)
            }
            if !options.json { writeOut("removed \(id)\n") }
        }
    }

    struct Limits: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "limits",
            abstract: "Override an agent's limits (rewrites its cgroup files).",
            discussion: "Example: corral agents limits crawler --memory-max 1G --cpu 50%")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Agent id.") var id: String
        @OptionGroup var limits: LimitFlags

        func validate() throws {
            try ensureValidID(id)
            guard try !limits.overrides().isEmpty else { throw ValidationError("give at least one limit, e.g. --memory-max 1G") }
        }

        func run() throws {
            let agent = try options.call(
                "PUT", "/v1/agents/\(id)/limits", body: LimitsRequest(limits: try limits.overrides()), as: AgentRecord.self)
            if options.json { return try printJSON(agent) }
            writeOut("limits of \(id) updated\n")
        }
    }
}

extension AgentsCommand {
    struct PriorityCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "priority",
            abstract: "Set an agent's priority live (rewrites its cpu.weight, io.weight and memory.low).",
            discussion: """
                PRIORITY is 0 (least) … 10 (most), or 'group' to follow its group's priority again. \
                Each step doubles cpu.weight (5 → 100, the kernel's default); above 5, (PRIORITY − 5)/5 of the \
                memory soft limit is protected (memory.low).
                Example: corral agents priority crawler 2
                """)
        @OptionGroup var options: ClientOptions
        @Argument(help: "Agent id.") var id: String
        @Argument(help: ArgumentHelp("0-10, or 'group'.", valueName: "PRIORITY")) var priority: String

        func validate() throws {
            try ensureValidID(id)
            if priority != "group" { _ = try PriorityFlag.parse(priority, name: "PRIORITY") }
        }

        func run() throws {
            let value = priority == "group" ? nil : try PriorityFlag.parse(priority, name: "PRIORITY")?.rawValue
            let agent = try options.call(
                "PUT", "/v1/agents/\(id)/priority", body: PriorityRequest(priority: value), as: AgentRecord.self)
            if options.json { return try printJSON(agent) }
            writeOut(
                "priority of \(id) is \(agent.priority)\(agent.priorityIsOwn ? "" : " (its group's)"): cpu.weight \(agent.priority.weight)\n"
            )
        }
    }
}

/// `--priority N`: parsed with an error that says what is accepted.
enum PriorityFlag {
    static let help = "Priority 0 (least) … 10 (most) instead of the group's: its cpu.weight, io.weight and memory.low."

    static func parse(_ text: String?, name: String = "--priority") throws -> Priority? {
        guard let text else { return nil }
        guard let priority = Priority.parse(text) else {
            throw ValidationError("\(name) '\(text)': \(Priority.acceptedText)")
        }
        return priority
    }
}

func agentVerb(_ options: ClientOptions, _ id: String, _ verb: String, _ done: String) throws {
    let agent = try options.call("POST", "/v1/agents/\(id)/\(verb)", as: AgentRecord.self)
    if options.json { return try printJSON(agent) }
    writeOut("\(id): \(done) (state \(agent.state.rawValue))\n")
}

/// Limit flags shared by `agents start` and `agents limits`.
struct LimitFlags: ParsableArguments {
    @Option(name: .customLong("memory-high"), help: ArgumentHelp("Soft memory limit (memory.high).", valueName: "SIZE")) var memoryHigh:
        String?
    @Option(name: .customLong("memory-max"), help: ArgumentHelp("Hard memory limit (memory.max).", valueName: "SIZE")) var memoryMax:
        String?
    @Option(name: .long, help: ArgumentHelp("Hard CPU limit in percent of one CPU (cpu.max).", valueName: "PCT")) var cpu: String?
    @Option(name: .customLong("pids-max"), help: ArgumentHelp("Hard process limit (pids.max).", valueName: "N")) var pidsMax: String?

    func overrides() throws -> [Resource: LimitOverride] {
        try parseLimitFlags(memoryHigh: memoryHigh, memoryMax: memoryMax, cpu: cpu, pidsMax: pidsMax)
    }
}

/// Parses the limit flags, naming the flag and the value in every error.
func parseLimitFlags(memoryHigh: String?, memoryMax: String?, cpu: String?, pidsMax: String?) throws -> [Resource: LimitOverride] {
    func parse(_ flag: String, _ text: String?, _ unit: ResourceUnit) throws -> Double? {
        guard let text else { return nil }
        switch Quantity.parse(text, as: unit) {
        case .success(let value):
            guard value > 0 else { throw ValidationError("\(flag) '\(text)': must be greater than zero") }
            return value
        case .failure(let error):
            throw ValidationError("\(flag): \(error.description)")
        }
    }
    var overrides: [Resource: LimitOverride] = [:]
    let high = try parse("--memory-high", memoryHigh, .bytes)
    let max = try parse("--memory-max", memoryMax, .bytes)
    if high != nil || max != nil { overrides[.memory] = LimitOverride(soft: high, hard: max) }
    if let percent = try parse("--cpu", cpu, .percentOfCPU) {
        guard percent >= CPUMax.minimumPercent else {
            throw ValidationError("--cpu '\(cpu!)': below the kernel's minimum of 0.1% of one CPU")
        }
        overrides[.cpu] = LimitOverride(hard: percent)
    }
    if let pids = try parse("--pids-max", pidsMax, .count) { overrides[.processes] = LimitOverride(hard: pids) }
    return overrides
}

// MARK: corral groups

struct GroupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "Quota groups of a running daemon.",
        subcommands: [List.self, Show.self, Set.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List groups with their per-agent limits and totals.")
        @OptionGroup var options: ClientOptions

        func run() throws {
            let groups = try options.call("GET", "/v1/groups", as: GroupList.self).groups
            if options.json { return try printJSON(groups) }
            let rows = groups.map { group in
                [group.name, group.priority.description]
                    + [Resource.memory, .cpu, .processes].map { resource in
                        group.limits[resource].map {
                            "\(resource.unit.format($0.soft)) / \(resource.unit.format($0.hard)) (\($0.action.rawValue))"
                        } ?? "-"
                    } + [
                        [Resource.memory, .cpu, .processes].map { resource in group.totals[resource].map { resource.unit.format($0) } ?? "-"
                        }.joined(separator: ", ")
                    ]
            }
            writeOut(
                table(["GROUP", "PRIO", "MEMORY soft/hard", "CPU soft/hard", "PROCESSES soft/hard", "TOTALS mem, cpu, procs"], rows))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "One group.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Group name.") var name: String

        func run() throws {
            let group = try options.call("GET", "/v1/groups/\(name)", as: QuotaGroup.self)
            if options.json { return try printJSON(group) }
            var lines = ["group      \(group.name): \(group.description)"]
            for resource in group.limits.resources {
                let limit = group.limits[resource]!
                lines.append(
                    "\(resource.rawValue.padding(to: 10)) soft \(resource.unit.format(limit.soft)), hard \(resource.unit.format(limit.hard))"
                        + (limit.burst.map { ", burst \(resource.unit.format($0))" } ?? "") + " → \(limit.action.rawValue)")
            }
            for resource in group.totals.keys.sorted() {
                lines.append("total      \(resource.rawValue) \(resource.unit.format(group.totals[resource]!))")
            }
            lines.append("isolation  \(group.security.summary)")
            lines.append("priority   \(group.priority): cpu.weight \(group.priority.weight) (agents without their own follow it)")
            writeOut(lines.joined(separator: "\n") + "\n")
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change a group live: its agents' cgroup files and the group totals are rewritten.",
            discussion: "Example: corral groups set standard_agent --memory-max 800MB --total-memory 6GB")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Group name.") var name: String
        @OptionGroup var limits: LimitFlags
        @Option(name: .customLong("total-memory"), help: ArgumentHelp("Group total memory (group memory.max).", valueName: "SIZE"))
        var totalMemory: String?
        @Option(name: .customLong("total-cpu"), help: ArgumentHelp("Group total CPU in percent (group cpu.max).", valueName: "PCT"))
        var totalCPU: String?
        @Option(name: .customLong("total-pids"), help: ArgumentHelp("Group total processes (group pids.max).", valueName: "N"))
        var totalPids: String?
        @Option(
            name: .long,
            help: ArgumentHelp("The group's priority 0-10: its cpu.weight, and its agents' unless they set their own.", valueName: "0-10"))
        var priority: String?

        func totals() throws -> [Resource: Double] {
            var totals: [Resource: Double] = [:]
            for (flag, text, resource) in [
                ("--total-memory", totalMemory, Resource.memory), ("--total-cpu", totalCPU, .cpu), ("--total-pids", totalPids, .processes),
            ] {
                guard let text else { continue }
                switch Quantity.parse(text, as: resource.unit) {
                case .success(let value) where value > 0: totals[resource] = value
                case .success: throw ValidationError("\(flag) '\(text)': must be greater than zero")
                case .failure(let error): throw ValidationError("\(flag): \(error.description)")
                }
            }
            return totals
        }

        func validate() throws {
            guard try !limits.overrides().isEmpty || !totals().isEmpty || PriorityFlag.parse(priority) != nil else {
                throw ValidationError(
                    "give a limit, a total or a priority to change, e.g. --memory-max 800MB, --total-cpu 400% or --priority 7")
            }
        }

        func run() throws {
            let group = try options.call(
                "PATCH", "/v1/groups/\(name)",
                body: GroupUpdateRequest(
                    limits: try limits.overrides(), totals: try totals(), priority: try PriorityFlag.parse(priority)?.rawValue),
                as: QuotaGroup.self)
            if options.json { return try printJSON(group) }
            writeOut("group \(group.name) updated\n")
        }
    }
}

// MARK: corral events, corral history

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Show the daemon's events: violations, enforcement actions, agents starting and ending.")
    @OptionGroup var options: ClientOptions
    @Option(name: .long, help: "Only this agent's events.") var agent: String?
    @Flag(name: .shortAndLong, help: "Keep following new events (Server-Sent Events) until interrupted.") var follow = false

    func validate() throws { if let agent { try ensureValidID(agent) } }

    func render(_ event: CorralEvent) -> String {
        "\(event.at)  \(event.kind.rawValue.padding(to: 18))  \(event.agent ?? "-")  \(event.message)\n"
    }

    func run() throws {
        let query = agent.map { "?agent=\($0)" } ?? ""
        let recent = try options.call("GET", "/v1/events/recent\(query)", as: EventList.self).events
        for event in recent { writeOut(options.json ? (try encodeJSON(event, pretty: false)) : render(event)) }
        guard follow else { return }
        let stream = options.client.events(agent: agent, after: recent.last?.sequence ?? 0)
        let done = Latch()
        let json = options.json
        let renderer = self
        Task {
            do {
                for try await message in stream {
                    guard let event = try? CorralClient.decoder.decode(CorralEvent.self, from: Data(message.data.utf8)) else { continue }
                    writeOut(json ? ((try? encodeJSON(event, pretty: false)) ?? "") : renderer.render(event))
                }
            } catch {
                printError("corral: the event stream ended: \(error)")
            }
            done.signal()
        }
        done.wait()
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Enforcement history: every action with its violation and real outcome, and the syscalls seccomp refused.",
        discussion: """
            The text output lists the actions, then the denied syscalls (one row per agent and
            syscall, counted). --denials lists only those (with --json: their JSON).
            Examples: corral history; corral history crawler --since 1h; corral history --denials --json
            """)
    @OptionGroup var options: ClientOptions
    @Argument(help: "Only this agent.") var agent: String?
    @Option(name: .long, help: ArgumentHelp("Only records from the last DURATION (e.g. 30m, 1h).", valueName: "DURATION")) var since:
        String?
    @Option(name: .long, help: "At most this many records.") var limit: Int = 1000
    @Flag(name: .long, help: "Only the syscalls the agents' seccomp filters refused.") var denials = false

    func validate() throws {
        if let agent { try ensureValidID(agent) }
        if let since, case .failure(let error) = Quantity.parseDuration(since) { throw ValidationError("--since: \(error.description)") }
        guard (1...10000).contains(limit) else { throw ValidationError("--limit must be between 1 and 10000") }
    }

    func denialRows() throws -> [SyscallDenial] {
        var query = ["limit=\(limit)"]
        if let agent { query.append("agent=\(agent)") }
        var list = try options.call("GET", "/v1/denials?" + query.joined(separator: "&"), as: DenialList.self).denials
        if let since, case .success(let duration) = Quantity.parseDuration(since) {
            let start = Timestamp.now() + (Duration.zero - duration)
            list = list.filter { $0.lastAt >= start }
        }
        return list
    }

    static func denialTable(_ list: [SyscallDenial]) -> String {
        table(
            ["LAST", "AGENT", "SYSCALL", "COUNT", "ANSWER", "FIRST", "PID"],
            list.map { denial in
                [
                    denial.lastAt.iso8601, denial.agent, denial.syscall, String(denial.count),
                    denial.action == .kill ? "SIGSYS" : "EPERM", denial.firstAt.iso8601, denial.pid.map(String.init) ?? "-",
                ]
            })
    }

    func run() throws {
        var query = ["limit=\(limit)"]
        if let agent { query.append("agent=\(agent)") }
        if let since, case .success(let duration) = Quantity.parseDuration(since) {
            query.append("since=\(queryValue((Timestamp.now() + (Duration.zero - duration)).iso8601))")
        }

        if denials {
            let list = try denialRows()
            if options.json { return try printJSON(list) }
            return writeOut(Self.denialTable(list))
        }
        let records = try options.call("GET", "/v1/history?" + query.joined(separator: "&"), as: HistoryList.self).records
        if options.json { return try printJSON(records) }
        let rows = records.map { record in
            [
                String(record.id ?? 0), record.at.iso8601, record.agent, record.resource.rawValue, record.kind.rawValue,
                "\(record.resource.unit.format(record.current)) / \(record.resource.unit.format(record.limit))", record.action.rawValue,
                record.succeeded ? "ok" : "FAILED: \(record.error ?? "")", record.details,
            ]
        }
        writeOut(table(["ID", "AT", "AGENT", "RESOURCE", "KIND", "CURRENT / LIMIT", "ACTION", "OUTCOME", "DETAILS"], rows))
        let refused = try denialRows()
        if !refused.isEmpty {
            writeOut("\nDenied syscalls (seccomp):\n" + Self.denialTable(refused))
        }
    }
}

struct DegradationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "degradation",
        abstract: "Degradation plans and recovery stages: every level change with its strategies.",
        discussion: "Examples: corral degradation; corral degradation crawler --json")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Only this agent.") var agent: String?
    @Option(name: .long, help: "At most this many (the latest).") var limit: Int = 1000

    func validate() throws {
        if let agent { try ensureValidID(agent) }
        guard (1...10000).contains(limit) else { throw ValidationError("--limit must be between 1 and 10000") }
    }

    func run() throws {
        var query = ["limit=\(limit)"]
        if let agent { query.append("agent=\(agent)") }

        let plans = try options.call("GET", "/v1/degradation?" + query.joined(separator: "&"), as: DegradationList.self).plans
        if options.json { return try printJSON(plans) }
        let rows = plans.map { plan in
            [
                plan.at.iso8601, plan.agent, plan.resource.rawValue, plan.reason.rawValue,
                "\(plan.previousLevel.rawValue) → \(plan.level.rawValue)",
                "\(plan.resource.unit.format(plan.usage)) / \(plan.resource.unit.format(plan.limit))",
                plan.strategies.isEmpty ? "-" : plan.strategies.map(\.strategy.rawValue).joined(separator: ", "),
            ]
        }
        writeOut(table(["AT", "AGENT", "RESOURCE", "REASON", "LEVEL", "USAGE / SOFT", "STRATEGIES"], rows))
    }
}

// MARK: corral serve

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the daemon (corrald) that manages many agents; see corrald --help.",
        discussion: "corral serve execs the corrald binary installed next to corral, with the same arguments.")

    @Argument(parsing: .allUnrecognized, help: "Arguments for corrald.") var arguments: [String] = []

    func run() throws {
        let own = (try? readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        let directory = own.split(separator: "/").dropLast().joined(separator: "/")
        let daemon = "/" + directory + "/corrald"
        guard access(daemon, X_OK) == 0 else {
            throw fail("corrald is not installed next to \(own) (looked for \(daemon)); build it with scripts/build-release")
        }
        let argv = [daemon] + arguments
        var cArguments = argv.map { strdup($0) } + [nil]
        // execv returns only when it failed.
        if case .failure(let error) = nothingOrErrno(execv(daemon, &cArguments)) { throw fail("cannot run \(daemon): \(error)") }
        throw fail("cannot run \(daemon)")
    }
}

func readLink(_ path: String) throws -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink(path, &buffer, buffer.count - 1)
    guard count > 0 else { throw ExitCode.failure }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
