import CorralAPI
import CorralCore
import CorralTestSupport
import Foundation
import Synchronization
import Testing

/// The kill -9 soak: agents keep being started while others walk their ladders (warnings,
/// throttles, suspends, scale-downs, terminations), and the daemon is killed with SIGKILL at
/// random moments — during commits and agent starts among them. After each kill, the kernel's
/// state is read while the daemon is down; after each restart, the invariants:
/// - every populated agent cgroup is a live agent again, and watched;
/// - no enforcement record lost or duplicated: ids contiguous from 1, no record twice, and
///   every effect found in the kernel at the kill (a frozen cgroup, a lowered pids.max or
///   cpu.max) has its record from before the kill;
/// - no orphan cgroup, and no cgroup frozen without a suspend in force (a lost thaw).
/// At the end every fork storm's ladder has run warn → throttle → suspend → terminate, each
/// step exactly once across all the kills: the ladders continued where they were.
///
/// The short form runs in scripts/e2e (CORRAL_SOAK_AGENTS, CORRAL_SOAK_KILLS: 24 and 5);
/// scripts/soak runs the long one (100 agents, 20 kills).
@Suite("e2e: kill -9 soak", .serialized, .enabled(if: E2E.enabled))
struct SoakTests {
    typealias Daemon = DaemonTests.Daemon

    /// The soak's agents: fork storms (processes, to termination), CPU spinners in
    /// heavy_computation_agent (cpu: scale_down), memory over memory.high (soft warnings).
    enum Kind: CaseIterable {
        case forker, spinner, soft

        static func of(_ index: Int) -> Kind { index % 8 == 3 ? .spinner : index % 8 == 6 ? .soft : .forker }
    }

    static func name(_ index: Int) -> String { "soak\(index)" }

    /// What the kernel showed while the daemon was down.
    struct KernelState {
        var at: Timestamp
        var frozen: Set<String> = []
        var pidsLowered: Set<String> = []
        var cpuLowered: Set<String> = []
        var leaves: Set<String> = []
    }

    /// What the starter thread shares with the test (the thread owns the writes).
    final class Starter: Sendable {
        let starting = Mutex<Bool>(false)
        let started = Mutex<Set<Int>>([])
        let retried = Mutex<Int>(0)
    }

    struct Counts {
        var kills = 0
        var killsDuringStart = 0
        var startsRetried = 0
        var reattached = 0
        var frozenAtKill = 0
        var throttledAtKill = 0
        var restartSeconds: [Double] = []
    }

    @Test func killNineSoak() throws {
        let environment = ProcessInfo.processInfo.environment
        let agents = Int(environment["CORRAL_SOAK_AGENTS"] ?? "") ?? 24
        let kills = Int(environment["CORRAL_SOAK_KILLS"] ?? "") ?? 5
        let (_, stress) = try E2E.binaries()
        let daemon = try Daemon(
            name: "soak", intervals: "{sampling: 1s}",
            extraConfig: """

                groups:
                  heavy_computation_agent:
                    totals: {memory: 16G, cpu: 1600%, processes: 4000}
                  standard_agent:
                    totals: {memory: 16G, cpu: 800%, processes: 4000}
                """,
            delays: "{warn: 0s, throttle: 5s, suspend: 12s, terminate: 20s}")
        try daemon.start()
        defer {
            _ = daemon.stop()
            for leaf in Self.leaves(daemon.root) {
                try? "1".write(toFile: "\(daemon.root)/\(leaf)/cgroup.kill", atomically: false, encoding: .utf8)
            }
            _ = E2E.eventually(timeout: 30) { Self.leaves(daemon.root).allSatisfy { rmdir("\(daemon.root)/\($0)") == 0 } }
            E2E.removeEmptyTree(daemon.root)
        }

        // The starter: one agent every `spacing` seconds, through the CLI, while kills come.
        let soakSeconds = max(60, Double(kills) * 12)
        let spacing = soakSeconds / Double(max(agents, 1))
        let shared = Starter()
        let starter = Thread {
            for index in 0..<agents {
                let arguments = Self.startArguments(index, stress: stress)
                var attempt = 0
                while attempt < 60 {
                    shared.starting.withLock { $0 = true }
                    let result = try? daemon.cli(["agents", "start"] + arguments)
                    shared.starting.withLock { $0 = false }
                    // Started, or (retried after a kill) already there: the daemon had it.
                    if let result, result.status == 0 || (attempt > 0 && result.stderr.contains("is in use")) {
                        shared.started.withLock { _ = $0.insert(index) }
                        break
                    }
                    attempt += 1
                    shared.retried.withLock { $0 += 1 }
                    Thread.sleep(forTimeInterval: 1)
                }
                Thread.sleep(forTimeInterval: spacing)
            }
        }
        starter.start()

        var counts = Counts()
        var random = SystemRandomNumberGenerator()
        let gap = soakSeconds / Double(kills + 1)
        for _ in 0..<kills {
            Thread.sleep(forTimeInterval: Double.random(in: gap * 0.5...gap * 1.5, using: &random))
            let duringStart = shared.starting.withLock { $0 }
            daemon.crash()
            counts.kills += 1
            if duringStart { counts.killsDuringStart += 1 }
            let kernel = Self.kernelState(daemon.root)
            counts.frozenAtKill += kernel.frozen.count
            counts.throttledAtKill += kernel.pidsLowered.count + kernel.cpuLowered.count
            // Down for a moment, as after a crash with Restart=on-failure.
            Thread.sleep(forTimeInterval: Double.random(in: 0.1...2, using: &random))
            let restart = Date()
            try daemon.start()
            counts.restartSeconds.append(Date().timeIntervalSince(restart))
            counts.reattached += try checkAfterRestart(daemon, kernel: kernel, kill: counts.kills)
        }
        while starter.isExecuting { Thread.sleep(forTimeInterval: 0.5) }
        counts.startsRetried = shared.retried.withLock { $0 }

        // Every fork storm's ladder runs to its end: terminate, after which the agent ends.
        let forkers = (0..<agents).filter { Kind.of($0) == .forker }.map(Self.name)
        let ended = E2E.eventually(timeout: 180) {
            let live = Set(((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? []).filter(\.state.isLive).map(\.id))
            return live.isDisjoint(with: forkers)
        }
        let live = ((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? []).filter(\.state.isLive).map(\.id)
        #expect(ended, "every fork storm terminated; live still: \(live.filter(forkers.contains))")
        let history = try daemon.json(["history", "--limit", "10000"], as: [EnforcementRecord].self)
        checkRecords(history)
        var complete = 0
        for forker in forkers {
            let steps = history.filter { $0.agent == forker && $0.resource == .processes && $0.succeeded }.map(\.action)
            if steps == [.warn, .throttle, .suspend, .terminate] { complete += 1 }
            let all = history.filter { $0.agent == forker }.map {
                "\($0.action.rawValue) \($0.succeeded ? "ok" : "failed: \($0.error ?? "")")"
            }
            guard steps != [.warn, .throttle, .suspend, .terminate] else { continue }
            // What the daemon knew of it, and said: enough to tell a lost record from a stalled ladder.
            let status = (try? daemon.cli(["agents", "show", forker, "--json"]))?.stdout ?? "?"
            let log = daemon.logLines(mentioning: forker).joined(separator: "\n")
            Issue.record(
                Comment(rawValue: "\(forker): each step once, in order: \(steps); all its records: \(all)\nstatus: \(status)\nlog:\n\(log)")
            )
        }
        let listed = try daemon.json(["agents", "list", "--all"], as: [AgentRecord].self)
        #expect(Set(shared.started.withLock { $0 }.map(Self.name)).isSubset(of: listed.map(\.id)), "every agent started is known")
        let actions = Dictionary(grouping: history.filter(\.succeeded), by: \.action).mapValues(\.count)
        E2E.report(
            "soak: \(agents) agents, \(counts.kills) kills (\(counts.killsDuringStart) during an agent start, \(counts.startsRetried) starts retried), "
                + "\(counts.reattached) re-attachments, \(counts.frozenAtKill) frozen and \(counts.throttledAtKill) throttled cgroups at the kills, "
                + "restart to API p50 \(Self.percentile(counts.restartSeconds, 0.5)) s max \(counts.restartSeconds.max() ?? 0) s; "
                + "\(history.count) records: "
                + actions.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")
                + "; \(complete)/\(forkers.count) fork storms walked their ladder exactly once")
    }

    static func startArguments(_ index: Int, stress: String) -> [String] {
        let name = ["--name", Self.name(index)]
        switch Kind.of(index) {
        case .forker:
            return name + [
                "--group", "heavy_computation_agent", "--pids-max", "8", "--memory-max", "64M", "--", stress, "forkloop", "32", "900",
            ]
        case .spinner:
            return name + ["--group", "heavy_computation_agent", "--cpu", "5", "--memory-max", "64M", "--", stress, "spin", "900"]
        case .soft:
            return name + [
                "--group", "standard_agent", "--memory-high", "8M", "--memory-max", "64M", "--", stress, "mem", "12", "900", "1",
            ]
        }
    }

    /// Agent cgroups under the root, as "group/agent".
    static func leaves(_ root: String) -> [String] {
        var leaves: [String] = []
        for group in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where group != "supervisor" {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: "\(root)/\(group)", isDirectory: &isDirectory), isDirectory.boolValue else {
                continue
            }
            for agent in (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(group)")) ?? [] {
                if FileManager.default.fileExists(atPath: "\(root)/\(group)/\(agent)/cgroup.procs") { leaves.append("\(group)/\(agent)") }
            }
        }
        return leaves.sorted()
    }

    /// The kernel's side, read while the daemon is down (nothing of Corral changes it then).
    static func kernelState(_ root: String) -> KernelState {
        var state = KernelState(at: Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
        for leaf in leaves(root) {
            let agent = String(leaf.split(separator: "/").last ?? "")
            let path = "\(root)/\(leaf)"
            state.leaves.insert(agent)
            if E2E.read(path + "/cgroup.freeze")?.hasPrefix("1") == true { state.frozen.insert(agent) }
            if let pids = Int(E2E.read(path + "/pids.max")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""), pids < 8 {
                state.pidsLowered.insert(agent)
            }
            let quota = E2E.read(path + "/cpu.max")?.split(separator: " ").first.flatMap { Int($0) }
            if let quota, quota < 5000 { state.cpuLowered.insert(agent) }
        }
        return state
    }

    /// The invariants after a restart; returns how many agents were re-attached.
    func checkAfterRestart(_ daemon: Daemon, kernel: KernelState, kill: Int) throws -> Int {
        let listed = try daemon.json(["agents", "list"], as: [AgentRecord].self)
        let live = Set(listed.filter(\.state.isLive).map(\.id))
        // Every cgroup with processes at the kill is a live agent again (one whose processes
        // all ended meanwhile may have been closed instead).
        let populated = kernel.leaves.filter { agent in
            Self.leaves(daemon.root).contains { $0.hasSuffix("/" + agent) }
        }
        let missing = populated.subtracting(live).filter { agent in
            !(listed.first { $0.id == agent }.map { !$0.state.isLive } ?? false)
        }
        #expect(missing.isEmpty, "kill \(kill): populated cgroups not re-attached: \(missing.sorted())")

        // Watched: the watcher samples every live agent.
        let watched = E2E.eventually(timeout: 15) {
            guard let health = try? daemon.health(), let sampling = health.sampling else { return false }
            return sampling.active + sampling.idle >= health.agents
        }
        #expect(watched, "kill \(kill): every live agent watched again (\((try? daemon.health()).map { "\($0)" } ?? "?"))")

        // No orphan: every leaf is a live agent, once the restore has removed empty ones.
        let noOrphan = E2E.eventually(timeout: 15) {
            let agents = Set(((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? []).filter(\.state.isLive).map(\.id))
            return Set(Self.leaves(daemon.root).map { String($0.split(separator: "/").last ?? "") }).isSubset(of: agents)
        }
        #expect(noOrphan, "kill \(kill): leaves without a live agent: \(Self.leaves(daemon.root))")

        // Every effect in the kernel at the kill has its record from before the kill.
        let history = try daemon.json(["history", "--limit", "10000"], as: [EnforcementRecord].self)
        let before = history.filter { $0.at <= kernel.at && $0.succeeded }
        func recorded(_ agent: String, _ resource: Resource, _ actions: Set<EnforcementAction>) -> Bool {
            before.contains { $0.agent == agent && $0.resource == resource && actions.contains($0.action) }
        }
        // A frozen cgroup has its suspend record from before the kill, unless the kill came
        // while the freeze waited for the kernel's confirmation: then the restart rolled it
        // back (cgroup.freeze 0 again), or a suspend after the restart froze it (recorded).
        for agent in kernel.frozen
        where !(recorded(agent, .processes, [.suspend]) || recorded(agent, .cpu, [.suspend]) || recorded(agent, .memory, [.suspend])) {
            let leaf = Self.leaves(daemon.root).first { $0.hasSuffix("/" + agent) }
            let settled = E2E.eventually(timeout: 10) {
                guard let leaf, E2E.read("\(daemon.root)/\(leaf)/cgroup.freeze")?.hasPrefix("1") == true else { return true }
                let after = (try? daemon.history(agent)) ?? []
                return after.contains { $0.at > kernel.at && $0.action == .suspend }
            }
            #expect(settled, "kill \(kill): \(agent) was frozen with no suspend recorded before the kill, and stays frozen with none after")
        }
        for agent in kernel.pidsLowered {
            #expect(recorded(agent, .processes, [.throttle]), "kill \(kill): \(agent)'s pids.max was lowered with no throttle recorded")
        }
        for agent in kernel.cpuLowered {
            #expect(
                recorded(agent, .cpu, [.throttle, .scaleDown]), "kill \(kill): \(agent)'s cpu.max was lowered with no record of it")
        }
        // No agent left frozen by a lost thaw: a frozen cgroup's agent is suspended. A freeze
        // the restarted daemon has just written is confirmed (or rolled back) within 2 s.
        var unexplained: [String] = []
        let consistent = E2E.eventually(timeout: 10) {
            let states = Dictionary(
                ((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? []).map { ($0.id, $0.state) },
                uniquingKeysWith: { _, last in last })
            unexplained = Self.leaves(daemon.root).filter { leaf in
                guard E2E.read("\(daemon.root)/\(leaf)/cgroup.freeze")?.hasPrefix("1") == true else { return false }
                let state = states[String(leaf.split(separator: "/").last ?? "")]
                return !(state == .suspended || state == nil || state?.isLive == false)
            }
            return unexplained.isEmpty
        }
        #expect(consistent, "kill \(kill): frozen while not suspended: \(unexplained)")
        checkRecords(history)
        return live.count
    }

    /// Ids contiguous from 1 and no record stored twice (a replayed commit would repeat one).
    func checkRecords(_ history: [EnforcementRecord]) {
        let ids = history.compactMap(\.id).sorted()
        #expect(ids.count == history.count, "every record has an id")
        if let last = ids.last {
            #expect(ids == Array(1...last), "record ids contiguous: \(ids.count) records, last id \(last)")
        }
        var seen = Set<String>()
        for record in history {
            let key =
                "\(record.agent) \(record.resource.rawValue) \(record.kind.rawValue) \(record.action.rawValue) \(record.at.milliseconds)"
            #expect(seen.insert(key).inserted, "record stored twice: \(key)")
        }
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> String {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return "-" }
        return String(format: "%.1f", sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))])
    }
}
