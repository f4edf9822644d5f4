import CorralCore
import CorralTestSupport
import Foundation
import Testing

/// `corral run` on a real cgroup v2 kernel: every number asserted here was
/// read back from the kernel (the summary is read from the agent's cgroup files).
@Suite("e2e: corral run on a real kernel", .serialized, .enabled(if: E2E.enabled))
struct RunTests {
    @Test func memoryHogPastTheLightweightHardLimitIsOOMKilledAlone() throws {
        let (_, stress) = try E2E.binaries()
        let root = E2E.root("oom")
        // A bystander outside Corral's tree, holding memory of its own.
        let bystander = try Subprocess.start(stress, ["mem", "32", "600"])
        defer {
            bystander.signal(SIGKILL)
            _ = bystander.wait(timeout: 10)
        }
        #expect(E2E.eventually { bystander.stdoutSoFar.contains("allocated 32 MB") })

        // memory.high is raised to the hard limit: at the group's soft 50 MB the kernel
        // would throttle the hog for minutes (under emulation) before memory.max.
        let summaryFile = "/tmp/corral-e2e-oom-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: summaryFile) }
        let (result, _) = try E2E.run([
            "--group", "lightweight_agent", "--memory-high", "100MB", "--summary-file", summaryFile,
            "--cgroup-root", root, "--", stress, "mem", "300",
        ])
        E2E.report("oom: \(result.stderr)")
        #expect(result.exitStatus == 137, "\(result)")
        #expect(result.stderr.contains("OOM-killed at its memory limit"), "\(result)")
        #expect(result.stderr.contains("max 100 MB"), "\(result)")
        let run = try CorralJSON.decode(RunSummary.self, from: try String(contentsOfFile: summaryFile, encoding: .utf8))
        #expect(run.oomKilled)
        #expect(run.termination == .signaled(signal: SIGKILL))
        #expect(run.memoryEvents.oomKill >= 1, "memory.events oom_kill")
        #expect(run.memoryEvents.max >= 1, "memory.events max")
        #expect(run.memoryEvents.oomGroupKill >= 1, "memory.oom.group=1 kills the agent's cgroup together")
        let peak = run.memoryPeakBytes ?? 0
        #expect(run.memoryPeakExact)
        #expect(peak > 80_000_000 && peak <= 100_000_000, "memory.peak \(peak) must approach but not pass memory.max")
        #expect(E2E.alive(bystander.pid), "the bystander outside the agent's cgroup must survive")
        #expect(!E2E.exists(root), "\(root) must be removed")
    }

    @Test func memoryHighThrottlesWithoutKilling() throws {
        let (_, stress) = try E2E.binaries()
        let root = E2E.root("high")
        let (result, summary) = try E2E.run([
            "--json", "--memory-high", "16M", "--memory-max", "200M", "--cgroup-root", root, "--", stress, "mem", "19", "0", "1",
        ])
        let run = try #require(summary, "\(result)")
        E2E.report("memory.high: events.high \(run.memoryEvents.high), peak \(run.memoryPeakBytes ?? 0) B, wall \(run.wallSeconds) s")
        #expect(result.exitStatus == 0, "\(result)")
        #expect(run.memoryEvents.high >= 1, "memory.events high must grow over memory.high")
        #expect(run.memoryEvents.oomKill == 0)
        #expect(!run.oomKilled)
        #expect(try #require(run.limits[.memory]).soft == 16_777_216.0)
        #expect(!E2E.exists(root))
    }

    @Test func cpuSpinnerIsHeldAtItsCPULimit() throws {
        let (_, stress) = try E2E.binaries()
        let root = E2E.root("cpu")
        let (result, summary) = try E2E.run(["--json", "--cpu", "10", "--cgroup-root", root, "--", stress, "spin", "5"])
        let run = try #require(summary, "\(result)")
        let percent = Double(run.cpu.usageUsec) / 1e6 / run.wallSeconds * 100
        E2E.report(
            "cpu: \(run.cpu.usageUsec) us in \(run.wallSeconds) s = \(percent)% of one CPU, throttled \(run.cpu.nrThrottled ?? -1) times")
        #expect(result.exitStatus == 0, "\(result)")
        #expect(run.wallSeconds >= 5)
        #expect(percent <= 12, "a spinner at --cpu 10 must use at most 12% of one CPU (cpu.stat usage_usec / wall time)")
        #expect(percent >= 5, "it must still run (cpu.max is a ceiling, not a stop)")
        #expect((run.cpu.nrThrottled ?? 0) > 0, "cpu.stat nr_throttled must count the throttled periods")
        #expect(!E2E.exists(root))
    }

    @Test func forkStormStopsAtPidsMax() throws {
        let (_, stress) = try E2E.binaries()
        let root = E2E.root("pids")
        let (result, summary) = try E2E.run(["--json", "--pids-max", "16", "--cgroup-root", root, "--", stress, "fork", "200", "2"])
        let run = try #require(summary, "\(result)")
        E2E.report(
            "pids: peak \(run.pidsPeak ?? -1) (exact: \(run.pidsPeakExact)), pids.events max \(run.pidsEvents.max); \(result.stdout.split(separator: "\n").first ?? "")"
        )
        #expect(result.exitStatus == 0, "\(result)")
        #expect(run.pidsEvents.max >= 1, "pids.events max counts refused forks")
        #expect(run.pidsLimitHit)
        #expect((run.pidsPeak ?? 99) <= 16)
        #expect((run.pidsPeak ?? 0) >= 10)
        #expect(!E2E.exists(root))
    }

    @Test func signalsReachTheAgent() throws {
        let (corral, _) = try E2E.binaries()
        let root = E2E.root("signal")
        // The shell says when its trap is set (it runs under the group's CPU
        // limit: on a loaded machine that can take longer than any fixed wait).
        let ready = "/tmp/corral-e2e-trapper-ready"
        unlink(ready)
        let running = try Subprocess.start(
            corral,
            [
                "run", "--json", "--name", "trapper", "--cgroup-root", root, "--", "/bin/sh", "-c",
                "trap 'exit 42' TERM; : > \(ready); while :; do sleep 0.1; done",
            ])
        #expect(E2E.eventually { access(ready, F_OK) == 0 })
        running.signal(SIGTERM)
        let result = running.wait(timeout: 60)
        let run = try #require(try? CorralJSON.decodeLastLine(RunSummary.self, from: result.stdout), "\(result)")
        #expect(result.exitStatus == 42, "\(result)")
        #expect(run.forwardedSignals == ["SIGTERM"])
        #expect(!E2E.exists(root))
    }

    /// As a shell user would: `corral run … &` then `kill -TERM`. Every thread
    /// of Corral (the embedded engine's included) must leave the signal to the
    /// signalfd that forwards it; a helper thread that took it would end Corral
    /// with status 143 and leave the command and its cgroup behind.
    @Test func aSignalFromTheShellIsForwardedWhateverThreadItLandsOn() throws {
        let (corral, _) = try E2E.binaries()
        let root = E2E.root("shell-signal")
        let script = """
            ready=/tmp/corral-e2e-trapper2-ready
            rm -f $ready
            "$0" run --name trapper2 --cgroup-root "$1" -- /bin/sh -c "trap 'exit 42' TERM; : > $ready; while :; do sleep 0.1; done" 2>/dev/null &
            corral=$!
            # The command's trap is set (it says so) before the shell signals Corral.
            i=0; until [ -e $ready ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i+1)); done
            kill -TERM $corral
            wait $corral
            echo "corral-status=$?"
            """
        let result = try Subprocess.start("/bin/sh", ["-c", script, corral, root]).wait(timeout: 90)
        #expect(result.stdout.contains("corral-status=42"), "\(result)")
        #expect(!E2E.exists(root), "the command and its cgroup must not be left behind")
    }

    /// Without a daemon the engine runs embedded: a spinner held at the
    /// lightweight group's cpu.max (10%) is warned at once and throttled after
    /// the configured delay (cpu.max lowered by the throttle factor), and the
    /// summary lists both actions with their outcomes.
    @Test func theEmbeddedLadderWarnsAndThrottlesASpinner() throws {
        let (_, stress) = try E2E.binaries()
        let root = E2E.root("embedded-ladder")
        let config = "/tmp/corral-e2e-embedded-\(getpid()).yaml"
        defer { try? FileManager.default.removeItem(atPath: config) }
        try """
        intervals: {sampling: 500ms}
        escalation:
          delays: {warn: 0s, throttle: 2s, suspend: 5m, terminate: 10m}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let (result, summary) = try E2E.run(
            ["--json", "--group", "lightweight_agent", "--config", config, "--cgroup-root", root, "--", stress, "spin", "8"], timeout: 120)
        let run = try #require(summary, "\(result)")
        E2E.report("embedded ladder: \(run.enforcement.map { "\($0.action.rawValue) succeeded=\($0.succeeded) \($0.details)" })")
        #expect(result.exitStatus == 0, "\(result)")
        #expect(run.engine == "embedded")
        let actions = run.enforcement.filter { $0.resource == .cpu }.map(\.action)
        #expect(actions.contains(.warn), "\(run.enforcement)")
        #expect(actions.contains(.throttle), "\(run.enforcement)")
        #expect(run.enforcement.allSatisfy { $0.succeeded }, "\(run.enforcement)")
        if let warn = run.enforcement.first(where: { $0.action == .warn }),
            let throttle = run.enforcement.first(where: { $0.action == .throttle })
        {
            #expect(throttle.at.milliseconds - warn.at.milliseconds >= 1900, "throttle comes after the configured 2 s delay")
        }
        #expect(!E2E.exists(root))
    }

    @Test func processesLeftBehindAreKilledWithTheCgroup() throws {
        let root = E2E.root("strays")
        let (result, summary) = try E2E.run(
            ["--json", "--cgroup-root", root, "--", "/bin/sh", "-c", "sleep 300 & sleep 300 & echo started"], timeout: 120)
        let run = try #require(summary, "\(result)")
        #expect(result.exitStatus == 0, "\(result)")
        #expect(run.strayProcessesKilled)
        #expect(result.seconds < 60)
        #expect(!E2E.exists(root))
    }

    @Test func busyIDUnknownCommandAndUnknownGroupLeaveNothingBehind() throws {
        let (corral, _) = try E2E.binaries()
        let root = E2E.root("busy")
        let first = try Subprocess.start(corral, ["run", "--name", "twin", "--cgroup-root", root, "--", "/bin/sleep", "60"])
        defer { first.signal(SIGKILL) }
        let leaf = "\(root)/standard_agent/twin"
        #expect(E2E.eventually { !(E2E.read(leaf + "/cgroup.procs") ?? "").isEmpty })

        let (second, _) = try E2E.run(["--name", "twin", "--cgroup-root", root, "--", "/bin/true"])
        #expect(second.exitStatus == 125, "\(second)")
        #expect(second.stderr.contains("agent id 'twin' is in use"), "\(second)")
        #expect(E2E.exists(leaf), "the running agent's cgroup must be untouched")

        first.signal(SIGTERM)
        let firstResult = first.wait(timeout: 60)
        #expect(firstResult.exitStatus == 128 + SIGTERM, "\(firstResult)")
        #expect(!E2E.exists(root))

        let (missing, _) = try E2E.run(["--cgroup-root", root, "--", "no-such-command-anywhere"])
        #expect(missing.exitStatus == 127, "\(missing)")
        #expect(missing.stderr.contains("command not found"))
        let (group, _) = try E2E.run(["--group", "no_such_group", "--cgroup-root", root, "--", "/bin/true"])
        #expect(group.exitStatus == 64, "\(group)")
        #expect(group.stderr.contains("unknown group 'no_such_group'"))
        #expect(!E2E.exists(root), "failed runs must not create anything")
    }

    @Test func doctorIsHappyOnAPureCgroupV2Kernel() throws {
        let (corral, _) = try E2E.binaries()
        let result = try Subprocess.run(corral, ["doctor", "--json"])
        #expect(result.exitStatus == 0, "\(result)")
        #expect(result.stdout.contains("\"cgroup_mode\" : \"unified\""), "\(result)")
        #expect(result.stdout.contains("\"ready\" : true"))
    }
}
