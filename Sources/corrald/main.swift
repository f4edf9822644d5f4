import ArgumentParser
import CCorraldInit
import CorralCore
import CorralJournal
import CorralServer
import CorralSystemd
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// corrald: the daemon behind `corral serve`.
@main
struct Corrald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corrald",
        abstract: "The Corral daemon: manages many agents' cgroups, walks the escalation ladder, serves the API.",
        discussion: """
            Watches every agent's cgroup (inotify on memory.events, pids.events, cgroup.events; PSI
            triggers; sampling), turns the kernel's signals into violations, walks each agent's
            escalation ladder (warn, throttle, suspend, terminate, scale_down, migrate, custom) with
            the configured delays, records every action with its real outcome in SQLite, and serves
            an HTTP/JSON API on a Unix socket (openapi/corral.yaml) that the corral CLI uses.

            SIGTERM/SIGINT: graceful stop, agents keep running; a restarted daemon re-attaches them.
            SIGHUP: reload the configuration (an invalid file is refused, the old one stays).
            Under systemd (deploy/corral.service) agents live in a delegated scope of their own,
            corral-agents.scope, so that the service restarts and upgrades alone.
            As a container's PID 1 it forks a minimal init (corrald-init) that reaps orphaned
            processes and forwards signals to it (CORRALD_NO_INIT=1 turns that off).
            """,
        version: CorralVersion.current
    )

    @Option(name: .long, help: ArgumentHelp("The API socket.", valueName: "PATH"))
    var socket = "/run/corral/corral.sock"

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Database and agent logs.", valueName: "DIR"))
    var stateDirectory = "/var/lib/corral"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "YAML configuration (default: /etc/corral/corral.yaml when it exists, else the built-in groups).", valueName: "FILE"))
    var config: String?

    @Option(name: .customLong("cgroup-root"), help: ArgumentHelp("The cgroup directory to manage.", valueName: "DIR"))
    var cgroupRoot: String?

    @Option(name: .customLong("admin-group"), help: ArgumentHelp("Members of this group may use the API like root.", valueName: "GROUP"))
    var adminGroup: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(
        name: .customLong("log-target"),
        help: ArgumentHelp(
            "auto, journal or stderr. auto: the systemd journal (native fields: journalctl -u corral CORRAL_AGENT=ID) when stderr is connected to it, else stderr.",
            valueName: "TARGET"))
    var logTarget = "auto"

    @Option(
        name: .customLong("metrics-address"),
        help: ArgumentHelp(
            "Also serve GET /metrics (Prometheus) and the status page (GET /) read-only over HTTP here, to anyone who can reach it; off by default. The API socket serves both to administrators either way.",
            valueName: "HOST:PORT"))
    var metricsAddress: String?

    @Flag(
        name: .customLong("no-memory-lock"),
        help:
            "Do not lock the daemon's pages in memory (by default they stay resident once touched, so that it can act when the host is out of memory)."
    )
    var noMemoryLock = false

    /// The process that holds the agents' systemd scope open (see AgentScope).
    @Flag(name: .customLong(String(AgentScope.keeperFlag.dropFirst(2))), help: .hidden)
    var agentScopeKeeper = false

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level '\(logLevel)': use trace, debug, info, notice, warning, error or critical")
        }
        guard ["auto", "journal", "stderr"].contains(logTarget) else {
            throw ValidationError("--log-target '\(logTarget)': use auto, journal or stderr")
        }
        for (flag, path) in [("--socket", socket), ("--state-dir", stateDirectory)] where !path.hasPrefix("/") {
            throw ValidationError("\(flag) '\(path)' must be an absolute path")
        }
        if let metricsAddress {
            do { _ = try MetricsAddress(parsing: metricsAddress) } catch { throw ValidationError(error.description) }
        }
    }

    func run() async throws {
        if agentScopeKeeper { AgentScope.keep() }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let journal = logTarget == "journal" || (logTarget == "auto" && Systemd.standardErrorIsJournal)
        LoggingSystem.bootstrap { label in
            if journal {
                var handler = JournalLogHandler(identifier: "corrald")
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "corral")
        do {
            var options = DaemonOptions(
                socketPath: socket, stateDirectory: stateDirectory, configPath: config, cgroupRoot: cgroupRoot,
                adminGroup: adminGroup, version: Self.configuration.version, lockMemory: !noMemoryLock,
                initParentPID: corrald_has_init_parent() != 0 ? getppid() : nil)
            options.metricsAddress = try metricsAddress.map(MetricsAddress.init(parsing:))
            try await Daemon.run(options, logger: logger)
        } catch let error as DaemonError {
            var text = "corrald: \(error.description)\n"
            _ = text.withUTF8 { write(2, $0.baseAddress, $0.count) }
            throw ExitCode(1)
        }
    }
}
