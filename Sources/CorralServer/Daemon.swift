import CorralCgroup
import CorralConfig
public import CorralCore
import CorralEngine
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
    /// nil: the configuration's cgroup_root, else the service's own cgroup under
    /// systemd (Delegate=yes), else /sys/fs/cgroup/corral.
    public var cgroupRoot: String?
    /// Members of this group may use the API like root (nil: only root).
    public var adminGroup: String?
    public var version: String
    /// Keep every page of the daemon in memory once touched (mlockall with
    /// MCL_ONFAULT), so that it can act when the host runs out of memory.
    public var lockMemory: Bool

    public init(
        socketPath: String, stateDirectory: String, configPath: String?, cgroupRoot: String?, adminGroup: String?, version: String,
        lockMemory: Bool = true
    ) {
        self.lockMemory = lockMemory
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
        // Under systemd with Delegate=yes the service's own cgroup is ours.
        if getenv("INVOCATION_ID") != nil, let own = HostProbe.ownCgroup, own.hasSuffix(".service") {
            return HostProbe.mountPoint + own
        }
        return CgroupRootLocation.defaultRootPath
    }

    static func makeDirectory(_ path: String, mode: mode_t) throws {
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
        // Descriptors held per watched agent: raise the soft limit (agents get the original).
        FileLimit.raise()
        if options.lockMemory {
            // Under memory pressure the kernel evicts file pages, code included: a daemon whose
            // next step faults its code back in from disk reacts in hundreds of milliseconds
            // (measured in the VM before this: 250–490 ms stalls on first crossings).
            do {
                try Memory.lockAll()
                logger.info("memory locked: pages stay resident once touched (mlockall, MCL_ONFAULT)")
            } catch {
                logger.warning(
                    "could not lock memory (mlockall: \(error)); going on without",
                    metadata: ["fix": "run as root or with CAP_IPC_LOCK, or raise LimitMEMLOCK; --no-memory-lock silences this"])
            }
        }
        let facts = HostProbe.facts()
        if let problem = facts.problems.first {
            throw DaemonError("cannot manage agents on this host: \(problem.message)\n  fix: \(problem.fix)")
        }
        let rootPath = cgroupRoot(options, configuration)
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
                selfPID: getpid(),
                reservation: configuration.reservation.rootSettings(for: HostProbe.capacity(forRootAt: location.rootPath)))
            if preparation.movedSelfToSupervisor {
                logger.info("moved the daemon into \(rootPath)/supervisor (no-internal-process rule)")
            }
            if preparation.keptExistingLimits {
                logger.info(
                    "\(rootPath) was not created by Corral: its own memory.max, cpu.max and pids.max stay (the system reservation is not written to it)"
                )
            }
        } catch {
            throw DaemonError(error.description)
        }

        // Stored commands and agent logs may hold secrets: the directory is owner-only.
        try makeDirectory(options.stateDirectory, mode: 0o700)
        try makeDirectory(options.stateDirectory + "/logs", mode: 0o700)
        let store: CorralStore
        do {
            store = try CorralStore(path: options.stateDirectory + "/corral.db")
        } catch {
            throw DaemonError("\(error)")
        }

        let engine = Engine(
            configuration: configuration, tree: tree, store: SQLiteEngineStore(store: store),
            logDirectory: options.stateDirectory + "/logs", socketPath: options.socketPath)
        let reconciliation = try await engine.restore()
        logger.info(
            "state restored",
            metadata: [
                "agents.reattached": "\(reconciliation.reattached.count)", "agents.discovered": "\(reconciliation.discovered.count)",
                "agents.ended": "\(reconciliation.ended.count)", "cgroups.removed": "\(reconciliation.removedOrphans.count)",
            ])

        let loop = EngineLoop(engine: engine)
        let queue = loop.queue
        let watcher: CgroupWatcher
        do {
            watcher = try CgroupWatcher(
                filesystem: tree.fs, configuration: CgroupWatcher.Configuration(samplingInterval: configuration.intervals.sampling),
                clock: Engine.wallClock
            ) { event in queue.push(event) }
        } catch {
            throw DaemonError("cannot start the watcher: \(error.description)")
        }
        await engine.connect(WatcherBridge(watcher: watcher, deliver: { queue.push($0) }))

        // The socket: a fresh file, mode 0666. Anyone may connect because every
        // request is authorized from SO_PEERCRED (AccessPolicy): agents, which may
        // run as any user, must reach their own channel; a peer that is neither an
        // agent, root nor in the admin group gets 403 for every endpoint.
        let socketDirectory = String(
            options.socketPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
        if !socketDirectory.isEmpty { try makeDirectory(socketDirectory, mode: 0o755) }
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
        let settings = APISettings(
            version: options.version, socketPath: options.socketPath, cgroupRoot: location.rootPath, policy: policy)
        let router = buildRouter(engine: engine, settings: settings)
        let socketPath = options.socketPath
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .unixDomainSocket(path: socketPath), serverName: "corral"),
            onServerRunning: { _ in
                if case .failure(let error) = nothingOrErrno(chmod(socketPath, 0o666)) {
                    logger.warning(
                        "cannot make the socket connectable for agents (chmod 0666)",
                        metadata: ["socket": "\(socketPath)", "error": "\(error)"])
                }
                let status = Systemd.notify("READY=1\nSTATUS=managing agents; API on \(socketPath)")
                logger.info("ready", metadata: ["socket": "\(socketPath)", "sd_notify": "\(status)"])
            }, logger: logger)
        // Started together; on SIGTERM/SIGINT stopped in reverse order: the
        // API first, then the engine (what is queued is handled, every step
        // stored), the watcher, and last the store.
        let services = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: StoreService(store: store, engine: engine, hub: engine.hub, logger: logger)),
                    .init(service: WatcherService(watcher: watcher)),
                    .init(service: EngineService(loop: loop, logger: logger)),
                    .init(service: ReloadService(engine: engine, configPath: options.configPath, logger: logger, groupNames: groupNames)),
                    .init(service: WatchdogService(logger: logger)),
                    .init(service: app),
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
    let logger: Logger

    func run() async throws {
        await withGracefulShutdownHandler {
            await loop.run()
        } onGracefulShutdown: { [loop] in
            loop.stop()
        }
        logger.info("engine stopped")
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

extension WatcherService {
    /// Waits for the graceful shutdown; a cancelled wait (the group is
    /// going down all the same) ends it too.
    static func untilShutdown() async {
        do { try await gracefulShutdown() } catch {}
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

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                do {
                    let configuration = try Daemon.loadConfiguration(configPath)
                    await engine.reload(configuration)
                    groupNames.set(configuration.groupNames)
                    Systemd.notify("STATUS=configuration reloaded")
                    logger.info("configuration reloaded", metadata: ["config": "\(configPath ?? "built-in")"])
                } catch {
                    logger.error("configuration not reloaded; the previous one stays in force", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// Pings systemd's watchdog at half of WATCHDOG_USEC, when it is set.
struct WatchdogService: Service {
    let logger: Logger

    func run() async throws {
        guard let text = getenv("WATCHDOG_USEC").map({ String(cString: $0) }), let usec = Int64(text), usec > 0 else {
            try await gracefulShutdown()
            return
        }
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                Systemd.notify("WATCHDOG=1")
                try await Task.sleep(for: .microseconds(usec / 2))
            }
        }
    }
}
