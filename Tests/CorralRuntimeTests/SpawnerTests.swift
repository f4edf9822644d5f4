import CorralCgroup
import CorralLinux
import Foundation
import SystemPackage
import Testing

@testable import CorralRuntime

/// The spawner on this host. clone3(CLONE_INTO_CGROUP) into a real cgroup
/// is e2e; the cgroup.procs fallback runs here against a temporary
/// directory standing in for the cgroup.
@Suite("Spawner")
struct SpawnerTests {
    /// A daemon's listening socket or database opened without O_CLOEXEC must
    /// not outlive it in its agents: a restarted daemon found its socket
    /// still "answering" through an agent that had inherited it.
    @Test func onlyStdioReachesTheCommand() throws {
        let leaky = open("/dev/null", O_RDONLY)  // no O_CLOEXEC
        #expect(leaky >= 3)
        defer { close(leaky) }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("corral-spawn-\(UUID().uuidString)")
        let out = try FileDescriptor.open(
            FilePath(output.path), .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: .ownerReadWrite)
        defer { try? FileManager.default.removeItem(at: output) }
        let process = try Spawner.spawn(
            Spawner.Request(
                executable: "/bin/sh", arguments: ["sh", "-c", "ls /proc/$$/fd"], environment: [], cgroupDirectory: nil,
                cgroupProcs: nil, standardOutput: out))
        try out.close()
        var status: Int32 = 0
        #expect(waitpid(process.pid, &status, 0) == process.pid)
        let descriptors = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }.sorted()
        #expect(descriptors.contains(1))
        #expect(!descriptors.contains(Int(leaky)), "descriptor \(leaky) leaked into the child: \(descriptors)")
        #expect(descriptors.allSatisfy { $0 <= 2 }, "\(descriptors)")
    }

    /// A temporary directory with an empty `cgroup.procs`, standing in for an agent's cgroup.
    struct StandIn: ~Copyable {
        let directory: String
        var procsPath: String { directory + "/cgroup.procs" }

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("corral-cgroup-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            #expect(FileManager.default.createFile(atPath: directory + "/cgroup.procs", contents: nil))
        }

        func open(_ mode: FileDescriptor.AccessMode) throws -> FileDescriptor {
            try FileDescriptor.open(FilePath(procsPath), mode, options: [.closeOnExec])
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    static func waitForExit(_ pid: Int32) -> Int32 {
        (try? ChildStatus.wait(for: pid, block: true)) ?? nil ?? 0
    }

    /// The fallback for kernels before 5.7: fork, the child writes "0" (the
    /// writing process itself, in cgroupfs) to cgroup.procs, then execs. The
    /// command reads the file, so what it prints was written before it ran.
    @Test func theProcsFallbackJoinsTheCgroupBeforeExec() throws {
        let standIn = try StandIn()
        let procs = try standIn.open(.writeOnly)
        defer { try? procs.close() }
        let directory = try FileDescriptor.open(FilePath(standIn.directory), .readOnly, options: [.directory, .closeOnExec])
        defer { try? directory.close() }
        let output = standIn.directory + "/output"
        let out = try FileDescriptor.open(
            FilePath(output), .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: .ownerReadWrite)
        var request = Spawner.Request(
            executable: "/bin/sh", arguments: ["sh", "-c", "echo \"$$\"; cat \"$0\"", standIn.procsPath], environment: [],
            cgroupDirectory: directory, cgroupProcs: procs, standardOutput: out)
        request.forceProcsWrite = true
        let process = try Spawner.spawn(request)
        try out.close()
        if let pidfd = process.pidfd { try? pidfd.close() }
        let status = Self.waitForExit(process.pid)
        #expect(status == 0, "exit status \(status)")

        #expect(process.method == .cgroupProcs)
        #expect(process.clone3Error == .badFileDescriptor, "clone3 was not tried: no directory fd reached it")
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n").map(String.init)
        // The command ran as the forked child itself (exec keeps the pid) ...
        #expect(lines.first == String(process.pid), "\(lines)")
        // ... and found the child's own write ("0" = "this process") in cgroup.procs.
        #expect(Array(lines.dropFirst()) == ["0"], "\(lines)")
        #expect(try String(contentsOfFile: standIn.procsPath, encoding: .utf8) == "0")
    }

    /// Without the switch, a directory that is not a cgroup makes clone3 fail
    /// (EBADF) and the spawner falls back the same way: the method reported
    /// is the one that ran.
    @Test func clone3IntoANonCgroupFallsBackAndSaysSo() throws {
        let standIn = try StandIn()
        let procs = try standIn.open(.writeOnly)
        defer { try? procs.close() }
        let directory = try FileDescriptor.open(FilePath(standIn.directory), .readOnly, options: [.directory, .closeOnExec])
        defer { try? directory.close() }
        let process = try Spawner.spawn(
            Spawner.Request(
                executable: "/bin/true", arguments: ["true"], environment: [], cgroupDirectory: directory, cgroupProcs: procs))
        if let pidfd = process.pidfd { try? pidfd.close() }
        #expect(Self.waitForExit(process.pid) == 0)
        #expect(process.method == .cgroupProcs)
        #expect(process.clone3Error != nil)
        #expect(try String(contentsOfFile: standIn.procsPath, encoding: .utf8) == "0")
    }

    /// Spawn stage 2: the child's write to cgroup.procs fails. The error
    /// names the cgroup.procs path, the process, the errno and a fix, and
    /// the command never runs.
    @Test func aFailedProcsWriteNamesThePathAndTheFix() throws {
        let standIn = try StandIn()
        let procs = try standIn.open(.readOnly)  // the child's write fails with EBADF
        defer { try? procs.close() }
        let marker = standIn.directory + "/ran"
        var request = Spawner.Request(
            executable: "/bin/sh", arguments: ["sh", "-c", "touch \"$0\"", marker], environment: [], cgroupDirectory: nil,
            cgroupProcs: procs)
        request.forceProcsWrite = true
        let error = #expect(throws: SpawnError.self) { try Spawner.spawn(request) }
        #expect(error?.exitStatus == 125)
        #expect(error?.errno == .badFileDescriptor)
        #expect(
            error?.message.hasPrefix("cannot start /bin/sh: joining the cgroup before exec failed: writing '") == true,
            "\(error?.message ?? "")")
        #expect(error?.message.contains("' to \(standIn.procsPath) failed") == true, "\(error?.message ?? "")")
        #expect(error?.message.hasSuffix("(EBADF)") == true, "\(error?.message ?? "")")
        #expect(error?.fix?.isEmpty == false)
        #expect(!FileManager.default.fileExists(atPath: marker), "the command must not run outside its cgroup")
    }

    /// The errnos a real cgroup.procs write gives, as the spawner reports them.
    @Test(arguments: [
        (Errno.resourceBusy, "cannot move process '4242' into", "leaf cgroup"),
        (.permissionDenied, "common ancestor", "sudo"),
        (.operationNotSupportedByDevice, "has been removed", "start the agent again"),
        (.notSupported, "threaded cgroup", "domain"),
        (.noSuchFileOrDirectory, "does not exist", "cgroup2"),
    ])
    func procsWriteErrors(errno: Errno, says: String, fix: String) throws {
        let standIn = try StandIn()
        let procs = try standIn.open(.writeOnly)
        defer { try? procs.close() }
        let error = Spawner.procsWriteError(errno, procs: procs, pid: 4242, executable: "/usr/bin/python3")
        #expect(error.message.hasPrefix("cannot start /usr/bin/python3: joining the cgroup before exec failed: "))
        #expect(error.message.contains(standIn.directory), "\(error.message)")
        #expect(error.message.contains(says), "\(error.message)")
        #expect(error.message.hasSuffix("(\(errno.name))"))
        #expect(error.fix?.contains(fix) == true, "\(error.fix ?? "none")")
        #expect(error.exitStatus == 125)
    }
}
