import CorralCgroup
import CorralCore
import CorralTestSupport
import Foundation
import SystemPackage
import Testing

/// Freeze, thaw and kill through Corral's cgroup layer act on every process
/// of an agent, proven by cpu.stat and cgroup.events read from the kernel.
@Suite("e2e: freeze, thaw and kill act on the whole tree", .serialized, .enabled(if: E2E.enabled))
struct TreeTests {
    @Test func freezeThawAndKillTheWholeTree() throws {
        let (corral, stress) = try E2E.binaries()
        let rootName = "corral-e2e-tree"
        let root = E2E.root("tree")
        let running = try Subprocess.start(
            corral, ["run", "--json", "--name", "spinners", "--cpu", "100", "--cgroup-root", root, "--", stress, "spintree", "3", "120"])
        defer { running.signal(SIGKILL) }
        let fs = try DirectoryCgroupFilesystem(anchorPath: E2E.mount)
        let tree = CgroupTree(fs: fs, root: CgroupPath([rootName]))
        let leaf = tree.agentPath(group: "standard_agent", agent: "spinners")
        // main process + 3 spinners
        #expect(E2E.eventually { (try? tree.allProcesses(leaf).count) == 4 })
        let pids = try tree.allProcesses(leaf)

        func usage() throws -> Int64 { CPUStat(parsing: try fs.read(.cpuStat, of: leaf)).usageUsec }
        func delta(over seconds: Double) throws -> Int64 {
            let before = try usage()
            usleep(UInt32(seconds * 1_000_000))
            return try usage() - before
        }

        let running1 = try delta(over: 1)
        let confirmed = try tree.freeze(leaf)
        #expect(CgroupEvents(parsing: try fs.read(.events, of: leaf)).frozen)
        let frozen = try delta(over: 1)
        try tree.thaw(leaf)
        #expect(!CgroupEvents(parsing: try fs.read(.events, of: leaf)).frozen)
        let thawed = try delta(over: 1)
        E2E.report("freeze: confirmed in \(confirmed); cpu use per second running \(running1) us, frozen \(frozen) us, thawed \(thawed) us")
        #expect(running1 > 200_000, "three spinners at cpu.max 100% use a lot of CPU")
        #expect(frozen < 20_000, "a frozen tree uses (almost) no CPU")
        #expect(thawed > 200_000, "thawing resumes every spinner")

        // A frozen parent holds the leaf frozen: the thaw says so at once
        // instead of waiting, and the leaf runs again once the parent thaws.
        let group = try #require(leaf.parent)
        try tree.freeze(group)
        let start = ContinuousClock.now
        let refused = #expect(throws: CgroupError.self) { try tree.thaw(leaf) }
        let refusedAfter = ContinuousClock.now - start
        #expect(refused?.code == .busy, "\(String(describing: refused))")
        #expect(refusedAfter < .milliseconds(500), "no wait: \(refusedAfter)")
        #expect(CgroupEvents(parsing: try fs.read(.events, of: leaf)).frozen)
        try tree.thaw(group)
        #expect(!CgroupEvents(parsing: try fs.read(.events, of: leaf)).frozen)

        let method = try tree.kill(leaf)
        #expect(method == .cgroupKill)
        let result = running.wait(timeout: 60)
        #expect(pids.allSatisfy { !E2E.alive($0) }, "every process of the tree is gone")
        let run = try #require(try? CorralJSON.decodeLastLine(RunSummary.self, from: result.stdout), "\(result)")
        #expect(run.termination == .signaled(signal: SIGKILL))
        #expect(result.exitStatus == 137)
        #expect(!run.oomKilled)
        #expect(!E2E.exists(root))
    }

    @Test func killFallbackFreezesAndSignalsEveryProcess() throws {
        let (corral, stress) = try E2E.binaries()
        let rootName = "corral-e2e-killfallback"
        let root = E2E.root("killfallback")
        let running = try Subprocess.start(
            corral, ["run", "--json", "--name", "sleepers", "--cgroup-root", root, "--", stress, "tree", "5", "120"])
        defer { running.signal(SIGKILL) }
        let fs = try DirectoryCgroupFilesystem(anchorPath: E2E.mount)
        let tree = CgroupTree(fs: fs, root: CgroupPath([rootName]))
        let leaf = tree.agentPath(group: "standard_agent", agent: "sleepers")
        #expect(E2E.eventually { (try? tree.allProcesses(leaf).count) == 6 })
        // The path kernels before 5.14 take: freeze, SIGKILL each pid, thaw.
        let fallback = FallbackFilesystem(directory: fs)
        let method = try CgroupTree(fs: fallback, root: CgroupPath([rootName])).kill(leaf)
        #expect(method == .freezeAndSignal(processes: 6))
        #expect(try tree.waitUntilEmpty(leaf, timeout: .seconds(10)))
        let result = running.wait(timeout: 60)
        #expect(result.exitStatus == 137, "\(result)")
        #expect(!E2E.exists(root))
    }
}

/// The real filesystem, pretending cgroup.kill does not exist (kernels before 5.14).
struct FallbackFilesystem: ForwardingCgroupFilesystem {
    let directory: DirectoryCgroupFilesystem
    var base: any CgroupFilesystem { directory }

    func contains(_ file: CgroupFile, in path: CgroupPath) -> Bool { file == .kill ? false : directory.contains(file, in: path) }
}
