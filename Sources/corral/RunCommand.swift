import ArgumentParser
import CorralAPI
import CorralCgroup
import CorralClient
import CorralCore
import CorralLinux
import CorralRuntime
import CorralSeccomp
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one command as an agent under a quota, without a daemon.",
        discussion: """
            Creates <cgroup-root>/<group>/<agent>, writes the group's limits (flags override them),
            starts COMMAND directly inside it (clone3 with CLONE_INTO_CGROUP), forwards SIGINT,
            SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it and waits. When COMMAND ends,
            processes it left behind are killed with its cgroup, a summary of what the kernel
            measured is printed to stderr (or as JSON to stdout with --json), and the cgroup is
            removed. Corral exits with COMMAND's status (128+N when killed by signal N), or 125
            when Corral itself failed, 126 when COMMAND cannot be executed, 127 when not found.

            Sizes: 512M, 2G, 1.5GiB (powers of 1024), 50MB, 1GB (powers of 1000), or bytes.
            CPU: percent of one CPU (30%, 250% for two and a half CPUs).

            Examples:
              corral run -- python3 agent.py
              corral run --group lightweight_agent --name crawler-1 -- ./crawler
              corral run --memory-max 256M --cpu 50% --pids-max 64 -- make -j8
              corral run --summary-file run.json -- ./batch-job
              corral run --json -- ./batch-job | tail -n 1 | jq .exit_status
              corral run --user nobody --seccomp strict -- ./untrusted-tool

            Isolation: each group's security policy applies (see the README, "Agent isolation"):
            by default the 'default' seccomp profile (denied calls fail with EPERM and are
            counted in the summary and in corral history), no_new_privs and a cgroup namespace.
            --user, --seccomp and --no-seccomp override it for this run.
            """
    )

    @Option(
        name: .long, help: ArgumentHelp("Quota group (default: the agent's group in --config, else standard_agent).", valueName: "GROUP"))
    var group: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Agent id, [A-Za-z0-9][A-Za-z0-9._-]{0,63} (default: command name + random suffix).", valueName: "ID"))
    var name: String?

    @Option(
        name: .customLong("memory-high"),
        help: ArgumentHelp("Soft memory limit: memory.high, where the kernel throttles and reclaims.", valueName: "SIZE"))
    var memoryHigh: String?

    @Option(
        name: .customLong("memory-max"),
        help: ArgumentHelp("Hard memory limit: memory.max, OOM kill inside the agent only.", valueName: "SIZE"))
    var memoryMax: String?

    @Option(name: .long, help: ArgumentHelp("Hard CPU limit in percent of one CPU: cpu.max.", valueName: "PCT"))
    var cpu: String?

    @Option(name: .customLong("pids-max"), help: ArgumentHelp("Hard limit on processes and threads: pids.max.", valueName: "N"))
    var pidsMax: String?

    @Option(name: .long, help: ArgumentHelp("YAML configuration with groups and per-agent overrides.", valueName: "FILE"))
    var config: String?

    @OptionGroup var root: CgroupRootOption

    @Option(name: .long, help: ArgumentHelp("Run COMMAND as this user (name or uid; needs root).", valueName: "USER"))
    var user: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Seccomp profile instead of the group's: default, strict or none.", valueName: "PROFILE"))
    var seccomp: String?

    @Flag(name: .customLong("no-seccomp"), help: "Run COMMAND without a syscall filter (the same as --seccomp none).")
    var noSeccomp = false

    @Option(name: .long, help: ArgumentHelp(PriorityFlag.help, valueName: "0-10"))
    var priority: String?

    @Flag(
        name: .long,
        help: "Print the summary as one line of JSON on stdout, after anything COMMAND printed there, instead of text on stderr.")
    var json = false

    @Option(
        name: .customLong("summary-file"),
        help: ArgumentHelp("Also write the summary as JSON to FILE (kept apart from COMMAND's output).", valueName: "FILE"))
    var summaryFile: String?

    @Flag(name: .customLong("no-daemon"), help: "Run the engine embedded even when a daemon answers on its socket.")
    var noDaemon = false

    @Flag(name: .long, help: "Do not narrate the escalation ladder's actions on stderr while COMMAND runs.")
    var quiet = false

    @Option(
        name: .long, help: ArgumentHelp("The daemon's socket (default $CORRAL_SOCKET, else /run/corral/corral.sock).", valueName: "PATH"))
    var socket: String?

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments, after --.", valueName: "COMMAND"))
    var command: [String] = []

    /// The parsed flags as a plain value: what `run` works from, whichever parser made it.
    var options: RunOptions {
        RunOptions(
            group: group, name: name, memoryHigh: memoryHigh, memoryMax: memoryMax, cpu: cpu, pidsMax: pidsMax, config: config,
            cgroupRoot: root.path, user: user, seccomp: seccomp, noSeccomp: noSeccomp, priority: priority, json: json,
            summaryFile: summaryFile, noDaemon: noDaemon, quiet: quiet, socket: socket, command: command)
    }

    mutating func validate() throws {
        var options = self.options
        try options.validate()
        command = options.command
    }

    func run() throws {
        try options.run()
    }
}

/// The options of `corral run` as values. swift-argument-parser (`Run`) defines them,
/// with the help, the completion and every error message; `fastParse` reads the plain
/// forms of them by itself, because building `Run`'s parser reflects over each of its
/// properties and instantiates their types' metadata: 32 ms of the CLI's CPU under
/// emulation on every `corral run` (perf in the VM; README "Launch latency"). A test
/// compares the two parsers over a corpus of command lines, and checks that every
/// option `Run` defines is known here.
struct RunOptions: Equatable {
    var group: String?
    var name: String?
    var memoryHigh: String?
    var memoryMax: String?
    var cpu: String?
    var pidsMax: String?
    var config: String?
    var cgroupRoot: String?
    var user: String?
    var seccomp: String?
    var noSeccomp = false
    var priority: String?
    var json = false
    var summaryFile: String?
    var noDaemon = false
    var quiet = false
    var socket: String?
    var command: [String] = []

    /// The long names of the options that take a value, and of the flags.
    static let valueOptionNames: Set<String> = [
        "group", "name", "memory-high", "memory-max", "cpu", "pids-max", "config", "cgroup-root", "user", "seccomp", "priority",
        "summary-file", "socket",
    ]
    static let flagNames: Set<String> = ["no-seccomp", "json", "no-daemon", "quiet"]

    /// Sets the option `name` (one of `valueOptionNames`) to `value`, or the flag `name` when `value` is nil.
    private mutating func set(_ name: String, _ value: String?) {
        switch name {
        case "group": group = value
        case "name": self.name = value
        case "memory-high": memoryHigh = value
        case "memory-max": memoryMax = value
        case "cpu": cpu = value
        case "pids-max": pidsMax = value
        case "config": config = value
        case "cgroup-root": cgroupRoot = value
        case "user": user = value
        case "seccomp": seccomp = value
        case "priority": priority = value
        case "summary-file": summaryFile = value
        case "socket": socket = value
        case "no-seccomp": noSeccomp = true
        case "json": json = true
        case "no-daemon": noDaemon = true
        case "quiet": quiet = true
        default: preconditionFailure("RunOptions.set: unknown option --\(name)")
        }
    }

    /// `corral run ARGUMENTS` parsed and validated: by `fastParse` when it reads them,
    /// else by `Run`'s parser alone (not the whole tree). Nil when either finds a
    /// problem, which the whole tree then reports.
    static func parsed(_ arguments: [String]) -> RunOptions? {
        if var options = fastParse(arguments) {
            do {
                try options.validate()
                return options
            } catch {
                return nil
            }
        }
        return (try? Run.parseAsRoot(arguments) as? Run)?.options
    }

    /// The arguments after `run` in their plain forms (`--option VALUE`, `--option=VALUE`,
    /// `--flag`, then `--` or the first word that is not an option, and the command),
    /// or nil for anything else: help, short names, an unknown or repeated option, a
    /// value that looks like an option, no command. swift-argument-parser reads those,
    /// and says what is wrong exactly as it always has. Not yet validated (`validate`).
    static func fastParse(_ arguments: [String]) -> RunOptions? {
        var options = RunOptions()
        var seen = Set<String>()
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            if word == "--" || !word.hasPrefix("-") {
                guard !word.isEmpty else { return nil }
                // As Run's captureForPassthrough keeps it: `--` first, which validate() drops.
                options.command = Array(arguments[index...])
                return options.command.count > (word == "--" ? 1 : 0) ? options : nil
            }
            guard word.hasPrefix("--") else { return nil }
            let body = word.dropFirst(2)
            let name: String
            var inline: String?
            if let equals = body.firstIndex(of: "=") {
                name = String(body[..<equals])
                inline = String(body[body.index(after: equals)...])
            } else {
                name = String(body)
            }
            guard seen.insert(name).inserted else { return nil }
            if flagNames.contains(name) {
                guard inline == nil else { return nil }
                options.set(name, nil)
                index += 1
            } else if valueOptionNames.contains(name) {
                if let inline {
                    guard !inline.isEmpty else { return nil }
                    options.set(name, inline)
                    index += 1
                } else {
                    guard index + 1 < arguments.count else { return nil }
                    let value = arguments[index + 1]
                    guard !value.isEmpty, !value.hasPrefix("-") else { return nil }
                    options.set(name, value)
                    index += 2
                }
            } else {
                return nil
            }
        }
        return nil
    }

    /// Checks every value and drops the `--` before the command (Run.validate runs it too).
    mutating func validate() throws {
        // COMMAND captures everything from the first word Corral does not
        // know; a word that looks like an option there is a typo, not a command.
        if command.first == "--" {
            command.removeFirst()
        } else if let first = command.first, first.hasPrefix("-") {
            if first == "-h" || first == "--help" { throw CleanExit.helpRequest(Run.self) }
            throw ValidationError("unknown option '\(first)' (see corral run --help); a command that starts with '-' goes after --")
        }
        guard !command.isEmpty else {
            throw ValidationError("no command given: put it after --, e.g. corral run -- python3 agent.py")
        }
        if let name, let problem = CgroupName.problem(with: name, what: "agent id") {
            throw ValidationError("--name: \(problem)")
        }
        _ = try flagOverrides()
        _ = try securityFlags()
        _ = try PriorityFlag.parse(priority)
    }

    /// --user, --seccomp and --no-seccomp as settings on the group's policy.
    func securityFlags() throws -> SecurityOverride {
        if noSeccomp, let seccomp, seccomp != "none" {
            throw ValidationError("--no-seccomp and --seccomp \(seccomp) contradict each other: give one of them")
        }
        switch SecurityFlags.override(user: user, seccomp: noSeccomp ? "none" : seccomp) {
        case .success(let override): return override
        case .failure(let error):
            throw ValidationError("--\(error.description.hasPrefix("user") ? "user" : "seccomp"): \(error.description)")
        }
    }

    /// The limit flags as overrides, each validated with the value named.
    func flagOverrides() throws -> [Resource: LimitOverride] {
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
        if let cpu = try parse("--cpu", cpu, .percentOfCPU) {
            guard cpu >= CPUMax.minimumPercent else {
                throw ValidationError("--cpu '\(self.cpu!)': below the kernel's minimum of 0.1% of one CPU")
            }
            overrides[.cpu] = LimitOverride(hard: cpu)
        }
        if let pids = try parse("--pids-max", pidsMax, .count) { overrides[.processes] = LimitOverride(hard: pids) }
        return overrides
    }

    func run() throws {
        // Before any thread exists: threads inherit the mask, so a SIGTERM or
        // ^C sent to Corral waits for the signalfd that forwards it to the
        // command instead of ending Corral on some helper thread (and leaving
        // the command and its cgroup behind).
        do {
            try Signals.block(AgentRunner.forwardedSignals)
        } catch {
            // Only invalid signal numbers fail; say it all the same, the run goes on without forwarding guarantees.
            printError("corral: warning: cannot block the forwarded signals: \(error)")
        }
        let configuration = try loadConfiguration(config)

        // Everything that can be wrong with the input is checked before anything is created.
        var generator = SystemRandomNumberGenerator()
        let agent = name ?? AgentIDGenerator.make(command: command[0], using: &generator)
        let groupName = group ?? configuration.agents[agent]?.group ?? QuotaGroup.defaultGroupName
        guard let quotaGroup = configuration.groups[groupName] else {
            throw fail(
                "unknown group '\(groupName)'; known groups: \(configuration.groupNames.joined(separator: ", ")) (define more in a --config file)",
                status: ExitStatus.usage)
        }
        guard let limits = configuration.limits(agent: agent, group: groupName, flags: try flagOverrides()) else {
            throw fail("unknown group '\(groupName)'")
        }
        for resource in try flagOverrides().keys.sorted() where limits[resource] == nil {
            throw fail("group \(groupName) has no \(resource.rawValue) limit to adjust: give a hard limit too", status: ExitStatus.usage)
        }
        for resource in limits.resources {
            let problems = limits[resource]!.problems(for: resource)
            if !problems.isEmpty {
                throw fail(
                    "the \(resource.rawValue) limits of agent '\(agent)' in \(groupName) are invalid: \(problems.joined(separator: "; "))",
                    status: ExitStatus.usage)
            }
        }

        let executable: String
        do {
            executable = try ExecutableLookup.resolve(command[0], path: getenv("PATH").map { String(cString: $0) })
        } catch {
            throw fail(error.description, status: error.exitStatus)
        }
        guard let security = configuration.security(agent: agent, group: groupName, flags: try securityFlags()) else {
            throw fail("unknown group '\(groupName)'")
        }
        // Checked now (a bad user or group fails before anything is asked of a daemon).
        // The filters compile on a thread of their own meanwhile (tens of milliseconds
        // under emulation): through a daemon, whose policy for the agent is most often this
        // one, the compile overlaps the registration; embedded, the host's probe and the
        // cgroup's creation. The spawn takes the filter from the cache (waiting for the
        // compile if it is still going); a policy that does not compile fails there, with
        // its message, before the cgroup is made.
        let filters = FilterCache()
        let checked: Isolation
        do {
            checked = try Isolation.prepare(security, cache: filters, supervised: true, compile: false)
        } catch {
            throw fail(error.description, status: ExitStatus.usage)
        }
        Isolation.warm(security, cache: filters, supervised: true)
        // An agent running as this user could otherwise write this process's memory
        // through /proc/PID/mem (Yama permitting) and answer its own denied calls.
        if security.seccomp.filters, checked.identity == nil { try? CurrentProcess.setDumpable(false) }

        let facts = HostProbe.facts()
        if let problem = facts.problems.first {
            throw fail(
                "cannot run agents on this host: \(problem.message)\n  fix: \(problem.fix)\n  (corral doctor shows everything it checked)")
        }

        var environment = Spawner.currentEnvironment().filter { !$0.hasPrefix("CORRAL_AGENT_ID=") && !$0.hasPrefix("CORRAL_GROUP=") }
        environment.append("CORRAL_AGENT_ID=\(agent)")
        environment.append("CORRAL_GROUP=\(groupName)")
        var request = RunRequest(
            agent: agent, group: quotaGroup, limits: limits, command: command, executable: executable,
            environment: environment, reservation: nil, samplingInterval: configuration.intervals.sampling)
        if let resolved = configuration.priority(agent: agent, group: groupName, flag: try PriorityFlag.parse(priority)) {
            (request.priority, request.priorityIsOwn) = resolved
        }
        let overrides = try flagOverrides()
        let securityOverride = try securityFlags()

        // With a daemon on its socket the agent is registered there (it shows
        // in `corral agents list` and the daemon walks its ladder); otherwise
        // the same engine runs embedded for this one agent.
        let client = CorralClient(socketPath: socket ?? CorralClient.configuredSocketPath)
        var summary: RunSummary?
        if !noDaemon {
            var viaDaemon = request
            viaDaemon.environment.append("CORRAL_SOCKET=\(client.socketPath)")
            do {
                summary = try DaemonRun(client: client, filters: filters).run(
                    viaDaemon, overrides: overrides, security: securityOverride, localPolicy: security, quiet: quiet || json)
            } catch is DaemonRun.NoDaemon {
                // Nothing listens on the socket: the engine runs embedded. (Asked by the
                // registration itself: a connection made only to see cost every run one.)
            } catch let refusal as DaemonRun.NotPermitted {
                // Anyone may connect (the daemon decides by SO_PEERCRED); one that
                // may not register agents there runs them itself, as without a daemon.
                if !(quiet || json) { printError("corral: \(refusal.message); running the agent without the daemon") }
            }
        }
        if summary == nil {
            let tree: CgroupTree
            do {
                let location = try CgroupRootLocation.resolve(CgroupRootOption.resolve(cgroupRoot, configuration), facts: facts)
                let filesystem = try DirectoryCgroupFilesystem(anchorPath: location.anchor)
                tree = CgroupTree(fs: filesystem, root: location.root, rootIsHierarchyRoot: location.isHierarchyRoot)
                // What the root may hand out: the host within the root's ancestors' limits.
                request.reservation = configuration.reservation.rootSettings(for: HostProbe.capacity(forRootAt: location.rootPath))
            } catch {
                throw fail(error.description)
            }
            // The filter from the compile begun above (the root was found meanwhile).
            do {
                request.isolation = try Isolation.prepare(security, cache: filters, supervised: true)
            } catch {
                throw fail(error.description, status: ExitStatus.usage)
            }
            let silent = quiet || json
            request.denials = try DenialSupervisor.forRun { denial in
                if !silent { printError("corral: [\(denial.agent)] seccomp refused \(denial.syscall) (\(denial.count)×)") }
            }
            defer { request.denials?.stop() }
            summary = try EmbeddedRun(tree: tree, configuration: configuration).run(request, overrides: overrides, quiet: silent)
        }
        guard let summary else { throw fail("no summary") }
        if let summaryFile {
            writeSummary(summary, to: summaryFile)
        }
        if json {
            writeOut(try encodeJSON(summary, pretty: false))
        } else {
            printError(summary.text)
        }
        throw ExitCode(summary.exitStatus)
    }
}

/// Writes the JSON summary to `path`; a failure is reported but does not
/// change the exit status, which belongs to the command.
func writeSummary(_ summary: RunSummary, to path: String) {
    do {
        let text = try encodeJSON(summary)
        let file = try FileDescriptor.open(
            path, .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        defer { do { try file.close() } catch {} }
        _ = try file.writeAll(text.utf8)
    } catch {
        printError("corral: cannot write the summary to \(path): \(error)")
    }
}
