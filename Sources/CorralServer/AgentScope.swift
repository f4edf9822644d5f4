import CorralCgroup
public import CorralCore
import CorralLinux
import CorralRuntime
import CorralSystemd
public import Logging
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Where agents live when corrald runs as a systemd service: a transient scope
/// of their own, `corral-agents.scope`, delegated to Corral (`Delegate=yes`),
/// created over D-Bus the way `systemd-run --scope` and runc's systemd driver
/// create theirs.
///
/// Why not the service's own cgroup: systemd places every new main process of
/// a unit in the unit's cgroup itself. Once Corral has enabled controllers
/// there for its group cgroups, the kernel refuses that (the no-internal-process
/// rule) and every restart, crash recovery or package upgrade with agents
/// running ends in `status=219/CGROUP`. systemd 254's `DelegateSubgroup=`
/// answers this for one unit; a separate scope answers it on every version,
/// and lets `corral.service` be stopped, restarted or upgraded alone while
/// the agents keep running in theirs.
///
/// A scope ends when its cgroup empties, so a keeper process (`corrald
/// --agent-scope-keeper`, which only sleeps) holds it between agents; it is
/// moved with the daemon's other processes into `supervisor/`. Stopping the
/// scope (`systemctl stop corral-agents.scope`) ends every agent.
///
/// Owner: `Daemon.run`, once at start-up, before the engine exists.
public enum AgentScope {
    public static let unitName = "corral-agents.scope"
    public static let keeperFlag = "--agent-scope-keeper"

    /// The scope's cgroup and the processes of Corral's own found in it.
    public struct Placement: Sendable {
        /// Absolute path of the scope's cgroup directory.
        public var rootPath: String
        /// The keeper, when this start created the scope (it still sits in
        /// the scope's own cgroup and moves to `supervisor/`).
        public var keeperPID: Int32?
    }

    /// Whether this daemon runs as a systemd service (not under `systemd-run`
    /// or in a container) and so places its agents in the scope.
    public static func applies(ownCgroup: String?) -> Bool {
        getenv("INVOCATION_ID") != nil && access("/run/systemd/system", F_OK) == 0
            && (ownCgroup?.split(separator: "/").last?.hasSuffix(".service") ?? false)
    }

    /// Finds the running scope, or creates it with a keeper and the system
    /// reservation as its limits (systemd owns a delegated unit's own
    /// attributes, so they are set as unit properties, not written).
    public static func ensure(reservation: CgroupSettings, logger: Logger) throws(DaemonError) -> Placement {
        let bus: SystemdBus
        do { bus = try SystemdBus() } catch { throw DaemonError("cannot reach systemd to place the agents: \(error)") }
        var state: String?
        for _ in 0..<50 {
            do { state = try bus.activeState(ofUnit: unitName) } catch {
                throw DaemonError("cannot ask systemd about \(unitName): \(error)")
            }
            guard state == "activating" || state == "deactivating" else { break }
            usleep(100_000)
        }
        if state == "active" || state == "reloading" {
            return Placement(rootPath: try controlGroupPath(bus), keeperPID: nil)
        }
        bus.resetFailed(unitName)

        let keeper = try spawnKeeper()
        var properties: [SystemdBus.Property] = [
            .string("Description", "Corral's agents (managed by corral.service)"),
            .pids([UInt32(keeper)]),
            .bool("Delegate", true),
            // Stopping the scope: SIGTERM to every agent, SIGKILL after 10 s.
            .uint64("TimeoutStopUSec", 10_000_000),
        ]
        if case .limit(let bytes)? = reservation.memoryMax { properties.append(.uint64("MemoryMax", UInt64(bytes))) }
        if case .limit(let count)? = reservation.pidsMax { properties.append(.uint64("TasksMax", UInt64(count))) }
        if let cpu = reservation.cpuMax, let quota = cpu.quota {
            properties.append(.uint64("CPUQuotaPerSecUSec", UInt64(quota) * 1_000_000 / UInt64(cpu.period)))
        }
        do {
            try bus.startTransientUnit(unitName, properties: properties)
        } catch {
            kill(keeper, SIGKILL)
            throw DaemonError("cannot create \(unitName) for the agents: \(error)")
        }
        // The scope's job moves the keeper (its ControlGroup property is empty until
        // then); wait for it, a few milliseconds, and take the path from the keeper.
        for _ in 0..<100 {
            let text: String
            do { text = try readWholeFile(atPath: "/proc/\(keeper)/cgroup") } catch {
                throw DaemonError("the keeper of \(unitName) (pid \(keeper)) is gone: \(error)")
            }
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") && $0.hasSuffix("/" + unitName) }) {
                let path = HostProbe.mountPoint + line.dropFirst(3)
                logger.info("created \(unitName) for the agents", metadata: ["cgroup": "\(path)", "keeper": "\(keeper)"])
                return Placement(rootPath: path, keeperPID: keeper)
            }
            usleep(50_000)
        }
        kill(keeper, SIGKILL)
        throw DaemonError("\(unitName) was created but systemd did not move its keeper (pid \(keeper)) into it within 5 s")
    }

    private static func controlGroupPath(_ bus: SystemdBus) throws(DaemonError) -> String {
        let group: String?
        do { group = try bus.controlGroup(ofUnit: unitName) } catch {
            throw DaemonError("cannot read the cgroup of \(unitName): \(error)")
        }
        guard let group, group.hasPrefix("/") else {
            throw DaemonError("systemd reports no cgroup for \(unitName)")
        }
        return HostProbe.mountPoint + group
    }

    private static func spawnKeeper() throws(DaemonError) -> Int32 {
        let null: FileDescriptor
        do { null = try FileDescriptor.open("/dev/null", .readWrite, options: .closeOnExec) } catch {
            throw DaemonError("cannot open /dev/null: \(error)")
        }
        defer { try? null.close() }
        do {
            let process = try Spawner.spawn(
                Spawner.Request(
                    executable: "/proc/self/exe", arguments: ["corrald", keeperFlag], environment: [], cgroupDirectory: nil,
                    cgroupProcs: nil, noNewPrivileges: true, standardInput: null, standardOutput: null, standardError: null,
                    newSession: true))
            if let pidfd = process.pidfd { try? pidfd.close() }
            return process.pid
        } catch {
            throw DaemonError("cannot start the keeper of \(unitName): \(error)")
        }
    }

    /// The keeper's whole life: sleep until a signal ends it (SIGTERM when the
    /// scope stops).
    public static func keep() -> Never {
        while true { pause() }
    }
}
