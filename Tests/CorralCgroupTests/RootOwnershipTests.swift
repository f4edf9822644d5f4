import CorralCgroup
import CorralCore
import CorralTestSupport
import Foundation
import Synchronization
import SystemPackage
import Testing

/// The fake cgroupfs plus the creation mark a real cgroupfs keeps as an
/// extended attribute: what a second Corral process sees.
final class MarkingFilesystem: ForwardingCgroupFilesystem {
    let fake: FakeCgroupFilesystem
    var base: any CgroupFilesystem { fake }
    private let marked = Mutex<Set<CgroupPath>>([])

    init(_ fake: FakeCgroupFilesystem) { self.fake = fake }

    func markCreatedByCorral(_ path: CgroupPath) throws(CgroupError) { _ = marked.withLock { $0.insert(path) } }
    func isMarkedCreatedByCorral(_ path: CgroupPath) -> Bool {
        // rmdir drops a directory's attributes with it.
        (try? fake.exists(path)) == true && marked.withLock { $0.contains(path) }
    }

    func removeDirectory(_ path: CgroupPath) throws(CgroupError) {
        try fake.removeDirectory(path)
        _ = marked.withLock { $0.remove(path) }
    }
}

/// A run may only rewrite and remove a root that is Corral's own: created
/// by this process, or marked by the Corral process that created it. An
/// existing --cgroup-root (the user's, or a systemd Delegate=yes unit's)
/// keeps its limits and stays.
@Suite struct RootOwnershipTests {
    let capacity = HostCapacity(memoryBytes: 8_000_000_000, cpus: 4, pidMax: 100_000)
    var reservation: CgroupSettings { SystemReservation.seed.rootSettings(for: capacity) }

    func tree(_ fs: any CgroupFilesystem) -> CgroupTree {
        CgroupTree(fs: fs, root: Harness.root, sleep: { _ in }, signal: { _, _ in 0 })
    }

    /// Before: the reservation overwrote the user's memory.max and the run's
    /// clean-up removed the directory the user had made.
    @Test func aUsersRootKeepsItsLimitsAndIsNeverRemoved() throws {
        let fs = FakeCgroupFilesystem()
        fs.seed(.anchor, subtreeControl: ["memory", "cpu", "pids"])
        fs.seed(Harness.root)
        fs.set(.memoryMax, "5000000000", at: Harness.root)
        let tree = tree(fs)
        fs.clearLog()
        let report = try tree.prepareRoot(selfPID: nil, reservation: reservation)
        #expect(!report.createdRoot)
        #expect(!report.rootIsCorrals)
        #expect(!report.reservationApplied)
        #expect(report.keptExistingLimits)
        #expect(fs.value(.memoryMax, at: Harness.root) == "5000000000")
        #expect(fs.writes.allSatisfy { if case .write(_, .subtreeControl, _) = $0 { true } else { false } }, "\(fs.writes)")
        #expect(!tree.ownsRoot)
        #expect(!tree.removeRootIfUnused())
        #expect(try fs.exists(Harness.root))
    }

    @Test func aRootCreatedHereGetsTheReservationAndGoesWhenEmpty() throws {
        let fs = FakeCgroupFilesystem()
        let tree = tree(fs)
        let report = try tree.prepareRoot(selfPID: nil, reservation: reservation)
        #expect(report.createdRoot && report.rootIsCorrals && report.reservationApplied && !report.keptExistingLimits)
        #expect(fs.value(.memoryMax, at: Harness.root) == "6000000000")
        #expect(tree.ownsRoot)
        // A copy of the tree (the runner's) knows it too.
        let copy = tree
        try copy.prepareGroup(.lightweight)
        #expect(!copy.removeRootIfUnused(), "a group is still there")
        #expect(try fs.exists(Harness.root))
        #expect(copy.removeIfUnused(Harness.group))
        #expect(copy.removeRootIfUnused())
        #expect(try !fs.exists(Harness.root))
    }

    /// Two runs: the first creates the root, the second joins it and ends
    /// last. With the creation mark the last one removes the root.
    @Test func theMarkLetsTheLastCorralProcessRemoveTheRoot() throws {
        let fs = MarkingFilesystem(FakeCgroupFilesystem())
        let first = tree(fs)
        let second = tree(fs)
        try first.prepareRoot(selfPID: nil, reservation: reservation)
        #expect(fs.isMarkedCreatedByCorral(Harness.root))
        fs.fake.set(.memoryMax, "1", at: Harness.root)
        let report = try second.prepareRoot(selfPID: nil, reservation: reservation)
        #expect(!report.createdRoot)
        #expect(report.rootIsCorrals)
        #expect(report.reservationApplied, "Corral's own root gets the current reservation")
        #expect(fs.fake.value(.memoryMax, at: Harness.root) == "6000000000")
        try second.prepareGroup(.standard)
        #expect(!first.removeRootIfUnused())
        #expect(second.removeIfUnused(second.groupPath(QuotaGroup.standard.name)))
        #expect(second.removeRootIfUnused())
        #expect(try !fs.exists(Harness.root))
    }

    /// Without extended attributes only the creating process knows: a
    /// joining run leaves the root (and its limits) alone.
    @Test func withoutTheMarkOnlyTheCreatorRemovesTheRoot() throws {
        let fs = FakeCgroupFilesystem()
        let first = tree(fs)
        let second = tree(fs)
        try first.prepareRoot(selfPID: nil, reservation: reservation)
        let report = try second.prepareRoot(selfPID: nil, reservation: reservation)
        #expect(!report.rootIsCorrals && report.keptExistingLimits)
        #expect(!second.removeRootIfUnused())
        #expect(try fs.exists(Harness.root))
        #expect(first.removeRootIfUnused())
        #expect(try !fs.exists(Harness.root))
    }

    @Test func theHierarchyRootIsNeverOwnedOrRemoved() throws {
        let fs = MarkingFilesystem(FakeCgroupFilesystem())
        let tree = CgroupTree(fs: fs, root: .anchor, rootIsHierarchyRoot: true, sleep: { _ in }, signal: { _, _ in 0 })
        let report = try tree.prepareRoot(selfPID: nil, reservation: reservation)
        #expect(!report.rootIsCorrals && !report.reservationApplied && !report.keptExistingLimits)
        #expect(!tree.removeRootIfUnused())
    }

    /// A root created here whose preparation fails is removed again, and no
    /// longer counts as this process's.
    @Test func aFailedPreparationForgetsTheRoot() throws {
        let fs = FakeCgroupFilesystem()
        fs.inject(.permissionDenied, on: .write, path: Harness.root, file: .subtreeControl)
        let tree = tree(fs)
        #expect(throws: CgroupError.self) { try tree.prepareRoot(selfPID: nil, reservation: reservation) }
        #expect(try !fs.exists(Harness.root))
        #expect(!tree.ownsRoot)
        // A user's directory of the same name made afterwards is not Corral's.
        fs.seed(Harness.root)
        #expect(!tree.ownsRoot)
        #expect(!tree.removeRootIfUnused())
    }
}
