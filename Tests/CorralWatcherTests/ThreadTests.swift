import CorralCgroup
import CorralCore
import Foundation
import Synchronization
import Testing

@testable import CorralWatcher

extension WatcherSuite {
    /// The watcher's and the host monitor's threads, as /proc shows them: named,
    /// asynchronous signals blocked, the watcher's at nice -10 where allowed,
    /// gone once stopped.
    @Suite("watcher and host monitor threads")
    struct ThreadTests {
        let tree: FakeTree

        init() throws {
            tree = try FakeTree()
        }

        @Test("the watcher's thread is corral-watcher, blocks asynchronous signals, runs at nice -10 where allowed, and ends at stop")
        func watcherThread() throws {
            let agent = try tree.makeCgroup("g/a")
            let loopThread = Slot<Int32>()
            let creator = try #require(KernelTask.current.nice)
            let watcher = try CgroupWatcher(filesystem: tree.fs, configuration: .init(samplingInterval: .seconds(60))) { _ in
                if loopThread.get == nil { loopThread.set(KernelTask.currentID) }
            }
            try watcher.watch(agent: "a", path: agent)
            watcher.start()
            tree.set(.memoryEvents, of: agent, tree.memoryEvents(high: 1))
            let tid = try #require(KernelTask.waitFor { loopThread.get })

            #expect(KernelTask(tid).name == "corral-watcher")
            KernelTask(tid).expectAsynchronousSignalsBlocked()
            #expect(
                try #require(KernelTask(tid).nice) == (KernelTask.mayLowerNice(to: WatchLoop.threadNice) ? WatchLoop.threadNice : creator))

            watcher.stop()
            #expect(KernelTask.waitFor { KernelTask(tid).exists ? nil : true } == true, "the thread ended")
        }

        func makeMonitor(report: @escaping HostMonitor.Report) throws -> HostMonitor {
            try HostMonitor(
                fs: tree.fs, root: try tree.makeCgroup("corral"), rootIsHierarchyRoot: false, interval: .milliseconds(10),
                threshold: nil, allocatable: { 1_073_741_824 }, clock: { .zero }, report: report)
        }

        @Test("the host monitor's thread is corral-host, blocks asynchronous signals, and stop joins it")
        func hostMonitorThread() throws {
            let monitorThread = Slot<Int32>()
            let readings = Atomic<Int>(0)
            let creator = try #require(KernelTask.current.nice)
            let monitor = try makeMonitor { _ in
                if monitorThread.get == nil { monitorThread.set(KernelTask.currentID) }
                readings.add(1, ordering: .relaxed)
            }
            monitor.start()
            let tid = try #require(KernelTask.waitFor { monitorThread.get })

            #expect(KernelTask(tid).name == "corral-host")
            KernelTask(tid).expectAsynchronousSignalsBlocked()
            #expect(KernelTask(tid).nice == creator)

            monitor.stop()
            let stoppedAt = readings.load(ordering: .relaxed)
            usleep(100_000)  // ten intervals: a thread that outlived stop() would report now
            #expect(readings.load(ordering: .relaxed) == stoppedAt)
            #expect(KernelTask.waitFor { KernelTask(tid).exists ? nil : true } == true, "the thread ended")
            monitor.stop()
        }

        @Test("the host monitor stopped from its own report ends its thread after that reading")
        func hostMonitorStoppedFromReport() throws {
            let monitorThread = Slot<Int32>()
            let readings = Atomic<Int>(0)
            let slot = Slot<HostMonitor>()
            let monitor = try makeMonitor { _ in
                monitorThread.set(KernelTask.currentID)
                readings.add(1, ordering: .relaxed)
                slot.get?.stop()
            }
            slot.set(monitor)
            monitor.start()
            let tid = try #require(KernelTask.waitFor { monitorThread.get })
            #expect(KernelTask.waitFor { KernelTask(tid).exists ? nil : true } == true, "the thread ended")
            #expect(readings.load(ordering: .relaxed) == 1)
            monitor.stop()
        }
    }
}

/// A thread of this process (a task in /proc/self/task).
private struct KernelTask {
    var id: Int32

    init(_ id: Int32) { self.id = id }

    /// The calling thread's id, from /proc/thread-self ("PID/task/TID").
    static var currentID: Int32 {
        let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? ""
        return link.split(separator: "/").last.flatMap { Int32($0) } ?? -1
    }

    static var current: KernelTask { KernelTask(currentID) }

    private func read(_ file: String) -> String? {
        try? String(contentsOfFile: "/proc/self/task/\(id)/\(file)", encoding: .utf8)
    }

    var exists: Bool { FileManager.default.fileExists(atPath: "/proc/self/task/\(id)") }

    var name: String? { read("comm")?.trimmingCharacters(in: .newlines) }

    /// A field of /proc/self/task/TID/status ("SigBlk", "CapEff").
    func status(_ field: String) -> String? {
        read("status")?.split(separator: "\n").first { $0.hasPrefix(field + ":") }
            .map { $0.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces) }
    }

    /// Field 19 of stat (after the parenthesised name, which may hold spaces).
    var nice: Int32? {
        guard let stat = read("stat"), let end = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        return fields.count > 16 ? Int32(fields[16]) : nil
    }

    func expectAsynchronousSignalsBlocked(sourceLocation: SourceLocation = #_sourceLocation) {
        guard let text = status("SigBlk"), let blocked = UInt64(text, radix: 16) else {
            Issue.record("no SigBlk for task \(id)", sourceLocation: sourceLocation)
            return
        }
        func isBlocked(_ signal: Int32) -> Bool { blocked & (1 << UInt64(signal - 1)) != 0 }
        for signal in [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD, SIGPIPE] {
            #expect(isBlocked(signal), "signal \(signal) is blocked (SigBlk \(text))", sourceLocation: sourceLocation)
        }
        // Faults reach the faulting thread whatever its mask: left unblocked.
        #expect(!isBlocked(SIGSEGV), "SIGSEGV is not blocked (SigBlk \(text))", sourceLocation: sourceLocation)
    }

    /// Whether this process may set a thread's nice value to `nice`: CAP_SYS_NICE, or RLIMIT_NICE.
    static func mayLowerNice(to nice: Int32) -> Bool {
        let capabilities = current.status("CapEff").flatMap { UInt64($0, radix: 16) } ?? 0
        if capabilities & (1 << 23) != 0 { return true }  // CAP_SYS_NICE
        var limit = rlimit()
        guard getrlimit(Int32(__RLIMIT_NICE.rawValue), &limit) == 0 else { return false }
        return limit.rlim_cur >= rlim_t(20 - nice)
    }

    /// The first non-nil `value()` within `timeout`.
    static func waitFor<Value>(timeout: Duration = .seconds(2), _ value: () -> Value?) -> Value? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if let found = value() { return found }
            if ContinuousClock.now >= deadline { return nil }
            usleep(1000)
        }
    }
}
