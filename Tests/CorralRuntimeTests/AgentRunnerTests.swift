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
}
