import CorralCore
import CorralTestSupport
import Foundation
import Testing

/// The `corral` built next to this test bundle, run on this host. On a
/// hybrid or legacy host (the development and CI machines) `run` and
/// `doctor` must refuse with the reason and the fix; everything that does
/// not need a cgroup v2 kernel is checked the same everywhere.
enum CLI {
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["CORRAL_BINARY"] { return path }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("corral").path
    }

    /// Waits in the task, not on a thread of the pool (see `Subprocess.execute`).
    static func run(_ arguments: [String]) async throws -> CommandResult {
        try await Subprocess.execute(binary, arguments, timeout: 60)
    }

    static var hostIsUnified: Bool {
        let controllers = (try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8)) ?? ""
        return ["memory", "cpu", "pids"].allSatisfy { controllers.contains($0) }
    }

    static var hostIsHybrid: Bool {
        FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.controllers")
    }

    static func temporaryFile(_ contents: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corral-cli-\(UUID().uuidString).yaml").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

@Suite("corral on this host")
struct CLITests {
    @Test(.enabled(if: CLI.hostIsHybrid && !CLI.hostIsUnified))
    func runFailsFastOnAHybridHost() async throws {
        let result = try await CLI.run(["run", "--", "true"])
        #expect(result.exitStatus == 125, "\(result)")
        #expect(result.stderr.contains("hybrid mode"))
        #expect(result.stderr.contains("memory, cpu, pids"))
        #expect(result.stderr.contains("systemd.unified_cgroup_hierarchy=1"))
        #expect(!result.stderr.contains("Fatal error"))
        #expect(result.seconds < 5)
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/corral"))
    }

    @Test(.enabled(if: CLI.hostIsHybrid && !CLI.hostIsUnified))
    func doctorExplainsAHybridHost() async throws {
        let text = try await CLI.run(["doctor"])
        #expect(text.exitStatus == 1)
        #expect(text.stderr.contains("FAIL  cgroup mode"))
        #expect(text.stderr.contains("hybrid"))
        #expect(text.stderr.contains("fix: boot the kernel with systemd.unified_cgroup_hierarchy=1"))
        let json = try await CLI.run(["doctor", "--json"])
        #expect(json.exitStatus == 1)
        struct Report: Decodable {
            var ready: Bool
            var cgroupMode: String
            var missingControllers: [String]
        }
        let report = try CorralJSON.decode(Report.self, from: json.stdout)
        #expect(!report.ready)
        #expect(report.cgroupMode == "hybrid")
        #expect(report.missingControllers == ["memory", "cpu", "pids"])
    }

    @Test(arguments: [
        (["run", "--memory-max", "lots", "--", "true"], "--memory-max: not a number in 'lots'"),
        (["run", "--memory-max", "5X", "--", "true"], "unknown size unit 'X'"),
        (["run", "--pids-max", "99999999999999999999", "--", "true"], "too large"),
        (["run", "--pids-max", "5000000", "--", "true"], "above the kernel's maximum"),
        (["run", "--memory-max=-5M", "--", "true"], "negative value in '-5M'"),
        (["run", "--cpu", "0.01", "--", "true"], "below the kernel's minimum"),
        (["run", "--cpu", "0", "--", "true"], "must be greater than zero"),
        (["run", "--pids-max", "1.5", "--", "true"], "not a whole number"),
        (["run", "--name", "../escape", "--", "true"], "must start with a letter or digit"),
        (["run", "--name", "a/b", "--", "true"], "contains '/'"),
        (["run", "--name", "supervisor", "--", "true"], "reserved"),
        (["run"], "no command given"),
        (["run", "--bogus", "--", "true"], "unknown option '--bogus'"),
    ])
    func badFlagsAreUsageErrors(arguments: [String], message: String) async throws {
        let result = try await CLI.run(arguments)
        #expect(result.exitStatus == 64, "\(result)")
        #expect(result.stderr.contains(message), "\(result)")
        #expect(!result.stderr.contains("Fatal error"))
    }

    @Test func unknownGroupAndCommandFailBeforeTouchingCgroups() async throws {
        let group = try await CLI.run(["run", "--group", "nope", "--", "true"])
        #expect(group.exitStatus == 64)  // a bad --group is a usage error
        #expect(group.stderr.contains("unknown group 'nope'; known groups: heavy_computation_agent, lightweight_agent, standard_agent"))
        let command = try await CLI.run(["run", "--", "definitely-no-such-command"])
        #expect(command.exitStatus == 127)
        #expect(command.stderr.contains("command not found: 'definitely-no-such-command'"))
        let directory = try await CLI.run(["run", "--", "/tmp"])
        #expect(directory.exitStatus == 126)
        let softAboveHard = try await CLI.run(["run", "--memory-high", "600M", "--memory-max", "100M", "--", "true"])
        #expect(softAboveHard.exitStatus == 64)
        #expect(softAboveHard.stderr.contains("above the hard limit"))
    }

    @Test func configValidate() async throws {
        let good = try CLI.temporaryFile(
            """
            groups:
              standard_agent:
                limits:
                  memory: {hard: 1G}
            """)
        let ok = try await CLI.run(["config", "validate", good])
        #expect(ok.exitStatus == 0, "\(ok)")
        #expect(ok.stdout.hasPrefix("OK: "))

        let bad = try CLI.temporaryFile(
            """
            groups:
              standard_agent:
                limits:
                  memory: {soft: 2G, hard: 1G}
                  cpu: {hard: 30%, action: explode}
            colour: blue
            """)
        let failed = try await CLI.run(["config", "validate", bad])
        #expect(failed.exitStatus == 1)
        #expect(failed.stderr.contains("\(bad):4:"), "\(failed)")
        #expect(failed.stderr.contains("above the hard limit"))
        #expect(failed.stderr.contains("'explode': unknown action"))
        #expect(failed.stderr.contains("unknown key 'colour'"))
        let json = try await CLI.run(["config", "validate", "--json", bad])
        #expect(json.exitStatus == 1)
        #expect(json.stdout.contains("\"valid\" : false"))

        let missing = try await CLI.run(["config", "validate", "/nonexistent/corral.yaml"])
        #expect(missing.exitStatus == 1)
        #expect(missing.stderr.contains("cannot open"))

        let withBadConfig = try await CLI.run(["run", "--config", bad, "--", "true"])
        #expect(withBadConfig.exitStatus == 125)
        #expect(withBadConfig.stderr.contains("nothing was applied"))
    }

    @Test func helpTeaches() async throws {
        let help = try await CLI.run(["run", "--help"])
        #expect(help.exitStatus == 0)
        for phrase in ["--memory-max", "clone3", "Examples:", "standard_agent", "1.5GiB"] {
            #expect(help.stdout.contains(phrase), "\(phrase)")
        }
        let top = try await CLI.run(["--help"])
        #expect(top.stdout.contains("lightweight_agent"))
        #expect(top.stdout.contains("doctor"))
    }
}

@Suite("Shipped files")
struct ShippedFilesTests {
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func systemdUnitVerifies() async throws {
        let unit = try String(contentsOf: Self.repository.appendingPathComponent("deploy/corral.service"), encoding: .utf8)
        let daemon = URL(fileURLWithPath: CLI.binary).deletingLastPathComponent().appendingPathComponent("corrald").path
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("corral-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("corral.service").path
        try unit.replacingOccurrences(of: "/usr/bin/corrald", with: daemon).write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await Subprocess.execute("/usr/bin/systemd-analyze", ["verify", path])
        #expect(result.status == 0, "\(result)")
        #expect(!result.stderr.contains("corral.service:"), "\(result)")
        // Agents live in corral-agents.scope: this unit's cgroup is not delegated (see AgentScope).
        #expect(!unit.contains("\nDelegate=yes"))
        #expect(unit.contains("\nType=notify"))
        #expect(unit.contains("\nExecStart=/usr/bin/corrald "))
    }

    /// The unit's sandbox: `systemd-analyze security --offline=yes` scores it
    /// at most 3.0 ("OK"; containerd.service and docker.service score 9.6,
    /// systemd-oomd.service 2.0).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func systemdUnitExposureIsAtMostThree() async throws {
        let unit = try String(contentsOf: Self.repository.appendingPathComponent("deploy/corral.service"), encoding: .utf8)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("corral-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("corral.service").path
        try unit.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await Subprocess.execute("/usr/bin/systemd-analyze", ["security", "--offline=yes", "--no-pager", path])
        let line = result.stdout.split(separator: "\n").first { $0.contains("Overall exposure level for corral.service:") }
        let score = line.flatMap { $0.split(separator: ":").last?.split(separator: " ").first }.flatMap { Double($0) }
        #expect(score != nil, "\(result)")
        #expect((score ?? 10) <= 3.0, "exposure \(score ?? -1): \(line ?? "")")
    }

    @Test func exampleConfigurationIsValid() async throws {
        let path = Self.repository.appendingPathComponent("deploy/corral.example.yaml").path
        let result = try await CLI.run(["config", "validate", "--json", path])
        #expect(result.exitStatus == 0, "\(result)")
        #expect(result.stdout.contains("\"batch\""))
    }
}

@Suite("the test harness itself")
struct HarnessTests {
    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? -1
    }

    /// The e2e suite runs hundreds of commands in one process; a descriptor
    /// per command would end in EMFILE halfway through.
    /// Both forms: the e2e suite's threads wait in `run`, tasks in `execute`.
    @Test func runningCommandsLeaksNoDescriptor() async throws {
        for _ in 0..<5 { _ = try await Subprocess.execute("/bin/true", []) }
        let before = Self.openDescriptors()
        for index in 0..<200 {
            let result = index.isMultiple(of: 2) ? try Subprocess.run("/bin/true", []) : try await Subprocess.execute("/bin/true", [])
            #expect(result.status == 0)
        }
        let after = Self.openDescriptors()
        // A leak of even one descriptor per command shows as 200; other tests running meanwhile open a few.
        #expect(after - before < 100, "\(before) descriptors before 200 commands, \(after) after")
    }
}
