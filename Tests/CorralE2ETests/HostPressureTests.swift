import CorralCore
import CorralTestSupport
import Foundation
import Synchronization
import Testing

/// Host pressure on the real kernel (the VM: ≈ 2 GiB, no swap): eight agents,
/// each inside its own limits (220 MB of a 300 MB hard limit), together beyond
/// the allocatable (75% of the VM's memory, the root's memory.max), priorities
/// 1–8. With the host ladder: nothing is OOM-killed, the lowest priorities are
/// throttled and frozen first, the protected one runs through, and after it
/// ends the others are thawed in turn and every agent finishes. The same
/// scenario with the ladder off (the kernel's OOM killer alone) is the baseline;
/// both are printed side by side.
@Suite("e2e: host pressure", .serialized, .enabled(if: E2E.enabled))
struct HostPressureE2ETests {
    /// What one run of the scenario came to.
    struct Outcome: CustomStringConvertible {
        var killed = 0
        var completed = 0
        var agents = 0
        /// Seconds the root spent with every task stalled on memory (PSI full total).
        var fullStall = 0.0
        /// The bystander's iterations per second during the run, against solo.
        var bystanderMean = 0.0
        var bystanderMin = 0.0
        var oomKills: Int64 = 0
        /// Lines of the kernel log about OOM kills in this run's cgroup root.
        var kernelLogLines = 0
        var seconds = 0.0

        var description: String {
            "killed \(killed), completed \(completed)/\(agents), OOM kills \(oomKills) (kernel log: \(kernelLogLines) lines), full memory stall \(String(format: "%.2f", fullStall)) s, bystander mean \(Int((bystanderMean * 100).rounded()))% / worst \(Int((bystanderMin * 100).rounded()))% of solo, \(Int(seconds)) s"
        }
    }

    /// A process-local loop outside Corral: allocates and touches 8 MB per iteration;
    /// its iterations per half second, while it runs.
    final class Bystander: @unchecked Sendable {
        private let counts = Mutex<[Int]>([])
        private let running = Atomic<Bool>(true)
        private var thread: Thread?

        func start() {
            let thread = Thread { [self] in
                var iterations = 0
                var windowStart = Date()
                while running.load(ordering: .relaxed) {
                    var buffer = [UInt8](repeating: 1, count: 8 << 20)
                    buffer[Int.random(in: 0..<buffer.count)] = 2
                    iterations += buffer[0] == 1 ? 1 : 0
                    if Date().timeIntervalSince(windowStart) >= 0.5 {
                        let done = iterations
                        counts.withLock { $0.append(done) }
                        iterations = 0
                        windowStart = Date()
                    }
                }
            }
            self.thread = thread
            thread.start()
        }

        /// Windows recorded so far (and clears them).
        func take() -> [Int] {
            counts.withLock { counts in
                defer { counts = [] }
                return counts
            }
        }

        func stop() { running.store(false, ordering: .relaxed) }
    }

    static func psiFullTotal(_ root: String) -> Int64 {
        guard let text = E2E.read(root + "/memory.pressure"), let pressure = Pressure(parsing: text) else { return 0 }
        return pressure.full?.total ?? 0
    }

    /// OOM kills in Corral's root and below (`memory.events` is hierarchical). Not
    /// /proc/vmstat: the other e2e suites run beside this one and OOM-kill on purpose.
    static func oomKills(_ root: String) -> Int64 {
        for line in (E2E.read(root + "/memory.events") ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == "oom_kill" { return Int64(parts[1]) ?? 0 }
        }
        return 0
    }

    /// Kernel log lines that name an OOM kill in `root` (the memcg path is in them): the other
    /// suites' OOM kills happen in their own roots and are not counted.
    static func kernelOOMLines(naming root: String) throws -> Int {
        let log = try Subprocess.run("/bin/busybox", ["dmesg"], timeout: 30)
        let name = String(root.split(separator: "/").last ?? "")
        return log.stdout.split(separator: "\n").filter { $0.contains(name) && ($0.contains("oom") || $0.contains("Killed process")) }.count
    }

    /// Runs the scenario with the host ladder on or off; returns its outcome, the
    /// host_pressure records in order and the agents thawed, in order.
    static func scenario(ladder: Bool, solo: Double) throws -> (Outcome, [EnforcementRecord], [String], [AgentRecord]) {
        let (_, stress) = try E2E.binaries()
        let daemon = try DaemonTests.Daemon(
            name: ladder ? "pressure-on" : "pressure-off",
            extraConfig: """

                groups:
                  hog:
                    description: grows to 220 MB over 55 s
                    limits:
                      memory: {soft: 290MB, hard: 300MB, action: warn}
                      cpu: {soft: 100%, hard: 200%, action: warn}
                      processes: {soft: 10, hard: 20, action: warn}
                    totals: {memory: 4G, cpu: 800%, processes: 200}
                host_pressure:
                  enabled: \(ladder)
                  memory_high: 75%
                  memory_critical: 90%
                  step_interval: 500ms
                  quiet_period: 3s
                  recovery_interval: 1s
                """)
        try daemon.start()
        defer {
            for index in 1...8 { _ = try? daemon.cli(["agents", "kill", "hog\(index)"]) }
            _ = daemon.stop()
            E2E.removeEmptyTree(daemon.root)
        }
        let bystander = Bystander()
        bystander.start()
        defer { bystander.stop() }
        let oomBefore = oomKills(daemon.root)
        let stallBefore = psiFullTotal(daemon.root)
        let started = Date()
        for index in 1...8 {
            try daemon.startAgent([
                "--name", "hog\(index)", "--group", "hog", "--priority", String(index), "--", stress, "memramp", "220", "55", "2",
            ])
        }
        _ = bystander.take()
        var windows: [Int] = []
        let finished = E2E.eventually(timeout: 400) {
            windows += bystander.take()
            let live =
                (try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? [
                    AgentRecord(
                        id: "?", group: "", state: .running, origin: .launched, pid: nil, command: [], limits: LimitSet(), cgroup: "",
                        createdAt: Timestamp(milliseconds: 0))
                ]
            return live.isEmpty
        }
        windows += bystander.take()
        #expect(finished, "the agents did not all end within 400 s")
        var outcome = Outcome()
        outcome.seconds = Date().timeIntervalSince(started)
        outcome.oomKills = oomKills(daemon.root) - oomBefore
        outcome.kernelLogLines = try kernelOOMLines(naming: daemon.root)
        outcome.fullStall = Double(psiFullTotal(daemon.root) - stallBefore) / 1_000_000
        let rates = windows.map { Double($0) * 2 / solo }
        outcome.bystanderMean = rates.isEmpty ? 0 : rates.reduce(0, +) / Double(rates.count)
        outcome.bystanderMin = rates.min() ?? 0
        let agents = try daemon.json(["agents", "list", "--all"], as: [AgentRecord].self).filter { $0.group == "hog" }
        outcome.agents = agents.count
        outcome.completed = agents.filter { $0.state == .exited && $0.exitStatus == 0 }.count
        outcome.killed = agents.filter { $0.exitStatus != 0 || $0.state == .terminated }.count
        let records = try daemon.json(["history"], as: [EnforcementRecord].self).filter { $0.kind == .hostPressure }.sorted {
            $0.at < $1.at
        }
        let events = try daemon.cli(["events", "--json"]).stdout.split(separator: "\n").compactMap {
            try? CorralJSON.decode(CorralEventShape.self, from: String($0))
        }
        let thawed = events.filter { $0.kind == "thawed" }.compactMap(\.agent)
        return (outcome, records, thawed, agents)
    }

    struct CorralEventShape: Decodable {
        var kind: String
        var agent: String?
        var message: String
    }

    @Test func lowestPriorityFirstNothingKilledEveryAgentFinishes() throws {
        // The bystander alone first: its iterations per second.
        let solo = Bystander()
        solo.start()
        Thread.sleep(forTimeInterval: 3)
        let soloWindows = solo.take()
        solo.stop()
        let soloRate = Double(soloWindows.dropFirst().reduce(0, +)) * 2 / Double(max(1, soloWindows.count - 1))
        E2E.report("host pressure: bystander solo \(Int(soloRate)) iterations/s")

        let (corral, records, thawed, agents) = try Self.scenario(ladder: true, solo: soloRate)
        E2E.report("host pressure, Corral's host ladder: \(corral)")
        E2E.report(
            "host pressure steps: "
                + records.map { "\($0.agent) \($0.action.rawValue)\($0.succeeded ? "" : " (failed)")" }.joined(separator: ", "))
        E2E.report("host pressure thaws: \(thawed.joined(separator: ", "))")
        let (kernel, _, _, _) = try Self.scenario(ladder: false, solo: soloRate)
        E2E.report("host pressure, kernel OOM killer alone: \(kernel)")

        // With the ladder: nothing killed, by the kernel or anyone; every agent did its work.
        #expect(corral.oomKills == 0 && corral.killed == 0 && corral.kernelLogLines == 0, "\(corral)")
        #expect(corral.completed == 8, "\(agents.map { "\($0.id) \($0.state.rawValue) \($0.exitStatus.map(String.init) ?? "-")" })")
        // Lowest priority first: the first step on each agent comes in priority order; the protected one is never touched.
        var firstTouched: [String] = []
        for record in records where !firstTouched.contains(record.agent) { firstTouched.append(record.agent) }
        let priorities = firstTouched.compactMap { Int($0.dropFirst(3)) }
        #expect(!priorities.isEmpty && priorities == priorities.sorted(), "\(firstTouched)")
        #expect(priorities.first == 1 && !firstTouched.contains("hog8"))
        #expect(records.contains { $0.action == .suspend && $0.succeeded }, "something was frozen")
        // Thawed one by one, the latest touched first.
        #expect(!thawed.isEmpty && thawed.first.flatMap { Int($0.dropFirst(3)) } == priorities.last, "\(thawed)")
        // The protected agent ended before any thawed agent did.
        let top = agents.first { $0.id == "hog8" }
        #expect(
            agents.filter { $0.id != "hog8" }.allSatisfy {
                ($0.endedAt ?? .init(milliseconds: 0)) >= (top?.endedAt ?? .init(milliseconds: .max))
            })
        // The bystander outside Corral kept going.
        #expect(corral.bystanderMean >= 0.25, "\(corral)")
        // The baseline really overloads: the kernel killed agents there.
        // (and the kernel log check sees them: it would see the ladder's too).
        #expect(kernel.oomKills > 0 && kernel.completed < 8 && kernel.kernelLogLines > 0, "\(kernel)")
    }
}
