import CorralCore
import CorralLinux
import CorralSeccomp
import Foundation
import Synchronization
import SystemPackage
import Testing

@testable import CorralRuntime

/// Filters, users and rlimits applied by the spawner's child, on this host's
/// kernel (seccomp and user changes need no cgroup v2). The cgroup namespace
/// and nsdelegate are e2e (Tests/CorralE2ETests/IsolationTests.swift).
@Suite("Isolation", .serialized)
struct IsolationTests {
    /// corral-stress, built next to this test bundle.
    static var stress: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("corral-stress").path
    }

    static let denied = ["mount", "umount2", "unshare-user", "bpf", "io_uring_setup", "kexec_load", "perf_event_open", "keyctl", "setns"]

    struct Outcome {
        var lines: [String: String]
        var status: Int32
        var text: String
    }

    /// Runs `arguments` with `isolation`, returns what it printed ("NAME RC ERRNO" lines by name) and its wait status.
    static func run(
        _ executable: String, _ arguments: [String], isolation: Isolation?, supervisor: DenialSupervisor? = nil, agent: String = "a"
    ) throws -> Outcome {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("corral-isolation-\(UUID().uuidString)")
        let out = try FileDescriptor.open(
            FilePath(output.path), .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite, .otherReadWrite])
        defer { try? FileManager.default.removeItem(at: output) }
        var request = Spawner.Request(
            executable: executable, arguments: [executable] + arguments, environment: ["PATH=/usr/bin:/bin"], cgroupDirectory: nil,
            cgroupProcs: nil, standardOutput: out, standardError: out)
        request.isolation = isolation
        let process = try Spawner.spawn(request)
        try out.close()
        if let listener = process.seccompListener {
            if let supervisor { supervisor.supervise(listener, agent: agent) } else { try listener.close() }
        }
        if let pidfd = process.pidfd { try? pidfd.close() }
        let status = (try ChildStatus.wait(for: process.pid, block: true)) ?? -1
        let text = try String(contentsOf: output, encoding: .utf8)
        var lines: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 3 { lines[String(parts[0])] = String(parts[2]) }
        }
        return Outcome(lines: lines, status: status, text: text)
    }

    static func isolation(_ policy: SecurityPolicy, supervised: Bool) throws -> Isolation {
        var policy = policy
        policy.cgroupNamespace = false  // needs no cgroup here, but keep the test about seccomp
        return try Isolation.prepare(policy, cache: FilterCache(), supervised: supervised)
    }

    @Test func everyBuiltInNameIsKnownToLibseccomp() {
        let names = Set(SeccompProfile.allCases.flatMap { SyscallProfiles.rules(for: $0).map(\.syscall) })
        // Newer than Debian 12's libseccomp 2.5.4 tables, skipped there when unknown.
        let unknown = names.filter { Seccomp.syscallNumber($0) == nil }.subtracting(["quotactl_fd", "memfd_secret"])
        #expect(unknown.isEmpty, "\(unknown.sorted())")
        #expect(Seccomp.syscallName(Seccomp.syscallNumber("ptrace")!) == "ptrace")
        #expect(Seccomp.suggestion(for: "ptrac") == "ptrace")
    }

    @Test func profilesCompileAndShowTheirRules() throws {
        let pfc = try Seccomp.pseudoCode(SeccompPolicy(base: .default), notify: false)
        for name in ["mount", "ptrace", "bpf", "io_uring_setup", "kexec_load", "clone3", "unshare", "personality"] {
            #expect(pfc.contains("\"\(name)\""), "\(name) missing from the default filter")
        }
        // default refuses only AF_VSOCK sockets, terminal injection ioctls and device nodes.
        for name in ["socket", "ioctl", "mknod", "mknodat", "modify_ldt"] { #expect(pfc.contains("\"\(name)\""), "\(name)") }
        let strict = try Seccomp.pseudoCode(SeccompPolicy(base: .strict), notify: false)
        #expect(strict.contains("\"socket\"") && strict.contains("\"setuid\""))
        #expect(try Seccomp.compile(SeccompPolicy(base: .default), notify: true).notifies == Seccomp.supportsNotification)
        #expect(try Seccomp.compile(SeccompPolicy(base: .default, action: .kill), notify: true).notifies == false)
        #expect(SeccompPolicy(base: .none).rules.isEmpty)
        #expect(SeccompPolicy(base: .default, allow: ["ptrace"]).rules.allSatisfy { $0.syscall != "ptrace" })
    }

    /// The plain filter derived from the notifying one is byte for byte what libseccomp
    /// compiles: for every built-in profile, with extra denials and allowances among them.
    @Test func thePlainFilterDerivedFromTheNotifyingOneIsTheCompiledOne() throws {
        try #require(Seccomp.supportsNotification, "this kernel has no seccomp user notification")
        let policies =
            SeccompProfile.allCases.filter { $0 != .none }.map { SeccompPolicy(base: $0) } + [
                SeccompPolicy(base: .default, deny: ["chroot", "ptrace"]), SeccompPolicy(base: .strict, allow: ["socket"]),
                SeccompPolicy(base: .none, deny: ["mount"]),
            ]
        for policy in policies {
            let notifying = try Seccomp.compile(policy, notify: true)
            let derived = try #require(notifying.notificationsAsErrno(Seccomp.deniedErrno))
            #expect(derived == (try Seccomp.compile(policy, notify: false)), "\(policy.summary)")
            #expect(derived.program != notifying.program, "\(policy.summary): the notify returns were replaced")
            // Through the cache: the plain one comes from the notifying one already there.
            let cache = FilterCache()
            _ = try cache.filter(for: policy, notify: true)
            #expect(try cache.filter(for: policy, notify: false) == derived)
        }
        #expect(try Seccomp.compile(SeccompPolicy(base: .default), notify: false).notificationsAsErrno(EPERM) == nil)
    }

    /// Every call the default profile denies fails with EPERM; each is answered by
    /// the supervisor and counted under its syscall name; clone3 gets ENOSYS and is not a denial.
    @Test func theDefaultProfileDeniesAndTheSupervisorRecords() throws {
        try #require(Seccomp.supportsNotification, "this kernel has no seccomp user notification")
        let reports = Mutex<[SyscallDenial]>([])
        let supervisor = try DenialSupervisor(
            clock: { Timestamp(milliseconds: 1) }, report: { denial in reports.withLock { $0.append(denial) } })
        defer { supervisor.stop() }
        let isolation = try Self.isolation(.standard, supervised: true)
        #expect(isolation.notifyFilter != nil)
        let outcome = try Self.run(
            Self.stress, ["syscalls"] + Self.denied + ["clone3", "personality", "getpid", "ptrace"], isolation: isolation,
            supervisor: supervisor)
        #expect(outcome.status == 0, "\(outcome.text)")
        for name in Self.denied + ["personality", "ptrace"] {
            #expect(outcome.lines[name] == "EPERM", "\(name): \(outcome.text)")
        }
        #expect(outcome.lines["clone3"] == "ENOSYS")
        #expect(outcome.lines["getpid"] == "OK")
        // The kernel's names: unshare-user is "unshare", io_uring_setup itself, …
        let expected: Set = [
            "mount", "umount2", "unshare", "bpf", "io_uring_setup", "kexec_load", "perf_event_open", "keyctl", "setns", "personality",
            "ptrace",
        ]
        let counted = Set(supervisor.denials(of: "a").map(\.syscall))
        #expect(counted == expected, "\(counted.sorted())")
        #expect(supervisor.denials(of: "a").allSatisfy { $0.count == 1 && $0.action == .errno })
        supervisor.stop()  // reports are delivered on their own thread: stop waits for them
        #expect(Set(reports.withLock { $0.map(\.syscall) }) == expected)
    }

    /// Without a supervisor (a plain ERRNO filter) the same calls still fail with EPERM.
    @Test func unsupervisedDenialsFailClosed() throws {
        let outcome = try Self.run(Self.stress, ["syscalls"] + Self.denied, isolation: try Self.isolation(.standard, supervised: false))
        for name in Self.denied { #expect(outcome.lines[name] == "EPERM", "\(name): \(outcome.text)") }
    }

    /// The unfiltered baseline: nothing answers EPERM for being filtered.
    @Test func noSeccompAllowsWhatTheDefaultDenies() throws {
        let outcome = try Self.run(Self.stress, ["syscalls", "mount", "bpf", "io_uring_setup", "clone3", "unshare-user"], isolation: nil)
        #expect(outcome.lines["mount"] == "ENOENT")
        #expect(outcome.lines["bpf"] == "EINVAL")
        #expect(outcome.lines["clone3"] == "EINVAL")
        #expect(outcome.lines["unshare-user"] == "OK")
    }

    @Test func theKillActionKillsBySIGSYS() throws {
        var policy = SecurityPolicy.standard
        policy.seccomp.action = .kill
        let outcome = try Self.run(
            Self.stress, ["syscalls", "getpid", "bpf", "getpid"], isolation: try Self.isolation(policy, supervised: true))
        #expect(outcome.status & 0x7f == SIGSYS, "status \(outcome.status): \(outcome.text)")
        #expect(outcome.lines["getpid"] == "OK")
        #expect(outcome.lines["bpf"] == nil)
    }

    @Test func strictRefusesOtherSocketFamilies() throws {
        var policy = SecurityPolicy.standard
        policy.seccomp.base = .strict
        let outcome = try Self.run(
            Self.stress, ["syscalls", "socket-netlink", "getpid"], isolation: try Self.isolation(policy, supervised: false))
        #expect(outcome.lines["socket-netlink"] == "EPERM", "\(outcome.text)")
        let open = try Self.run(Self.stress, ["syscalls", "socket-netlink"], isolation: try Self.isolation(.standard, supervised: false))
        #expect(open.lines["socket-netlink"] == "OK", "\(open.text)")
    }

    /// Common programs still work under the default profile (threads come through clone after clone3's ENOSYS).
    @Test func everydayProgramsRunUnderTheDefaultProfile() throws {
        let isolation = try Self.isolation(.standard, supervised: false)
        for (program, arguments) in [
            ("/bin/sh", ["-c", "echo shell ok"]),
            (
                "/usr/bin/python3",
                ["-c", "import threading, subprocess; t = threading.Thread(target=print, args=('python ok',)); t.start(); t.join()"]
            ),
        ] where FileManager.default.isExecutableFile(atPath: program) {
            let outcome = try Self.run(program, arguments, isolation: isolation)
            #expect(outcome.status == 0 && outcome.text.contains("ok"), "\(program): \(outcome.text)")
        }
    }

    @Test func anAgentRunsAsItsUserWithItsGroupsAndRlimits() throws {
        try #require(getuid() == 0, "changing user needs root")
        var policy = SecurityPolicy.standard
        policy.user = "nobody"
        policy.rlimits = [.nofile: RlimitValue(soft: 256, hard: 512), .core: RlimitValue(soft: 0, hard: 0)]
        let isolation = try Self.isolation(policy, supervised: false)
        #expect(isolation.environment(["HOME=/root", "PATH=/bin"], cgroup: "/x").contains("HOME=\(isolation.identity!.home)"))
        let wasDumpable = CurrentProcess.isDumpable
        let outcome = try Self.run(
            "/bin/sh", ["-c", "echo \"$(id -u) $(id -g) $(ulimit -n) $(ulimit -Hn) $(ulimit -c)\"; grep NoNewPrivs /proc/self/status"],
            isolation: isolation)
        let identity = isolation.identity!
        #expect(outcome.text.contains("\(identity.uid) \(identity.gid) 256 512 0"), "\(outcome.text)")
        #expect(outcome.text.contains("NoNewPrivs:\t1"), "\(outcome.text)")
        // The child changed its user in this process's memory (CLONE_VM), which made the kernel
        // mark that memory non-dumpable; the spawner gives this process its own setting back.
        #expect(CurrentProcess.isDumpable == wasDumpable)
    }

    /// A root agent keeps Docker's default capabilities, also across exec (no_new_privs).
    @Test func aRootAgentKeepsOnlyTheDefaultCapabilities() throws {
        try #require(getuid() == 0, "needs root")
        let isolation = try Self.isolation(.standard, supervised: false)
        let kept = try #require(isolation.keptCapabilities)
        let outcome = try Self.run("/bin/sh", ["-c", "grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status"], isolation: isolation)
        let current = try #require(CapabilitySet(status: try String(contentsOfFile: "/proc/self/status", encoding: .utf8))).bits
        for line in outcome.text.split(separator: "\n") {
            let value = try #require(UInt64(line.split(separator: "\t").last ?? "", radix: 16), "\(line)")
            #expect(value == kept & current, "\(line): expected \(String(kept & current, radix: 16))")
        }
        var all = SecurityPolicy.standard
        all.capabilities = .all
        #expect(try Self.isolation(all, supervised: false).keptCapabilities == nil)
        all.user = "nobody"
        all.capabilities = .default
        #expect(try Self.isolation(all, supervised: false).keptCapabilities == nil, "another user has none to drop")
    }

    @Test func unknownUsersAndGroupsAreRefusedWithTheFix() {
        var policy = SecurityPolicy.standard
        policy.user = "no-such-user-corral"
        #expect(throws: SpawnError.self) { try Isolation.prepare(policy, cache: FilterCache(), supervised: false) }
        do {
            _ = try Isolation.prepare(policy, cache: FilterCache(), supervised: false)
        } catch {
            #expect(error.message.contains("'no-such-user-corral' does not exist"))
            #expect(error.fix?.contains("useradd") == true)
        }
        policy.user = nil
        policy.group = "nogroup"
        #expect(throws: SpawnError.self) { try Isolation.prepare(policy, cache: FilterCache(), supervised: false) }
    }
}
