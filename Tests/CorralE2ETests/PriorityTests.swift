import CorralCore
import CorralTestSupport
import Foundation
import Testing

/// Priorities on the real kernel: cpu.weight, io.weight and memory.low of
/// agents and groups as configured, set by flags, changed live, read back
/// from the kernel's files; `corral run --priority` with and without a daemon.
@Suite("e2e: priorities", .serialized, .enabled(if: E2E.enabled))
struct PriorityE2ETests {
    static func value(_ path: String) -> String? { E2E.read(path)?.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// memory.low as the kernel keeps it: rounded down to whole pages.
    static func pages(_ bytes: Int64) -> String { String(bytes / 4096 * 4096) }

    @Test func prioritiesLandInTheKernelsFilesAndChangeLive() throws {
        let (_, stress) = try E2E.binaries()
        let daemon = try DaemonTests.Daemon(name: "priority", extraConfig: "\ngroups:\n  lightweight_agent:\n    priority: 2\n")
        try daemon.start()
        defer {
            for agent in ["hi", "lo"] { _ = try? daemon.cli(["agents", "kill", agent]) }
            _ = E2E.eventually(timeout: 30) { ((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? [AgentRecord]()).isEmpty }
            _ = daemon.stop()
            E2E.removeEmptyTree(daemon.root)
        }
        try daemon.startAgent(["--name", "hi", "--priority", "9", "--", stress, "mem", "1", "600"])
        try daemon.startAgent(["--name", "lo", "--group", "lightweight_agent", "--", stress, "mem", "1", "600"])
        let hi = daemon.cgroup("standard_agent", "hi")
        let lo = daemon.cgroup("lightweight_agent", "lo")
        let standard = daemon.root + "/standard_agent"
        let light = daemon.root + "/lightweight_agent"
        func files() -> String {
            [hi, lo, standard, light].map { path in
                "\(path.split(separator: "/").last!): cpu.weight \(Self.value(path + "/cpu.weight") ?? "?"), memory.low \(Self.value(path + "/memory.low") ?? "?"), io.weight \(Self.value(path + "/io.weight") ?? "-")"
            }.joined(separator: "; ")
        }
        E2E.report("priorities as started: \(files())")
        // 9: 100 × 2^4; 4/5 of the 200 MB soft limit protected, claimed by the group.
        #expect(Self.value(hi + "/cpu.weight") == "1600")
        #expect(Self.value(hi + "/memory.low") == Self.pages(160_000_000))
        #expect(Self.value(standard + "/memory.low") == Self.pages(160_000_000))
        // The lightweight group's priority 2: its own weight and its agent's.
        #expect(Self.value(light + "/cpu.weight") == "13" && Self.value(lo + "/cpu.weight") == "13")
        #expect(Self.value(lo + "/memory.low") == "0")
        // io.weight where the io controller is enabled (this kernel's root offers it).
        if let io = Self.value(hi + "/io.weight") { #expect(io == "default 1600") }

        let lowered = try daemon.cli(["agents", "priority", "hi", "3"])
        #expect(lowered.status == 0, "\(lowered)")
        #expect(Self.value(hi + "/cpu.weight") == "25" && Self.value(hi + "/memory.low") == "0")
        #expect(Self.value(standard + "/memory.low") == "0")
        let raised = try daemon.cli(["groups", "set", "lightweight_agent", "--priority", "6"])
        #expect(raised.status == 0, "\(raised)")
        // lo follows its group: 200, and 1/5 of its 50 MB soft limit.
        #expect(Self.value(light + "/cpu.weight") == "200" && Self.value(lo + "/cpu.weight") == "200")
        #expect(Self.value(lo + "/memory.low") == Self.pages(10_000_000))
        E2E.report("priorities after the changes: \(files())")
        let agents = try daemon.json(["agents", "list"], as: [AgentRecord].self)
        #expect(agents.first { $0.id == "hi" }.map { ($0.priority.rawValue, $0.priorityIsOwn) } ?? (0, false) == (3, true))
        #expect(agents.first { $0.id == "lo" }.map { ($0.priority.rawValue, $0.priorityIsOwn) } ?? (0, true) == (6, false))
        let refused = try daemon.cli(["agents", "priority", "hi", "12"])
        #expect(refused.status != 0 && refused.stderr.contains("0 (least) to 10 (most)"), "\(refused)")

        // Capacity: the root's memory.max is the allocatable; hi (500 MB) and lo (100 MB) are committed.
        let capacity = try daemon.json(["capacity"], as: CapacityReport.self)
        let memory = try #require(capacity[.memory])
        E2E.report(
            "capacity: memory host \(Int64(memory.host)), allocatable \(Int64(memory.allocatable)), committed \(Int64(memory.committedHard)), used \(Int64(memory.used))"
        )
        #expect(Self.value(daemon.root + "/memory.max") == String(Int64(memory.allocatable)))
        #expect(memory.committedHard == 600_000_000 && memory.used > 0 && memory.reserved > 0)
        let table = try daemon.cli(["capacity"])
        #expect(table.status == 0 && table.stdout.contains("ALLOCATABLE") && table.stdout.contains("admission: allow"), "\(table)")

        // corral run through this daemon: the agent reads its own cgroup (its namespace's root).
        let run = try daemon.cli(["run", "--priority", "8", "--", "cat", "/sys/fs/cgroup/cpu.weight"])
        #expect(run.status == 0 && run.stdout.hasPrefix("800"), "\(run)")
    }

    @Test func runWithoutADaemonWritesThePriority() throws {
        let root = E2E.root("priority-run")
        let (result, summary) = try E2E.run([
            "--json", "--no-daemon", "--priority", "0", "--cgroup-root", root, "--", "cat", "/sys/fs/cgroup/cpu.weight",
            "/sys/fs/cgroup/memory.low",
        ])
        #expect(summary?.exitStatus == 0, "\(result)")
        #expect(result.stdout.hasPrefix("3\n0\n"), "\(result)")
        let refused = try E2E.run(["--priority", "high", "--", "true"]).0
        #expect(refused.exitStatus != 0 && refused.stderr.contains("--priority 'high'"), "\(refused)")
    }

    @Test func aQueuedStartWaitsForCapacityThenRuns() throws {
        let (_, stress) = try E2E.binaries()
        let daemon = try DaemonTests.Daemon(
            name: "queue", extraConfig: "\nadmission: queue\ngroups:\n  lightweight_agent:\n    totals: {memory: 150MB}\n")
        try daemon.start()
        defer {
            for agent in ["first", "second"] { _ = try? daemon.cli(["agents", "kill", agent]) }
            _ = E2E.eventually(timeout: 30) { ((try? daemon.json(["agents", "list"], as: [AgentRecord].self)) ?? [AgentRecord]()).isEmpty }
            _ = daemon.stop()
            E2E.removeEmptyTree(daemon.root)
        }
        // 100 MB hard each against a group total of 150 MB: one at a time.
        try daemon.startAgent(["--name", "first", "--group", "lightweight_agent", "--", stress, "mem", "1", "6"])
        let queued = try daemon.cli(["agents", "start", "--name", "second", "--group", "lightweight_agent", "--", stress, "mem", "1", "1"])
        #expect(queued.status == 0 && queued.stdout.contains("queued second in lightweight_agent at position 1"), "\(queued)")
        let listed = try daemon.cli(["agents", "list"])
        #expect(listed.stdout.contains("queued #1"), "\(listed)")
        #expect(!E2E.exists(daemon.cgroup("lightweight_agent", "second")))
        // corral run into the same group waits behind it, then runs.
        let started = Date()
        let run = try daemon.cli(["run", "--group", "lightweight_agent", "--", "true"])
        let waited = Date().timeIntervalSince(started)
        E2E.report(
            "queued corral run waited \(String(format: "%.1f", waited)) s: \(run.stderr.split(separator: "\n").prefix(3).joined(separator: " | "))"
        )
        #expect(run.status == 0 && run.stderr.contains("queued at position 2") && run.stderr.contains("admitted after"), "\(run)")
        #expect(waited >= 4, "it waited for first (6 s) and second (1 s)")
        let agents = try daemon.json(["agents", "list", "--all"], as: [AgentRecord].self)
        let first = agents.first { $0.id == "first" }
        let second = agents.first { $0.id == "second" }
        #expect(second.map { ($0.state, $0.exitStatus) } ?? (.lost, nil) == (.exited, 0))
        #expect(
            (second?.createdAt ?? Timestamp(milliseconds: 0)) >= (first?.endedAt ?? Timestamp(milliseconds: .max)),
            "second started once first had ended")
    }
}
