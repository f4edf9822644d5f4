import CorralCgroup
import CorralCore
import Foundation
import Synchronization
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
    /// back to writing cgroup.procs, a plain file here), with `supervise` run in it on a thread
    /// of its own: the wait would otherwise hold a thread of the cooperative pool, which the
    /// suite's live servers need. `milestones` are made on that thread.
    func superviseInAFakeCgroup(
        _ command: [String], milestones: @escaping @Sendable () -> [AgentRunner.Milestone]
    ) async throws -> RunSummary {
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
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        try AgentRunner(tree: tree).supervise(
                            request, in: tree, leaf: CgroupPath(["standard_agent", "a1"]), milestones: milestones())
                    })
            }.start()
        }
    }

    /// Milestones come in order while the command runs, and not at all after it ended.
    @Test func milestonesComeWhileTheCommandRunsAndNotAfter() async throws {
        let reached = Mutex<[(String, Duration)]>([])
        let start = ContinuousClock.now
        let summary = try await superviseInAFakeCgroup(["/bin/sleep", "0.6"]) {
            [
                AgentRunner.Milestone(after: .milliseconds(300)) {
                    reached.withLock { $0.append(("300 ms", ContinuousClock.now - start)) }
                },
                AgentRunner.Milestone(after: .milliseconds(100)) {
                    reached.withLock { $0.append(("100 ms", ContinuousClock.now - start)) }
                },
                AgentRunner.Milestone(after: .seconds(30)) { reached.withLock { $0.append(("30 s", ContinuousClock.now - start)) } },
            ]
        }
        #expect(summary.termination == .exited(code: 0))
        let seen = reached.withLock { $0 }
        #expect(seen.map(\.0) == ["100 ms", "300 ms"])
        #expect(seen.first.map { $0.1 >= .milliseconds(100) } == true)
        #expect(seen.last.map { $0.1 >= .milliseconds(300) && $0.1 < .milliseconds(600) } == true)
    }

    @Test func aCommandThatEndsFirstReachesNoMilestone() async throws {
        let reached = Mutex(false)
        let summary = try await superviseInAFakeCgroup(["/bin/true"]) {
            [AgentRunner.Milestone(after: .seconds(2)) { reached.withLock { $0 = true } }]
        }
        #expect(summary.termination == .exited(code: 0))
        #expect(!reached.withLock { $0 })
    }
}
