import CorralCgroup
import CorralCore
import Foundation
import Testing

@testable import CorralRuntime

/// `supervise` on this host, up to the point where it would spawn.
@Suite("AgentRunner")
struct AgentRunnerTests {
    /// corral run blocks the forwarded signals from its first moment, so a ^C
    /// while it gets ready waits in the signalfd; it must stop the run before
    /// the command starts (status 128+N), not be dropped as "the terminal's
    /// ^C already reached the agent" (there is no agent yet).
    @Test func aSignalThatCameBeforeTheSpawnStopsTheRun() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("corral-runner-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/standard_agent/a1", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tree = CgroupTree(fs: try DirectoryCgroupFilesystem(anchorPath: directory), root: CgroupPath([]))
        let request = RunRequest(
            agent: "a1", group: QuotaGroup.standard, limits: QuotaGroup.standard.limits, command: ["true"],
            executable: "/bin/true", environment: [], reservation: nil)

        // Blocked, then raised on this thread only: pending, as a ^C during setup would be.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGUSR2)
        #expect(pthread_sigmask(SIG_BLOCK, &set, nil) == 0)
        defer { pthread_sigmask(SIG_UNBLOCK, &set, nil) }
        #expect(pthread_kill(pthread_self(), SIGUSR2) == 0)

        var started = false
        do {
            _ = try AgentRunner(tree: tree).supervise(request, in: tree, leaf: CgroupPath(["standard_agent", "a1"])) { _ in
                started = true
            }
            Issue.record("the run went on after a signal")
        } catch {
            guard case .interrupted(let signal) = error else {
                Issue.record("unexpected error: \(error)")
                return
            }
            #expect(signal == SIGUSR2)
            #expect(error.exitStatus == 128 + SIGUSR2)
            #expect(error.description.contains("before the command started"))
        }
        #expect(!started, "nothing may be spawned")
        // The signal was taken by the run, and the caller's block stays.
        var pending = sigset_t()
        sigpending(&pending)
        #expect(sigismember(&pending, SIGUSR2) == 0)
        var current = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &current)
        #expect(sigismember(&current, SIGUSR2) == 1)
    }

    /// A directory dressed as the agent's cgroup (the files `supervise` reads; the spawn falls
    /// back to writing cgroup.procs, a plain file here), with `supervise` run in it.
    func superviseInAFakeCgroup(_ command: [String], milestones: [AgentRunner.Milestone]) throws -> RunSummary {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("corral-runner-\(UUID().uuidString)").path
        let leaf = directory + "/standard_agent/a1"
        try FileManager.default.createDirectory(atPath: leaf, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (file, content) in [
            "cgroup.procs": "", "cgroup.events": "populated 0\nfrozen 0\n", "memory.peak": "4096\n", "pids.peak": "1\n",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", "pids.events": "max 0\n", "cpu.stat": "usage_usec 1\n",
        ] {
            try content.write(toFile: leaf + "/" + file, atomically: false, encoding: .utf8)
        }
        let tree = CgroupTree(fs: try DirectoryCgroupFilesystem(anchorPath: directory), root: CgroupPath([]))
        let request = RunRequest(
            agent: "a1", group: QuotaGroup.standard, limits: QuotaGroup.standard.limits, command: command,
            executable: command[0], environment: [], reservation: nil)
        return try AgentRunner(tree: tree).supervise(request, in: tree, leaf: CgroupPath(["standard_agent", "a1"]), milestones: milestones)
    }

    /// Milestones come in order while the command runs, and not at all after it ended.
    @Test func milestonesComeWhileTheCommandRunsAndNotAfter() throws {
        var reached: [String] = []
        let start = ContinuousClock.now
        var at: [String: Duration] = [:]
        let summary = try superviseInAFakeCgroup(
            ["/bin/sleep", "0.6"],
            milestones: [
                AgentRunner.Milestone(after: .milliseconds(300)) {
                    reached.append("300 ms")
                    at["300 ms"] = ContinuousClock.now - start
                },
                AgentRunner.Milestone(after: .milliseconds(100)) {
                    reached.append("100 ms")
                    at["100 ms"] = ContinuousClock.now - start
                },
                AgentRunner.Milestone(after: .seconds(30)) { reached.append("30 s") },
            ])
        #expect(summary.termination == .exited(code: 0))
        #expect(reached == ["100 ms", "300 ms"])
        #expect(at["100 ms"].map { $0 >= .milliseconds(100) } == true)
        #expect(at["300 ms"].map { $0 >= .milliseconds(300) && $0 < .milliseconds(600) } == true)
    }

    @Test func aCommandThatEndsFirstReachesNoMilestone() throws {
        var reached = false
        let summary = try superviseInAFakeCgroup(
            ["/bin/true"], milestones: [AgentRunner.Milestone(after: .seconds(2)) { reached = true }])
        #expect(summary.termination == .exited(code: 0))
        #expect(!reached)
    }
}
