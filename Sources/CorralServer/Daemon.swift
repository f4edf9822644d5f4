import CorralCgroup
import CorralConfig
public import CorralCore
import CorralEngine
import CorralJournal
import CorralLinux
import CorralRuntime
import CorralStore
import CorralSystemd
import CorralWatcher
import Hummingbird
public import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// How `corral serve` runs.
public struct DaemonOptions: Sendable {
    public var socketPath: String
    public var stateDirectory: String
    public var configPath: String?
    /// nil: the configuration's cgroup_root, else under systemd the agents' own
    /// scope (`AgentScope`), else /sys/fs/cgroup/corral.
    public var cgroupRoot: String?
    /// Members of this group may use the API like root (nil: only root).
    public var adminGroup: String?
    public var version: String
    /// Keep every page of the daemon in memory once touched (mlockall with
    /// MCL_ONFAULT), so that it can act when the host runs out of memory.
    public var lockMemory: Bool
    /// The init corrald forked when it started as a container's PID 1 (CCorraldInit): it
    /// moves into supervisor/ with the daemon.
    public var initParentPID: Int32?
    /// `--metrics-address`: a TCP listener for `/metrics` and the status page (nil: none).
    public var metricsAddress: MetricsAddress?

    public init(
        socketPath: String, stateDirectory: String, configPath: String?, cgroupRoot: String?, adminGroup: String?, version: String,
        lockMemory: Bool = true, initParentPID: Int32? = nil
    ) {
        self.lockMemory = lockMemory
        self.initParentPID = initParentPID
        self.socketPath = socketPath
        self.stateDirectory = stateDirectory
        self.configPath = configPath
        self.cgroupRoot = cgroupRoot
        self.adminGroup = adminGroup
        self.version = version
    }
}

/// A start-up problem, said once with the fix; `corrald` prints it and exits non-zero.
public struct DaemonError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum Daemon {
    /// Loads and validates the configuration file (or the built-in one).
    public static func loadConfiguration(_ path: String?) throws -> CorralConfiguration {
        guard let path else { return .builtIn }
        let text: String
        do {
            // A configuration file is small: anything past 4 MiB is not one.
            text = try readWholeFile(atPath: path, maximumBytes: 4 << 20)
        } catch {
            throw DaemonError("cannot read the configuration \(path): \(error)")
        }
        do {
            return try ConfigLoader.load(text, file: path)
        } catch {
            throw DaemonError(error.description)
        }
    }

    /// The cgroup root the daemon manages.
    static func cgroupRoot(_ options: DaemonOptions, _ configuration: CorralConfiguration) -> String {
        if let root = options.cgroupRoot ?? configuration.cgroupRoot { return root }
        // A systemd service that cannot use AgentScope (no /run/systemd/system): a unit
        // with Delegate=yes hands its own cgroup over.
        if getenv("INVOCATION_ID") != nil, let own = HostProbe.ownCgroup, own.hasSuffix(".service") {
            return HostProbe.mountPoint + own
        }
        return CgroupRootLocation.defaultRootPath
    }

    /// Logs what the daemon cannot do here, what it does instead and the fix.
    static func log(_ limitation: Limitation, _ logger: Logger) {
        logger.warning(
            "\(limitation.feature.rawValue) limited: \(limitation.reason); \(limitation.effect)",
            metadata: ["fix": "\(limitation.fix)"])
    }

    /// Creates `path` when missing and checks that this process may write it; errors name
    /// the directory, its purpose and the fix (a volume, in a container).
    static func writableDirectory(_ path: String, mode: mode_t, purpose: String, flag: String, container: ContainerContext)
        throws
    {
        func fail(_ reason: String) -> DaemonError {
            let problem = unwritableDirectoryProblem(
                path, purpose: purpose, flag: flag, inContainer: container.isContainer, reason: reason)
            return DaemonError("\(problem.message)\n  fix: \(problem.fix)")
        }
        do { try makeDirectory(path, mode: mode) } catch { throw fail(error.description) }
        if case .failure(let error) = nothingOrErrno(faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS)) {
            throw fail("\(error)")
        }
        // Root passes access(2) on a read-only mount's permission bits but not its flag.
        var stats = statvfs()
        if statvfs(path, &stats) == 0, stats.f_flag & UInt(ST_RDONLY) != 0 { throw fail("it is on a read-only filesystem") }
    }

    static func makeDirectory(_ path: String, mode: mode_t) throws(DaemonError) {
        var built = ""
        for component in path.split(separator: "/") {
            built += "/" + component
            switch nothingOrErrno(mkdir(built, mode)) {
            case .success, .failure(.fileExists): continue
            case .failure(let error): throw DaemonError("cannot create \(built): \(error)")
            }
        }
    }

    /// Runs until SIGTERM/SIGINT (graceful: state flushed, agents left running).
    /// Read when no --config is given and it exists.
    public static let defaultConfigPath = "/etc/corral/corral.yaml"

    public static func run(_ options: DaemonOptions, logger: Logger) async throws {
        var options = options
        if options.configPath == nil, access(defaultConfigPath, R_OK) == 0 { options.configPath = defaultConfigPath }
        let configuration = try loadConfiguration(options.configPath)
        let capabilities = HostProbe.capabilities
        // What this daemon cannot do where it runs: logged now, listed in /v1/health.
        var limitations: [Limitation] = []
        // Descriptors held per watched agent: raise the soft limit (agents get the original).
        if let files = FileLimit.raise(), let limitation = Limitation.openFiles(hardLimit: files.hard) {
            limitations.append(limitation)
        }
        if options.lockMemory {
            // Under memory pressure the kernel evicts file pages, code included: a daemon whose
            // next step faults its code back in from disk reacts in hundreds of milliseconds
            // (measured in the VM before this: 250–490 ms stalls on first crossings).
            do {
                try Memory.lockAll()
                logger.info("memory locked: pages stay resident once touched (mlockall, MCL_ONFAULT)")
            } catch {
                limitations.append(.memoryLock(error: "\(error)", capabilities: capabilities))
            }
        }
        let policies =
            configuration.groups.values.map(\.security)
            + configuration.agents.map { id, agent in configuration.security(agent: id, group: agent.group ?? QuotaGroup.defaultGroupName) }
            .compactMap { $0 }
        limitations += Isolation.limitations(for: policies, capabilities: capabilities)
        for limitation in limitations { log(limitation, logger) }
        let facts = HostProbe.facts()
        if let problem = facts.problems.first {
            throw DaemonError("cannot manage agents on this host: \(problem.message)\n  fix: \(problem.fix)")
        }
        let container = HostProbe.container()
        if let problem = container.problems.first {
            throw DaemonError("cannot manage agents here: \(problem.message)\n  fix: \(problem.fix)")
        }
        if container.isContainer {
            logger.info(
                "in a container",
                metadata: [
                    "runtime": "\(container.runtime ?? "unknown")",
                    "cgroup_namespace": "\(container.privateCgroupNamespace ? "private" : "host")",
                ])
        }
        // The state and socket directories before any cgroup is touched: a read-only root
        // filesystem (a pod's readOnlyRootFilesystem) needs volumes there, and nothing may be
        // half set up when they are missing.
        let socketDirectory = String(
            options.socketPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
        // Stored commands and agent logs may hold secrets: the directory is owner-only.
        try writableDirectory(
            options.stateDirectory, mode: 0o700, purpose: "the state directory", flag: "--state-dir",
            container: container)
        if !socketDirectory.isEmpty {
            try writableDirectory(
                socketDirectory, mode: 0o755, purpose: "the socket's directory", flag: "--socket", container: container)
        }
        // Under systemd the agents get a scope of their own (see AgentScope), unless a root is configured.
        var rootPath = cgroupRoot(options, configuration)
        var keeperPIDs: [Int32] = options.initParentPID.map { [$0] } ?? []
        let usesAgentScope =
            options.cgroupRoot == nil && configuration.cgroupRoot == nil && AgentScope.applies(ownCgroup: HostProbe.ownCgroup)
        if usesAgentScope {
            let scopePath = HostProbe.mountPoint + "/system.slice/" + AgentScope.unitName
            let placement = try AgentScope.ensure(
                reservation: configuration.reservation.rootSettings(for: HostProbe.capacity(forRootAt: scopePath)), logger: logger)
            rootPath = placement.rootPath
            keeperPIDs += placement.keeperPID.map { [$0] } ?? []
        }
        let tree: CgroupTree
        let location: CgroupRootLocation
        do {
            location = try CgroupRootLocation.resolve(rootPath, facts: facts)
            tree = CgroupTree(
                fs: try DirectoryCgroupFilesystem(anchorPath: location.anchor), root: location.root,
                rootIsHierarchyRoot: location.isHierarchyRoot)
            let lock = try tree.fs.lockTree()
            defer { withExtendedLifetime(lock) {} }
            let preparation = try tree.prepareRoot(
                selfPID: getpid(), keeperPIDs: keeperPIDs,
                reservation: configuration.reservation.rootSettings(for: HostProbe.capacity(forRootAt: location.rootPath)))
            if preparation.movedSelfToSupervisor {
                let supervisor = preparation.supervisorPath.map { tree.fs.absolutePath($0) } ?? rootPath + "/supervisor"
                logger.info("moved the daemon into \(supervisor) (no-internal-process rule)")
            }
            if usesAgentScope {
                logger.info(
                    "agents live in \(AgentScope.unitName); the system reservation is its MemoryMax, TasksMax and CPUQuota (set through systemd)"
                )
            } else if preparation.keptExistingLimits {
                logger.info(
                    "\(rootPath) was not created by Corral: its own memory.max, cpu.max and pids.max stay (the system reservation is not written to it)"
                )
            }
        } catch {
            throw DaemonError(error.description)
        }

        try makeDirectory(options.stateDirectory + "/logs", mode: 0o700)
        let store: CorralStore
        let intents: IntentLog
        do {
            store = try CorralStore(path: options.stateDirectory + "/corral.db")
            // Opened after the database: its lock says this daemon owns the state directory.
            intents = try IntentLog(path: options.stateDirectory + "/intents.log")
        } catch {
            throw DaemonError("\(error)")
        }

        let metrics = DaemonMetrics(version: options.version, logger: logger)
        let engine = Engine(
            configuration: configuration, tree: tree, store: SQLiteEngineStore(store: store),
            logDirectory: options.stateDirectory + "/logs", socketPath: options.socketPath,
            host: HostProbe.capacity(forRootAt: location.rootPath), instruments: metrics, intents: FileIntentJournal(log: intents))
        // Subscribed before the restore, so that every re-attachment is logged.
        let eventLog = EventLogService(engine: engine, events: engine.hub.subscribe(agent: nil), logger: logger)
        let reconciliation = try await engine.restore()
        logger.info(
            "state restored",
            metadata: [
                "agents.reattached": "\(reconciliation.reattached.count)", "agents.discovered": "\(reconciliation.discovered.count)",
                "agents.ended": "\(reconciliation.ended.count)", "cgroups.removed": "\(reconciliation.removedOrphans.count)",
                "agents.freezeRepaired": "\(reconciliation.frozenStateRepaired.count)",
                "agents.limitsRestored": "\(reconciliation.limitsRestored.count)",
            ])

        let loop = EngineLoop(engine: engine)
        let watcher: CgroupWatcher
        do {
            watcher = try await loop.watcher(for: engine, filesystem: tree.fs, sampling: configuration.intervals.sampling)
        } catch {
            throw DaemonError("cannot start the watcher: \(error.description)")
        }
        // The root as a whole, for the host ladder: its memory against what it may have.
        let hostMemory = Double(HostProbe.capacity(forRootAt: location.rootPath).memoryBytes)
        // In order, one consumer; a slow engine skips to the newest reading.
        let hostReadings = AsyncStream<HostReading>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let hostMonitor: HostMonitor
        do {
            hostMonitor = try HostMonitor(
                fs: tree.fs, root: tree.root, rootIsHierarchyRoot: tree.rootIsHierarchyRoot, interval: configuration.intervals.sampling,
                allocatable: {
                    (try? tree.fs.read(.memoryMax, of: tree.root)).flatMap(CgroupValue.init(parsing:))?.value.map(Double.init) ?? hostMemory
                }, clock: Engine.wallClock, report: { reading in hostReadings.continuation.yield(reading) })
        } catch {
            throw DaemonError("cannot watch the host's pressure (eventfd): \(error)")
        }

        // The socket: a fresh file, mode 0666. Anyone may connect because every
        // request is authorized from SO_PEERCRED (AccessPolicy): agents, which may
        // run as any user, must reach their own channel; a peer that is neither an
        // agent, root nor in the admin group gets 403 for every endpoint.
        var answered = false
        do {
            let other = try UnixSocket.connect(to: options.socketPath)
            answered = true
            do { try other.close() } catch {}
        } catch {
            // Nobody answers there: the socket is ours to make.
        }
        if answered { throw DaemonError("another daemon answers on \(options.socketPath); stop it first (or use --socket)") }
        unlink(options.socketPath)
        var adminGID: UInt32?
        if let adminGroup = options.adminGroup {
            guard let group = getgrnam(adminGroup) else {
                throw DaemonError("unknown admin group '\(adminGroup)': create it (groupadd \(adminGroup)) or leave --admin-group out")
            }
            adminGID = group.pointee.gr_gid
        }
        let hierarchyRoot =
            location.rootPath.hasPrefix(HostProbe.mountPoint)
            ? String(location.rootPath.dropFirst(HostProbe.mountPoint.count)) : location.rootPath
        var policy = AccessPolicy(adminGID: adminGID, cgroupRootInHierarchy: hierarchyRoot.isEmpty ? "/" : hierarchyRoot)
        let groupNames = QuotaGroupNames()
        groupNames.set(configuration.groupNames)
        policy.isQuotaGroup = { name in groupNames.contains(name) }
        let pressureThreshold = CgroupWatcher.Configuration(samplingInterval: configuration.intervals.sampling).pressureThreshold
        let startLimitations = limitations
        let currentLimitations: @Sendable () -> [Limitation] = {
            var all = startLimitations
            if let limitation = PressureTriggerReport.limitation(watcher.pressureTriggers, configured: pressureThreshold) {
                all.append(limitation)
            }
            return all
        }
        let settings = APISettings(
            version: options.version, socketPath: options.socketPath, cgroupRoot: location.rootPath, policy: policy,
            limitations: currentLimitations, metrics: metrics)
        let router = buildRouter(engine: engine, settings: settings)
        // The metrics address: bound before anything starts, so that a taken or foreign address is said at once.
        var metricsServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let address = options.metricsAddress {
            try address.checkBindable()
            let metricsApp = Application(
                router: buildMetricsRouter(engine: engine, metrics: metrics),
                configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "corral-metrics"),
                onServerRunning: { channel in
                    logger.info(
                        "metrics and status page",
                        metadata: ["address": "http://\(address)/", "bound": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
                }, logger: logger)
            metricsServices.append(.init(service: metricsApp))
        }
        let status = ServiceStatusReporter(engine: engine)
        let socketPath = options.socketPath
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .unixDomainSocket(path: socketPath), serverName: "corral"),
            onServerRunning: { _ in
                if case .failure(let error) = nothingOrErrno(chmod(socketPath, 0o666)) {
                    logger.warning(
                        "cannot make the socket connectable for agents (chmod 0666)",
                        metadata: ["socket": "\(socketPath)", "error": "\(error)"])
                }
                let notified = Systemd.notify("READY=1")
                Task { await status.refresh() }
                logger.info("ready", metadata: ["socket": "\(socketPath)", "sd_notify": "\(notified)"])
            }, logger: logger)
        // Started together; on SIGTERM/SIGINT stopped in reverse order: the
        // API first, then the engine (what is queued is handled, every step
        // stored), the watcher, and last the store.
        // STATUS= only matters to systemd.
        let statusServices: [ServiceGroupConfiguration.ServiceConfiguration] =
            Systemd.underServiceManager ? [.init(service: StatusService(reporter: status, hub: engine.hub))] : []
        let services = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: statusServices + [
                    .init(service: eventLog),
                    .init(service: PressureTriggerReport(watcher: watcher, configured: pressureThreshold, logger: logger)),
                    .init(service: StoreService(store: store, engine: engine, hub: engine.hub, logger: logger)),
                    .init(service: WatcherService(watcher: watcher)),
                    .init(
                        service: HostMonitorService(
                            monitor: hostMonitor, readings: hostReadings.stream, engine: engine,
                            enabled: configuration.hostPressure.enabled,
                            logger: logger)),
                    .init(service: EngineService(loop: loop, engine: engine, logger: logger)),
                    .init(
                        service: ReloadService(
                            engine: engine, configPath: options.configPath, logger: logger, groupNames: groupNames, status: status)),
                    .init(
                        service: WatchdogService(
                            loop: loop, watcher: watcher, sampling: configuration.intervals.sampling, logger: logger)),
                    .init(service: app),
                ] + metricsServices + [
                    // Shut down first: ends the event streams (`corral run` and agents follow
                    // theirs), which the API's graceful shutdown would otherwise wait for.
                    .init(service: EventStreamsService(hub: engine.hub))
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await services.run()
        unlink(socketPath)
        Systemd.notify("STOPPING=1")
        logger.info("stopped; agents keep running")
    }
}

/// Runs the engine's loop (`EngineLoop`); a graceful shutdown lets it handle
/// what is queued and stop.
struct EngineService: Service {
    let loop: EngineLoop
    let engine: Engine
    let logger: Logger

    func run() async throws {
        await withGracefulShutdownHandler {
            await loop.run()
        } onGracefulShutdown: { [loop] in
            loop.stop()
        }
        // Agents outlive the daemon; their denied calls fail with ENOSYS from now on (a restarted
        // daemon has no listener for the agents it re-attaches: still refused, no longer recorded).
        await engine.stopSupervising()
        logger.info("engine stopped")
    }
}

/// Says once, in the log, whether the watcher could arm PSI triggers: that is only known
/// once the first agent is watched (a missing CAP_SYS_RESOURCE fails the first write).
struct PressureTriggerReport: Service {
    let watcher: CgroupWatcher
    let configured: PressureThreshold?
    let logger: Logger

    /// What the watcher's trigger status costs, if anything.
    static func limitation(_ status: PressureTriggerStatus, configured: PressureThreshold?) -> Limitation? {
        switch status {
        case .unavailable(let reason):
            return .pressureTriggers(reason: reason)
        case .active(let used):
            guard let configured, used != configured else { return nil }
            return .coarsePressureTriggers(configured: configured.triggerText, used: used.triggerText)
        case .disabled, .untried:
            return nil
        }
    }

    func run() async throws {
        while watcher.pressureTriggers == .untried {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return
            }
        }
        let status = watcher.pressureTriggers
        if let limitation = Self.limitation(status, configured: configured) {
            Daemon.log(limitation, logger)
        } else if case .active(let threshold) = status {
            logger.info("PSI triggers armed on memory.pressure and cpu.pressure", metadata: ["trigger": "\(threshold.triggerText)"])
        }
        await WatcherService.untilShutdown()
    }
}

/// The cgroup watcher's thread: started with the daemon, stopped after the engine.
struct WatcherService: Service {
    let watcher: CgroupWatcher

    func run() async throws {
        watcher.start()
        await Self.untilShutdown()
        watcher.stop()
    }
}

/// The host monitor's thread (the host ladder's readings): started with the daemon, stopped with the watcher.
struct HostMonitorService: Service {
    let monitor: HostMonitor
    let readings: AsyncStream<HostReading>
    let engine: Engine
    let enabled: Bool
    let logger: Logger

    func run() async throws {
        // Always read (a reload may turn the ladder on); with the ladder off the readings only show in `corral capacity`.
        monitor.start()
        if !enabled { logger.info("host pressure ladder off (host_pressure.enabled: false): the root's pressure is shown, not acted on") }
        let readings = readings
        let engine = engine
        let consumer = Task {
            for await reading in readings { await engine.observeHost(reading) }
        }
        try? await Task.sleep(for: .milliseconds(200))
        logger.info("watching the host's pressure", metadata: ["how": "\(monitor.triggerStatus)"])
        await WatcherService.untilShutdown()
        monitor.stop()
        consumer.cancel()
    }
}

extension WatcherService {
    /// Waits for the graceful shutdown; a cancelled wait (the group is
    /// going down all the same) ends it too.
    static func untilShutdown() async {
        do { try await gracefulShutdown() } catch {}
    }
}

/// Ends every event stream when the shutdown begins, and refuses new ones.
struct EventStreamsService: Service {
    let hub: EventHub

    func run() async throws {
        await WatcherService.untilShutdown()
        hub.finishAll()
    }
}

/// The store: closed last, once the engine has stored its finished usage
/// minutes and everything queued (`Engine.settle`).
struct StoreService: Service {
    let store: CorralStore
    let engine: Engine
    let hub: EventHub
    let logger: Logger

    func run() async throws {
        await WatcherService.untilShutdown()
        await engine.settle()
        hub.finishAll()
        do {
            try store.close()
        } catch {
            logger.error("the store did not close cleanly; SQLite recovers it at the next start", metadata: ["error": "\(error)"])
        }
    }
}

/// The configured quota groups' names, for telling agents from other
/// cgroups when the root is the hierarchy's root (see `AccessPolicy`);
/// replaced on reload.
final class QuotaGroupNames: Sendable {
    private let names = Mutex(Set<String>())
    func set(_ new: [String]) { names.withLock { $0 = Set(new) } }
    func contains(_ name: String) -> Bool { names.withLock { $0.contains(name) } }
}

/// SIGHUP: reload the configuration; an invalid file changes nothing.
struct ReloadService: Service {
    let engine: Engine
    let configPath: String?
    let logger: Logger
    let groupNames: QuotaGroupNames
    let status: ServiceStatusReporter

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                // systemd waits for READY=1 after RELOADING=1 (`systemctl reload` returns then).
                Systemd.notify("RELOADING=1\nMONOTONIC_USEC=\(Systemd.monotonicMicroseconds)")
                do {
                    let configuration = try Daemon.loadConfiguration(configPath)
                    await engine.reload(configuration)
                    groupNames.set(configuration.groupNames)
                    await status.reloaded(problem: nil)
                    logger.notice(
                        "configuration reloaded",
                        metadata: ["config": "\(configPath ?? "built-in")", JournalEntry.messageIDKey: "\(EventLog.MessageID.reload)"])
                } catch {
                    await status.reloaded(problem: "\(error)")
                    logger.error(
                        "configuration not reloaded; the previous one stays in force: \(error)",
                        metadata: ["config": "\(configPath ?? "built-in")", JournalEntry.messageIDKey: "\(EventLog.MessageID.reload)"])
                }
                Systemd.notify("READY=1")
            }
        }
    }
}

/// systemd's watchdog (WATCHDOG_USEC set): pings only while the engine makes
/// progress, its ladder tick and the watcher's loop both moving
/// (`WatchdogGate`), so that a wedged engine is restarted, not kept alive by a
/// timer of its own. Checks four times per interval.
struct WatchdogService: Service {
    let loop: EngineLoop
    let watcher: CgroupWatcher
    let sampling: Duration
    let logger: Logger

    func run() async throws {
        guard let interval = Systemd.watchdogInterval else {
            await WatcherService.untilShutdown()
            return
        }
        let gate = WatchdogGate(watchdog: interval, sampling: sampling)
        let started = ContinuousClock.now
        await cancelWhenGracefulShutdown {
            var stalled = false
            while !Task.isCancelled {
                if let stall = gate.stall(
                    now: .now, lastTick: loop.lastTick, lastWatcherRound: watcher.lastIteration, startedAt: started)
                {
                    if !stalled { logger.critical("not pinging systemd's watchdog: \(stall)") }
                    stalled = true
                } else {
                    stalled = false
                    Systemd.notify("WATCHDOG=1")
                }
                do { try await Task.sleep(for: interval / 4) } catch { return }
            }
        }
    }
}
