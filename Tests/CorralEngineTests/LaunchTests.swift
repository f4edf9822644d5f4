import CorralAPI
import CorralCgroup
import CorralCore
import CorralEngine
import CorralTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A fake tree whose agents' directories are made only once the test opens
/// the gate: a launch can be caught halfway through its start.
final class GatedFilesystem: ForwardingCgroupFilesystem {
    let fake: FakeCgroupFilesystem
    var base: any CgroupFilesystem { fake }
    private let opened = Mutex(false)
    private let waiting = Mutex(0)

    init(_ fake: FakeCgroupFilesystem) { self.fake = fake }

    /// Starts waiting at the gate so far.
    var waiters: Int { waiting.withLock { $0 } }
    func open() { opened.withLock { $0 = true } }

    func makeDirectory(_ path: CgroupPath) throws(CgroupError) {
        if path.components.count == EngineHarness.root.components.count + 2 {  // <root>/<group>/<agent>
            waiting.withLock { $0 += 1 }
            while !opened.withLock({ $0 }) { usleep(1000) }
        }
        try fake.makeDirectory(path)
    }
}

@Suite("Launches")
struct LaunchTests {
    static func committedMemory(_ report: CapacityReport) -> Double {
        report.resources.first { $0.resource == .memory }?.committedHard ?? -1
    }

    /// The cgroup and the process of a launch are made off the engine: it
    /// answers meanwhile, the id counts as taken and the limits as committed.
    @Test("a launch is made off the engine: meanwhile it answers, the id is taken and the limits count")
    func launchOffTheEngine() async throws {
        let fake = FakeCgroupFilesystem()
        fake.seed(EngineHarness.root)
        let fs = GatedFilesystem(fake)
        let tree = CgroupTree(fs: fs, root: EngineHarness.root)
        try tree.prepareRoot(selfPID: nil, reservation: nil)
        let store = MemoryStore()
        let engine = Engine(configuration: EngineHarness.quickConfiguration, tree: tree, store: store)
        _ = try await engine.restore()
        let before = Self.committedMemory(await engine.capacity())

        let request = LaunchRequest(id: "s1", group: "standard_agent", command: ["/bin/sleep", "30"])
        let first = Task { try await engine.launch(request) }
        while fs.waiters == 0 { try await Task.sleep(for: .milliseconds(2)) }

        // Halfway: the engine answers other calls.
        let during = Self.committedMemory(await engine.capacity())
        #expect(during > before, "the starting agent's hard limit is committed (\(before) → \(during))")
        let again = await #expect(throws: EngineError.self) { try await engine.launch(request) }
        #expect(again?.code == .conflict)
        #expect(again?.message.contains("starting") == true, "\(again?.message ?? "")")
        #expect(try await engine.list().isEmpty, "not in the table before it runs")

        fs.open()
        let record = try await first.value
        let pid = try #require(record.pid)
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        #expect(record.state == .running)
        #expect(kill(pid, 0) == 0, "the command runs")
        #expect(try store.agent(id: "s1")?.state == .running, "its row is stored before the launch returns")
        #expect(Self.committedMemory(await engine.capacity()) == during, "counted once, now as a live agent")
        #expect(try await engine.status(of: "s1").agent.pid == pid)
    }

    /// A start that fails removes the cgroup and frees the id.
    @Test("a launch whose command cannot start leaves no cgroup and frees its id")
    func failedStartFreesTheID() async throws {
        let harness = try EngineHarness()
        _ = try await harness.start()
        let request = LaunchRequest(
            id: "f1", group: "standard_agent", command: ["/bin/true"], workingDirectory: "/nonexistent/directory")
        await #expect(throws: EngineError.self) { try await harness.engine.launch(request) }
        #expect(harness.fs.value(.procs, at: harness.leaf("standard_agent", "f1")) == nil, "no cgroup left")
        let before = Self.committedMemory(await harness.engine.capacity())
        let fresh = try EngineHarness()
        _ = try await fresh.start()
        #expect(before == Self.committedMemory(await fresh.engine.capacity()), "nothing left committed")
    }
}
