import CorralCgroup
import CorralCore
import CorralTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Acting on a cgroup: freeze, thaw, kill, remove, sample.
@Suite struct CgroupTreeActionTests {
    let leaf = Harness.leaf
    let worker = Harness.leaf.appending("worker")
    let leafName = "corral/lightweight_agent/crawler-1"

    /// A prepared tree with processes 100 and 101 in the leaf and 102 in a child of it.
    func populated(missingFiles: Set<CgroupFile> = [], deadPIDs: Set<Int32> = []) -> Harness {
        let h = Harness.prepared(missingFiles: missingFiles, deadPIDs: deadPIDs)
        h.fs.seed(leaf, procs: [100, 101])
        h.fs.seed(worker, procs: [102])
        return h
    }

    // MARK: freeze / thaw

    @Test func freezeWaitsForFrozen() throws {
        let h = populated()
        try h.tree.freeze(leaf, timeout: .milliseconds(300))
        #expect(h.fs.writes == [.write(leafName, .freeze, "1")])
        #expect(h.fs.waitTimeouts == [.milliseconds(300)])
        #expect(h.fs.value(.events, at: leaf) == "populated 1\nfrozen 1")
    }

    @Test func freezeThatNeverCompletesIsRolledBack() throws {
        let h = populated()
        h.fs.freezeCompletes = false
        let error = #expect(throws: CgroupError.self) { try h.tree.freeze(leaf, timeout: .milliseconds(50)) }
        #expect(error?.code == .timedOut)
        #expect(error?.path == "/sys/fs/cgroup/\(leafName)/cgroup.events")
        #expect(error?.message.contains("/sys/fs/cgroup/\(leafName) did not report 'frozen 1'") == true)
        #expect(error?.message.contains("rolled back") == true)
        #expect(h.fs.writes == [.write(leafName, .freeze, "1"), .write(leafName, .freeze, "0")])
        #expect(h.fs.value(.freeze, at: leaf) == "0")
    }

    @Test func freezeIsRolledBackWhenWaitingFails() throws {
        let h = populated()
        h.fs.inject(.resourceTemporarilyUnavailable, on: .wait, path: leaf, file: .events)
        let error = #expect(throws: CgroupError.self) { try h.tree.freeze(leaf) }
        #expect(error?.operation == .wait)
        #expect(h.fs.writes == [.write(leafName, .freeze, "1"), .write(leafName, .freeze, "0")])
        #expect(h.fs.value(.freeze, at: leaf) == "0")
    }

    @Test func freezeThatCannotBeWrittenThrows() throws {
        let h = populated()
        h.fs.inject(.permissionDenied, on: .write, path: leaf, file: .freeze)
        let error = #expect(throws: CgroupError.self) { try h.tree.freeze(leaf) }
        #expect(error?.code == .permissionDenied)
        #expect(h.fs.writes == [])
    }

    /// The kernel clears `frozen` within the write of 0: nothing to wait for.
    @Test func thawWritesZeroAndDoesNotWait() throws {
        let h = populated()
        try h.tree.freeze(leaf)
        try h.tree.thaw(leaf)
        #expect(h.fs.writes == [.write(leafName, .freeze, "1"), .write(leafName, .freeze, "0")])
        #expect(h.fs.waitTimeouts == [.seconds(2)])
        #expect(h.fs.value(.events, at: leaf) == "populated 1\nfrozen 0")
    }

    /// A frozen parent keeps the leaf frozen whatever its own cgroup.freeze says.
    @Test func thawUnderAFrozenParentFailsAtOnce() throws {
        let h = populated()
        try h.tree.freeze(leaf)
        try h.tree.freeze(leaf.parent!)
        let error = #expect(throws: CgroupError.self) { try h.tree.thaw(leaf) }
        #expect(error?.code == .busy)
        #expect(error?.message.contains("still reports 'frozen 1'") == true)
        #expect(error?.fix?.contains("cgroup.freeze") == true)
        #expect(h.fs.waitTimeouts == [.seconds(2), .seconds(2)])
    }

    // MARK: kill

    @Test func killUsesCgroupKillWhenPresent() throws {
        let h = populated()
        #expect(try h.tree.kill(leaf) == .cgroupKill)
        #expect(h.fs.writes == [.write(leafName, .kill, "1")])
        #expect(h.fs.killed.sorted() == [100, 101, 102])
        #expect(h.signals.all.isEmpty)
        #expect(h.fs.value(.events, at: leaf) == "populated 0\nfrozen 0")
    }

    /// Newest first: children before the parents that forked them.
    @Test func killWithoutCgroupKillFreezesSignalsEveryPidAndThaws() throws {
        let h = populated(missingFiles: [.kill])
        #expect(try h.tree.kill(leaf) == .freezeAndSignal(processes: 3))
        #expect(
            h.signals.all == [
                SentSignal(pid: 102, signal: SIGKILL, whileFrozen: true),
                SentSignal(pid: 101, signal: SIGKILL, whileFrozen: true),
                SentSignal(pid: 100, signal: SIGKILL, whileFrozen: true),
            ])
        #expect(h.fs.writes == [.write(leafName, .freeze, "1"), .write(leafName, .freeze, "0")])
    }

    @Test func killFallsBackWhenCgroupKillIsNotSupported() throws {
        // Threaded cgroups refuse cgroup.kill with EOPNOTSUPP.
        let h = populated()
        h.fs.inject(.notSupported, on: .write, path: leaf, file: .kill)
        #expect(try h.tree.kill(leaf) == .freezeAndSignal(processes: 3))
        #expect(h.signals.all.map(\.pid) == [102, 101, 100])
        #expect(
            h.fs.log == [
                .failed(.notSupported, .write, leafName, .kill),
                .write(leafName, .freeze, "1"),
                .write(leafName, .freeze, "0"),
            ])
    }

    @Test func killCountsOnlyProcessesThatWereSignalled() throws {
        let h = populated(missingFiles: [.kill], deadPIDs: [101])
        #expect(try h.tree.kill(leaf) == .freezeAndSignal(processes: 2))
        #expect(h.signals.all.map(\.pid) == [102, 101, 100])
    }

    @Test func killSignalsEvenWhenTheFreezeTimesOut() throws {
        let h = populated(missingFiles: [.kill])
        h.fs.freezeCompletes = false
        #expect(try h.tree.kill(leaf) == .freezeAndSignal(processes: 3))
        #expect(h.signals.all.map(\.pid) == [102, 101, 100])
        // The timed-out freeze was rolled back once, and not thawed again.
        #expect(h.fs.writes == [.write(leafName, .freeze, "1"), .write(leafName, .freeze, "0")])
    }

    @Test func killSignalsOnKernelsWithoutTheFreezer() throws {
        // Before 5.2 there is neither cgroup.freeze nor cgroup.kill.
        let h = populated(missingFiles: [.kill, .freeze])
        #expect(try h.tree.kill(leaf) == .freezeAndSignal(processes: 3))
        #expect(h.signals.all.map(\.pid) == [102, 101, 100])
        #expect(h.fs.writes == [])
    }

    @Test func killThawsWhenListingProcessesFails() throws {
        let h = populated(missingFiles: [.kill])
        h.fs.inject(.permissionDenied, on: .list, path: leaf)
        let error = #expect(throws: CgroupError.self) { try h.tree.kill(leaf) }
        #expect(error?.code == .permissionDenied)
        #expect(h.fs.writes == [.write(leafName, .freeze, "1"), .write(leafName, .freeze, "0")])
        #expect(h.fs.value(.freeze, at: leaf) == "0")
    }

    @Test func allProcessesRecursesIntoChildren() throws {
        let h = populated()
        h.fs.seed(worker.appending("deeper"), procs: [103])
        #expect(try h.tree.allProcesses(leaf) == [100, 101, 102, 103])
        #expect(try h.tree.allProcesses(worker) == [102, 103])
    }

    @Test func waitUntilEmpty() throws {
        let h = populated()
        #expect(try !h.tree.waitUntilEmpty(leaf, timeout: .milliseconds(10)))
        try h.tree.kill(leaf)
        #expect(try h.tree.waitUntilEmpty(leaf, timeout: .milliseconds(10)))
    }

    /// Its supervisor (corral run) may remove the cgroup as soon as the last
    /// process is gone: reading cgroup.events then fails with ENODEV.
    @Test func aCgroupRemovedWhileWaitingIsEmpty() throws {
        let h = populated()
        h.fs.inject(.operationNotSupportedByDevice, on: .wait, path: leaf)
        #expect(try h.tree.waitUntilEmpty(leaf, timeout: .milliseconds(10)))
        h.fs.inject(.permissionDenied, on: .wait, path: leaf)
        #expect(throws: CgroupError.self) { try h.tree.waitUntilEmpty(leaf, timeout: .milliseconds(10)) }
    }

    // MARK: remove

    @Test func removeRetriesBusyWithDoublingSleepsAndGivesUpAfterTenTries() throws {
        let h = Harness.prepared()
        h.fs.seed(leaf)
        h.fs.inject(.resourceBusy, on: .removeDirectory, path: leaf, times: nil)
        let error = #expect(throws: CgroupError.self) { try h.tree.remove(leaf) }
        #expect(error?.code == .busy)
        #expect(error?.message.contains("/sys/fs/cgroup/\(leafName)") == true)
        #expect(h.sleeps.all == [1, 2, 4, 8, 16, 32, 64, 128, 256].map { Duration.milliseconds($0) })
        #expect(h.fs.log.count == 10)
        #expect(try h.fs.exists(leaf))
    }

    @Test func removeOfACgroupWithProcessesIsBusy() throws {
        let h = populated()
        let error = #expect(throws: CgroupError.self) { try h.tree.remove(worker, attempts: 3) }
        #expect(error?.code == .busy)
        #expect(error?.fix?.contains("cgroup.kill") == true)
        #expect(h.sleeps.all == [.milliseconds(1), .milliseconds(2)])
        #expect(h.fs.log == Array(repeating: .failed(.resourceBusy, .removeDirectory, leafName + "/worker", nil), count: 3))
    }

    @Test func removeSucceedsOnceTheDyingTasksAreGone() throws {
        let h = Harness.prepared()
        h.fs.seed(leaf)
        h.fs.inject(.resourceBusy, on: .removeDirectory, path: leaf, times: 3)
        try h.tree.remove(leaf)
        #expect(h.sleeps.all == [.milliseconds(1), .milliseconds(2), .milliseconds(4)])
        #expect(try !h.fs.exists(leaf))
        #expect(h.fs.log.last == .rmdir(leafName))
    }

    @Test func removeOfAMissingCgroupSucceeds() throws {
        let h = Harness.prepared()
        try h.tree.remove(leaf)
        h.fs.seed(leaf)
        h.fs.inject(.noSuchFileOrDirectory, on: .removeDirectory, path: leaf)
        try h.tree.remove(leaf)
        #expect(h.sleeps.all.isEmpty)
    }

    @Test func removeDoesNotRetryOtherErrors() throws {
        let h = Harness.prepared()
        h.fs.seed(leaf)
        h.fs.inject(.permissionDenied, on: .removeDirectory, path: leaf, times: nil)
        let error = #expect(throws: CgroupError.self) { try h.tree.remove(leaf) }
        #expect(error?.code == .permissionDenied)
        #expect(h.sleeps.all.isEmpty)
        #expect(h.fs.log.count == 1)
    }

    @Test func removeIfUnused() throws {
        let h = populated()
        #expect(!h.tree.removeIfUnused(Harness.group))
        #expect(try h.fs.exists(Harness.group))
        try h.tree.kill(leaf)
        try h.tree.remove(worker)
        try h.tree.remove(leaf)
        #expect(h.tree.removeIfUnused(Harness.group))
        #expect(try !h.fs.exists(Harness.group))
        #expect(h.tree.removeIfUnused(Harness.group))
        h.fs.seed(Harness.group)
        h.fs.inject(.permissionDenied, on: .removeDirectory, path: Harness.group)
        #expect(!h.tree.removeIfUnused(Harness.group))
    }

    // MARK: sample

    @Test func sampleReadsEveryFile() throws {
        let h = populated()
        h.fs.set(.memoryCurrent, "12345678", at: leaf)
        h.fs.set(.memoryPeak, "23456789", at: leaf)
        h.fs.set(.memoryEvents, "low 0\nhigh 7\nmax 3\noom 1\noom_kill 1\noom_group_kill 1", at: leaf)
        h.fs.set(
            .cpuStat,
            "usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\nnr_periods 10\nnr_throttled 2\nthrottled_usec 300\nnr_bursts 0\nburst_usec 0",
            at: leaf)
        h.fs.set(.pidsPeak, "9", at: leaf)
        h.fs.set(.pidsEvents, "max 4", at: leaf)
        h.fs.set(.memoryStat, "anon 1048576\nfile 4096\nkernel 8192\nsock 0\nshmem 0\npgfault 77\nnew_field 5", at: leaf)
        let sample = try h.tree.sample(leaf)
        #expect(sample.memoryStat?.anon == 1_048_576)
        #expect(sample.memoryStat?.kernel == 8192)
        #expect(sample.memoryStat?.pageFaults == 77)
        #expect(sample.memoryStat?["new_field"] == 5)
        #expect(sample.memoryCurrent == 12_345_678)
        #expect(sample.memoryPeak == 23_456_789)
        #expect(sample.memoryEvents == MemoryEvents(high: 7, max: 3, oom: 1, oomKill: 1, oomGroupKill: 1))
        #expect(sample.cpu.usageUsec == 5000)
        #expect(sample.cpu.nrThrottled == 2)
        #expect(sample.pidsCurrent == 3)
        #expect(sample.pidsPeak == 9)
        #expect(sample.pidsEvents.max == 4)
        #expect(sample.events == CgroupEvents(populated: true, frozen: false))
    }

    @Test func theFinalSampleReadsWhatASummaryShowsAndNothingElse() throws {
        let h = populated()
        h.fs.set(.memoryPeak, "23456789", at: leaf)
        h.fs.set(.memoryEvents, "low 0\nhigh 7\nmax 3\noom 1\noom_kill 1\noom_group_kill 1", at: leaf)
        h.fs.set(.cpuStat, "usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\nnr_periods 10\nnr_throttled 2\nthrottled_usec 300", at: leaf)
        h.fs.set(.pidsPeak, "9", at: leaf)
        h.fs.set(.pidsEvents, "max 4", at: leaf)
        let sample = try h.tree.finalSample(leaf)
        #expect(sample.memoryPeak == 23_456_789)
        #expect(sample.memoryEvents == MemoryEvents(high: 7, max: 3, oom: 1, oomKill: 1, oomGroupKill: 1))
        #expect(sample.cpu.usageUsec == 5000)
        #expect(sample.cpu.throttledUsec == 300)
        #expect(sample.pidsPeak == 9)
        #expect(sample.pidsEvents.max == 4)
        // Not read: the current values, memory.stat, the pressure files.
        #expect(sample.memoryCurrent == nil)
        #expect(sample.memoryStat == nil)
        #expect(sample.pidsCurrent == nil)
        #expect(sample.pressure == nil)
    }

    @Test func theFinalSampleWithoutPeakFilesIsTheWholeSample() throws {
        let h = populated(missingFiles: [.memoryPeak, .pidsPeak])
        let sample = try h.tree.finalSample(leaf)
        #expect(sample.memoryPeak == nil)
        #expect(sample.memoryCurrent == 0)
        #expect(sample.pidsCurrent == 3)
        #expect(sample.memoryStat != nil)
    }

    @Test func sampleOnAnOlderKernelLeavesMissingFilesNil() throws {
        let h = populated(missingFiles: [.memoryPeak, .pidsPeak])
        let sample = try h.tree.sample(leaf)
        #expect(sample.memoryStat != nil)
        #expect(sample.memoryPeak == nil)
        #expect(sample.pidsPeak == nil)
        #expect(sample.memoryCurrent == 0)
        #expect(sample.pidsCurrent == 3)
    }

    @Test func sampleWithoutControllersStillReadsCoreFiles() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(Harness.root, procs: [5])
        let h = Harness(fs: fs)
        let sample = try h.tree.sample(Harness.root)
        #expect(sample.memoryCurrent == nil)
        #expect(sample.memoryStat == nil)
        #expect(sample.pidsCurrent == nil)
        #expect(sample.cpu == CPUStat())
        #expect(sample.events.populated)
    }

    @Test func sampleOfARemovedCgroupThrows() throws {
        let h = populated()
        h.fs.inject(.operationNotSupportedByDevice, on: .read, path: leaf, file: .events)
        let error = #expect(throws: CgroupError.self) { try h.tree.sample(leaf) }
        #expect(error?.code == .removed)
    }
}
