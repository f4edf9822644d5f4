import CorralRuntime
import Foundation
import SystemPackage
import Testing

/// The spawner on this host, without a cgroup (the cgroup half is e2e).
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
}
