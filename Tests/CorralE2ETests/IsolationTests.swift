import CorralCore
import CorralTestSupport
import Foundation
import Testing

/// Agent isolation on the real kernel: each profile's denials with the kernel's
/// answers and their records, the kill action, the programs agents run, and the
/// escapes a root or non-root agent tries (each answered by the kernel).
@Suite("e2e: agent isolation", .serialized, .enabled(if: E2E.enabled))
struct IsolationE2ETests {
    /// corral-stress's probes and the kernel's names for them.
    static let probes = ["mount", "unshare-user", "bpf", "io_uring_setup", "kexec_load", "ptrace"]
    static let syscalls: Set = ["mount", "unshare", "bpf", "io_uring_setup", "kexec_load", "ptrace"]

    /// "NAME RC ERRNO" lines by name.
    static func answers(_ output: String) -> [String: String] {
        var lines: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 3 { lines[String(parts[0])] = String(parts[2]) }
        }
        return lines
    }

    static func configFile(_ text: String) throws -> String {
        let path = "/tmp/corral-e2e-isolation-\(getpid())-\(UUID().uuidString.prefix(8)).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(.serialized, arguments: ["default", "strict"])
    func eachProfileDeniesWithEPERMAndRecordsEveryDenial(profile: String) throws {
        let (_, stress) = try E2E.binaries()
        let root = E2E.root("seccomp-\(profile)")
        let (result, summary) = try E2E.run(
            ["--json", "--seccomp", profile, "--cgroup-root", root, "--", stress, "syscalls"] + Self.probes + ["getpid"])
        let run = try #require(summary, "\(result)")
        let answers = Self.answers(result.stdout)
        E2E.report("seccomp \(profile): \(answers.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        #expect(result.exitStatus == 0, "\(result)")
        for probe in Self.probes { #expect(answers[probe] == "EPERM", "\(probe) under \(profile): \(result.stdout)") }
        #expect(answers["getpid"] == "OK")
        #expect(Set(run.denials.map(\.syscall)) == Self.syscalls, "\(run.denials)")
        #expect(run.denials.allSatisfy { $0.count == 1 && $0.action == .errno && $0.agent == run.agent })
        #expect(run.security?.seccomp.base.rawValue == profile)
        #expect(!E2E.exists(root))
    }

    @Test func theKillActionEndsTheAgentBySIGSYS() throws {
        let (_, stress) = try E2E.binaries()
        let config = try Self.configFile("groups:\n  standard_agent:\n    security:\n      seccomp_action: kill\n")
        defer { try? FileManager.default.removeItem(atPath: config) }
        let root = E2E.root("seccomp-kill")
        let (result, summary) = try E2E.run([
            "--json", "--config", config, "--cgroup-root", root, "--", stress, "syscalls", "getpid", "bpf", "getpid",
        ])
        let run = try #require(summary, "\(result)")
        E2E.report("seccomp kill: \(run.headline)")
        #expect(result.exitStatus == 128 + 31, "\(result)")
        #expect(run.termination == .signaled(signal: 31))
        #expect(run.headline.contains("SIGSYS") && run.headline.contains("seccomp"), "\(run.headline)")
        #expect(Self.answers(result.stdout)["bpf"] == nil, "the call never returned")
        // The kernel's audit record in /dev/kmsg names the call.
        #expect(run.denials.map(\.syscall) == ["bpf"], "\(run.denials)")
        #expect(run.denials.first?.action == .kill)
        #expect(run.headline.hasSuffix("refused bpf after \(Quantity.formatSeconds(run.wallSeconds))"), "\(run.headline)")
    }

    @Test func noSeccompAllowsWhatTheDefaultDenies() throws {
        let (_, stress) = try E2E.binaries()
        let (result, summary) = try E2E.run([
            "--json", "--no-seccomp", "--cgroup-root", E2E.root("seccomp-none"), "--", stress, "syscalls", "mount", "bpf", "io_uring_setup",
        ])
        let run = try #require(summary, "\(result)")
        let answers = Self.answers(result.stdout)
        #expect(answers["mount"] == "ENOENT", "\(result.stdout)")
        #expect(answers["bpf"] == "EINVAL", "\(result.stdout)")
        #expect(answers["io_uring_setup"] != "EPERM", "\(result.stdout)")
        #expect(run.denials.isEmpty)
        #expect(run.security?.seccomp.base == SeccompProfile.none)
    }

    /// What agents run still works under the default profile: interpreters,
    /// threads (clone3 answers ENOSYS, glibc falls back to clone), git, curl, a
    /// compiler, pip installing a local wheel.
    @Test func everydayProgramsRunUnderTheDefaultProfile() throws {
        let work = "/tmp/corral-e2e-programs-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let script = """
            set -e
            cd \(work)
            python3 -c 'import threading, subprocess, sys; t = threading.Thread(target=print, args=("python threads ok",)); t.start(); t.join(); subprocess.run(["true"], check=True)'
            git init -q repo && cd repo && echo hi > f && git add f && git -c user.email=e@x -c user.name=e commit -qm one && git log --oneline | grep -q one && echo "git ok" && cd ..
            curl -sf file:///etc/hostname >/dev/null && echo "curl ok"
            printf '#include <stdio.h>\\nint main(void){puts("cc ok");return 0;}\\n' > hello.c && cc -o hello hello.c && ./hello
            if command -v node >/dev/null; then node -e 'require("child_process").execSync("true"); console.log("node ok")'; else echo "node ok (not installed)"; fi
            mkdir -p wheel/demo_corral wheel/demo_corral-1.0.dist-info
            echo 'VALUE = "wheel ok"' > wheel/demo_corral/__init__.py
            printf 'Metadata-Version: 2.1\\nName: demo-corral\\nVersion: 1.0\\n' > wheel/demo_corral-1.0.dist-info/METADATA
            printf 'Wheel-Version: 1.0\\nGenerator: corral-e2e\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n' > wheel/demo_corral-1.0.dist-info/WHEEL
            printf 'demo_corral/__init__.py,,\\ndemo_corral-1.0.dist-info/METADATA,,\\ndemo_corral-1.0.dist-info/WHEEL,,\\ndemo_corral-1.0.dist-info/RECORD,,\\n' > wheel/demo_corral-1.0.dist-info/RECORD
            (cd wheel && python3 -m zipfile -c ../demo_corral-1.0-py3-none-any.whl demo_corral demo_corral-1.0.dist-info)
            python3 -m pip install -q --no-index --no-deps --disable-pip-version-check --target site demo_corral-1.0-py3-none-any.whl
            PYTHONPATH=site python3 -c 'import demo_corral; print(demo_corral.VALUE)'
            """
        let (result, summary) = try E2E.run(
            ["--json", "--cgroup-root", E2E.root("programs"), "--", "/bin/sh", "-c", script], timeout: 900)
        let run = try #require(summary, "\(result)")
        E2E.report("programs under the default profile: \(run.wallSeconds) s, denials \(run.denials.map(\.syscall))")
        #expect(result.exitStatus == 0, "\(result)")
        for word in ["python threads ok", "git ok", "curl ok", "cc ok", "node ok", "wheel ok"] {
            #expect(result.stdout.contains(word), "\(word) missing: \(result)")
        }
        #expect(run.security?.seccomp.base == .default)
    }

    /// The escapes of item 5: an agent moving itself out of its cgroup, changing
    /// its own limits, freezing another agent. As root (in its cgroup namespace,
    /// with Docker's default capabilities) and as nobody; the kernel answers.
    @Test(.serialized, arguments: [nil, "nobody"])
    func escapesFailWithTheKernelsAnswer(user: String?) throws {
        let (corral, stress) = try E2E.binaries()
        let root = E2E.root("escape-\(user ?? "root")")
        // A bystander agent to freeze.
        let bystander = try Subprocess.start(
            corral, ["run", "--quiet", "--name", "bystander", "--cgroup-root", root, "--", stress, "tree", "1", "60"])
        defer {
            bystander.signal(SIGTERM)
            _ = bystander.wait(timeout: 30)
        }
        let other = "\(root)/standard_agent/bystander"
        #expect(E2E.eventually { !(E2E.read(other + "/cgroup.procs") ?? "").isEmpty })
        // Through /proc/1/root the host's mount of the cgroup tree is reachable, if anything is.
        let hostRoot = "/proc/1/root\(E2E.mount)"
        let attempts = [
            ("own-limits", "/sys/fs/cgroup/memory.max", "max"),
            ("move-out", "\(hostRoot)/cgroup.procs", "0"),
            ("move-out-direct", "\(E2E.mount)/cgroup.procs", "0"),
            ("freeze-other", "\(hostRoot)\(other.dropFirst(E2E.mount.count))/cgroup.freeze", "1"),
        ]
        let script = attempts.map { "printf '%s ' \($0.0); \(stress) write '\($0.1)' '\($0.2)' | cut -d' ' -f3" }.joined(separator: "; ")
        var arguments = ["--json", "--cgroup-root", root]
        if let user { arguments += ["--user", user] }
        let (result, summary) = try E2E.run(arguments + ["--", "/bin/sh", "-c", script + "; cat /proc/self/cgroup"])
        let run = try #require(summary, "\(result)")
        var answers: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { answers[String(parts[0])] = String(parts[1]) }
        }
        E2E.report(
            "escapes as \(user ?? "root"): \(answers.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        #expect(result.exitStatus == 0, "\(result)")
        #expect(result.stdout.contains("0::/\n"), "the agent's cgroup namespace is rooted at its cgroup: \(result.stdout)")
        if user == nil {
            #expect(answers["own-limits"] == "EPERM", "nsdelegate: the namespace root's limits are not the agent's to write")
            #expect(answers["move-out"] == "EACCES", "no CAP_SYS_PTRACE: /proc/1/root is closed")
            #expect(answers["move-out-direct"] == "OK", "its own mount: the root it sees is its own cgroup (a move into itself)")
            #expect(answers["freeze-other"] == "EACCES")
        } else {
            #expect(answers["own-limits"] == "EACCES")
            #expect(answers["move-out"] == "EACCES")
            #expect(answers["move-out-direct"] == "EACCES")
            #expect(answers["freeze-other"] == "EACCES")
        }
        #expect(E2E.read(other + "/cgroup.freeze")?.hasPrefix("0") == true, "the bystander is not frozen")
        #expect(run.security?.cgroupNamespace == true)
    }

    /// Through the daemon: a launched agent (the daemon holds its listener) and a
    /// `corral run` beside it (the CLI holds it and reports to the daemon); both
    /// denials are in the daemon's history and on the agents' event streams.
    @Test func theDaemonRecordsDenialsOfLaunchedAndRunAgents() throws {
        let (_, stress) = try E2E.binaries()
        let daemon = try DaemonTests.Daemon(
            name: "isolation-daemon", extraConfig: "\ngroups:\n  lightweight_agent:\n    security: {seccomp_action: kill}\n")
        try daemon.start()
        defer {
            _ = daemon.stop()
            E2E.removeEmptyTree(daemon.root)
        }
        try daemon.startAgent(["--name", "launched", "--", stress, "syscalls", "ptrace", "bpf"])
        try daemon.startAgent(["--name", "killed", "--group", "lightweight_agent", "--", stress, "syscalls", "getpid", "kexec_load"])
        let run = try daemon.cli(["run", "--json", "--name", "beside", "--", stress, "syscalls", "mount", "mount"])
        #expect(run.status == 0, "\(run)")
        #expect(Self.answers(run.stdout)["mount"] == "EPERM", "\(run.stdout)")
        let summary = try CorralJSON.decodeLastLine(RunSummary.self, from: run.stdout)
        #expect(summary.engine == "daemon")
        #expect(summary.denials.first { $0.syscall == "mount" }?.count == 2, "\(summary.denials)")
        // Narration through a daemon: its stream opens once the agent has run 300 ms and
        // replays what the daemon said before (the denial comes in the agent's first moments).
        let narrated = try daemon.cli(["run", "--name", "narrated", "--", "/bin/sh", "-c", "\(stress) syscalls mount; sleep 1"])
        #expect(narrated.status == 0, "\(narrated)")
        #expect(narrated.stderr.contains("corral: [narrated] seccomp refused mount"), "\(narrated.stderr)")
        var denials: [SyscallDenial] = []
        let recorded = E2E.eventually(timeout: 30) {
            denials = (try? daemon.json(["history", "--denials"], as: [SyscallDenial].self)) ?? []
            return Set(denials.map { "\($0.agent):\($0.syscall)" }).isSuperset(of: [
                "launched:ptrace", "launched:bpf", "beside:mount", "killed:kexec_load",
            ])
        }
        E2E.report("daemon denials: \(denials.map { "\($0.agent):\($0.syscall)×\($0.count)" })")
        #expect(recorded, "\(denials)")
        #expect(denials.first { $0.agent == "beside" && $0.syscall == "mount" }?.count == 2)
        #expect(denials.first { $0.agent == "killed" }?.action == .kill)
        let killed = try daemon.cli(["agents", "show", "killed"])
        #expect(killed.stdout.contains("killed by SIGSYS") && killed.stdout.contains("exit status 159"), "\(killed)")
        let text = try daemon.cli(["history"])
        #expect(text.stdout.contains("Denied syscalls (seccomp)") && text.stdout.contains("ptrace"), "\(text)")
        let events = try daemon.cli(["events", "--agent", "launched", "--json"])
        #expect(events.stdout.contains("\"seccomp_denied\""), "\(events)")
    }
}
