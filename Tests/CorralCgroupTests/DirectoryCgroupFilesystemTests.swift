import CorralCore
import Foundation
import SystemPackage
import Testing

@testable import CorralCgroup

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh directory under /tmp; `remove()` it in a `defer`. Layout:
///
///     <base>/tree/        the filesystem's anchor
///     <base>/outside/     a sibling that nothing may reach from the tree
struct TemporaryTree {
    let base: String
    var tree: String { base + "/tree" }
    var outside: String { base + "/outside" }

    init() throws {
        var template = Array("/tmp/corral-cgroup-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let made else { throw Errno(rawValue: errno) }
        base = String(cString: made)
        try FileManager.default.createDirectory(atPath: base + "/tree", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: base + "/outside/sub", withIntermediateDirectories: true)
        try put("outside", .procs, "1\n")
        try put("outside", .memoryMax, "max\n")
    }

    func remove() { try? FileManager.default.removeItem(atPath: base) }

    /// Creates (or overwrites) `file` in `directory` (relative to base).
    func put(_ directory: String, _ file: CgroupFile, _ content: String) throws {
        try Data(content.utf8).write(to: URL(fileURLWithPath: "\(base)/\(directory)/\(file.rawValue)"))
    }

    func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: "\(base)/\(relative)", withIntermediateDirectories: true)
    }

    func symlink(_ relative: String, to destination: String) throws {
        try FileManager.default.createSymbolicLink(atPath: "\(base)/\(relative)", withDestinationPath: destination)
    }

    func content(_ relative: String) -> String? {
        try? String(contentsOfFile: "\(base)/\(relative)", encoding: .utf8)
    }

    func exists(_ relative: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(base)/\(relative)")
    }
}

/// Generic directory behaviour of the real filesystem type, on /tmp (not
/// cgroupfs): the kernel's cgroup rules are the fake's business. Tests that
/// take `walk` run twice: with openat2, and with the component-by-component
/// walk of kernels before 5.6.
@Suite struct DirectoryCgroupFilesystemTests {
    let a = CgroupPath(["a"])
    let ab = CgroupPath(["a", "b"])

    static let modes = [false, true]

    func filesystem(_ path: String, walk: Bool) throws -> DirectoryCgroupFilesystem {
        try DirectoryCgroupFilesystem(anchorPath: path, resolution: walk ? .walk : .openat2)
    }

    /// The one-openat resolution, which Corral only chooses on a cgroup2 anchor (no symlinks
    /// there), forced on /tmp for the operations that do not involve a symlink.
    func direct(_ path: String) throws -> DirectoryCgroupFilesystem {
        try DirectoryCgroupFilesystem(anchorPath: path, resolution: .direct)
    }

    /// What the filesystem chooses by itself on /tmp: openat2 where this kernel allows it,
    /// and never `direct` (not a cgroup2 anchor). On a cgroup2 anchor under systemd's
    /// RestrictSUIDSGID= the VM's systemd suite sees `direct` at work.
    @Test func directIsChosenOnlyForACgroup2Anchor() throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        let chosen = try DirectoryCgroupFilesystem(anchorPath: temp.tree).resolution
        #expect(chosen == .openat2 || chosen == .walk)
    }

    @Test func theDirectResolutionOpensReadsAndWrites() throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        let fs = try direct(temp.tree)
        #expect(try fs.exists(.anchor))
        try fs.makeDirectory(a)
        try fs.makeDirectory(ab)
        #expect(try fs.exists(ab))
        #expect(try !fs.exists(a.appending("nope")))
        try temp.put("tree/a/b", .procs, "")
        let procs = try fs.openForWriting(.procs, of: ab)
        #expect(try procs.writeAll("4242".utf8) == 4)
        try procs.close()
        #expect(temp.content("tree/a/b/cgroup.procs") == "4242")
        let noFile = #expect(throws: CgroupError.self) { try fs.read(.events, of: ab) }
        #expect(noFile?.code == .notFound)
        #expect(noFile?.path == "\(temp.tree)/a/b/cgroup.events")
        // The last component is never followed.
        try temp.symlink("tree/a/b/cgroup.events", to: temp.outside)
        #expect(throws: CgroupError.self) { try fs.read(.events, of: ab) }
        try fs.makeDirectory(a.appending("c"))
        try fs.removeDirectory(a.appending("c"))
        #expect(!temp.exists("tree/a/c"))
    }

    /// The creation mark is a real extended attribute (/tmp's filesystem
    /// keeps user.* attributes, as cgroupfs does from 5.7 on): a second
    /// filesystem object, as in another Corral process, sees it.
    @Test(arguments: modes)
    func theCreationMarkIsAnExtendedAttribute(walk: Bool) throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        let fs = try filesystem(temp.tree, walk: walk)
        try fs.makeDirectory(a)
        try fs.makeDirectory(CgroupPath(["user-made"]))
        #expect(!fs.isMarkedCreatedByCorral(a))
        try fs.markCreatedByCorral(a)
        #expect(fs.isMarkedCreatedByCorral(a))
        let other = try filesystem(temp.tree, walk: walk)
        #expect(other.isMarkedCreatedByCorral(a))
        #expect(!other.isMarkedCreatedByCorral(CgroupPath(["user-made"])))
        #expect(!other.isMarkedCreatedByCorral(CgroupPath(["missing"])))
        var value = [UInt8](repeating: 0, count: 4)
        #expect(getxattrForTest(temp.tree + "/a", DirectoryCgroupFilesystem.creationMark, &value) == 1)
        #expect(value[0] == UInt8(ascii: "1"))
        // A mark cannot be set on a path outside the anchor.
        try temp.symlink("tree/escape", to: temp.outside)
        #expect(throws: CgroupError.self) { try fs.markCreatedByCorral(CgroupPath(["escape"])) }
    }

    @Test(arguments: modes)
    func directoriesFilesAndChildren(walk: Bool) throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        let fs = try filesystem(temp.tree + "/", walk: walk)
        #expect(fs.anchorPath == temp.tree)
        #expect(fs.absolutePath(.anchor) == temp.tree)
        #expect(fs.absolutePath(ab) == temp.tree + "/a/b")
        #expect(fs.anchorFilesystem != .cgroup2)

        #expect(try fs.exists(.anchor))
        #expect(try !fs.exists(a))
        try fs.makeDirectory(a)
        try fs.makeDirectory(ab)
        try fs.makeDirectory(a.appending("c"))
        #expect(try fs.exists(ab))
        #expect(temp.exists("tree/a/b"))

        // Only directories are children; files are not.
        try temp.put("tree/a", .procs, "12\n34\n")
        try temp.put("tree/a", .memoryMax, "max\n")
        #expect(try fs.children(of: .anchor) == ["a"])
        #expect(try fs.children(of: a) == ["b", "c"])
        #expect(try fs.children(of: ab) == [])

        #expect(fs.contains(.procs, in: a))
        #expect(!fs.contains(.kill, in: a))
        #expect(try fs.read(.procs, of: a) == "12\n34\n")
        try fs.write("100000000", to: .memoryMax, of: a)
        #expect(try fs.read(.memoryMax, of: a) == "100000000")
        #expect(temp.content("tree/a/memory.max") == "100000000")

        try fs.removeDirectory(ab)
        #expect(try !fs.exists(ab))
        #expect(try fs.children(of: a) == ["c"])
    }

    @Test(arguments: modes)
    func errorsOfPlainDirectoryOperations(walk: Bool) throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        let fs = try filesystem(temp.tree, walk: walk)
        try fs.makeDirectory(a)

        let exists = #expect(throws: CgroupError.self) { try fs.makeDirectory(a) }
        #expect(exists?.code == .alreadyExists)
        #expect(exists?.message == "\(temp.tree)/a already exists")
        #expect(exists?.errno == .fileExists)

        let noParent = #expect(throws: CgroupError.self) { try fs.makeDirectory(CgroupPath(["x", "y"])) }
        #expect(noParent?.code == .notFound)
        #expect(noParent?.message.contains("\(temp.tree)/x") == true)

        let missing = #expect(throws: CgroupError.self) { try fs.removeDirectory(ab) }
        #expect(missing?.code == .notFound)

        let noFile = #expect(throws: CgroupError.self) { try fs.read(.events, of: a) }
        #expect(noFile?.code == .notFound)
        #expect(noFile?.path == "\(temp.tree)/a/cgroup.events")

        // No O_CREAT: a missing controller file is a missing controller.
        let noController = #expect(throws: CgroupError.self) { try fs.write("1", to: .memoryOOMGroup, of: a) }
        #expect(noController?.code == .controllerUnavailable)
        #expect(noController?.message.contains("'1'") == true)
        #expect(!temp.exists("tree/a/memory.oom.group"))

        let anchorMkdir = #expect(throws: CgroupError.self) { try fs.makeDirectory(.anchor) }
        #expect(anchorMkdir?.code == .alreadyExists)
        let anchorRmdir = #expect(throws: CgroupError.self) { try fs.removeDirectory(.anchor) }
        #expect(anchorRmdir?.code == .notSupported)
        #expect(temp.exists("tree"))

        let noAnchor = #expect(throws: CgroupError.self) { try DirectoryCgroupFilesystem(anchorPath: temp.base + "/nope") }
        #expect(noAnchor?.code == .notFound)
        #expect(noAnchor?.path == temp.base + "/nope")
    }

    @Test(arguments: modes)
    func openedDescriptorsWork(walk: Bool) throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        let fs = try filesystem(temp.tree, walk: walk)
        try fs.makeDirectory(a)
        try temp.put("tree/a", .procs, "")

        let directory = try fs.openDirectory(a)
        var status = stat()
        #expect(fstat(directory.rawValue, &status) == 0)
        #expect(status.st_mode & S_IFMT == S_IFDIR)
        try directory.close()

        let procs = try fs.openForWriting(.procs, of: a)
        #expect(try procs.writeAll("4242".utf8) == 4)
        try procs.close()
        #expect(temp.content("tree/a/cgroup.procs") == "4242")

        let missing = #expect(throws: CgroupError.self) { try fs.openForWriting(.kill, of: a) }
        #expect(missing?.code == .notFound)
    }

    // MARK: Staying beneath the anchor

    /// Links inside the tree that lead out of it.
    static let escapes = ["to-sibling", "to-etc", "to-sibling-absolute"]

    func treeWithEscapes(walk: Bool) throws -> (TemporaryTree, DirectoryCgroupFilesystem) {
        let temp = try TemporaryTree()
        try temp.symlink("tree/to-sibling", to: "../outside")
        try temp.symlink("tree/to-sibling-absolute", to: temp.outside)
        try temp.symlink("tree/to-etc", to: "/etc")
        return (temp, try filesystem(temp.tree, walk: walk))
    }

    @Test(arguments: escapes, modes)
    func aSymlinkedCgroupIsRefused(link: String, walk: Bool) throws {
        let (temp, fs) = try treeWithEscapes(walk: walk)
        defer { temp.remove() }
        let escape = CgroupPath([link])

        let read = #expect(throws: CgroupError.self) { try fs.read(.procs, of: escape) }
        #expect(read?.code == .outsideRoot)
        #expect(read?.path == "\(temp.tree)/\(link)/cgroup.procs")
        #expect(read?.errno == .tooManySymbolicLinkLevels || read?.errno == .improperLink)

        let write = #expect(throws: CgroupError.self) { try fs.write("1", to: .memoryMax, of: escape) }
        #expect(write?.code == .outsideRoot)
        #expect(write?.message.contains("'1'") == true)
        #expect(temp.content("outside/memory.max") == "max\n")

        let mkdir = #expect(throws: CgroupError.self) { try fs.makeDirectory(escape.appending("planted")) }
        #expect(mkdir?.code == .outsideRoot)
        #expect(!temp.exists("outside/planted"))
        #expect(!FileManager.default.fileExists(atPath: "/etc/planted"))

        let rmdir = #expect(throws: CgroupError.self) { try fs.removeDirectory(escape.appending("sub")) }
        #expect(rmdir?.code == .outsideRoot)
        #expect(temp.exists("outside/sub"))

        let directory = #expect(throws: CgroupError.self) { try fs.openDirectory(escape) }
        #expect(directory?.code == .outsideRoot)
        let open = #expect(throws: CgroupError.self) { try fs.openForWriting(.procs, of: escape) }
        #expect(open?.code == .outsideRoot)
        let list = #expect(throws: CgroupError.self) { try fs.children(of: escape) }
        #expect(list?.code == .outsideRoot)
        let exists = #expect(throws: CgroupError.self) { try fs.exists(escape) }
        #expect(exists?.code == .outsideRoot)
        let wait = #expect(throws: CgroupError.self) {
            try fs.wait(for: .procs, of: escape, timeout: .milliseconds(10)) { _ in true }
        }
        #expect(wait?.code == .outsideRoot)
        #expect(!fs.contains(.procs, in: escape))

        // Links are not cgroups.
        #expect(try fs.children(of: .anchor) == [])
    }

    @Test(arguments: modes)
    func aSymlinkedFileIsRefused(walk: Bool) throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        try temp.mkdir("tree/a")
        try temp.symlink("tree/a/cgroup.procs", to: temp.outside + "/cgroup.procs")
        try temp.symlink("tree/a/memory.max", to: "../../outside/memory.max")
        let fs = try filesystem(temp.tree, walk: walk)

        let read = #expect(throws: CgroupError.self) { try fs.read(.procs, of: a) }
        #expect(read?.code == .outsideRoot)
        let write = #expect(throws: CgroupError.self) { try fs.write("0", to: .memoryMax, of: a) }
        #expect(write?.code == .outsideRoot)
        #expect(temp.content("outside/memory.max") == "max\n")
        let open = #expect(throws: CgroupError.self) { try fs.openForWriting(.procs, of: a) }
        #expect(open?.code == .outsideRoot)
        // The link itself is not followed to remove anything.
        #expect(throws: CgroupError.self) { try fs.removeDirectory(CgroupPath(["a", "memory.max"])) }
        #expect(temp.exists("outside/memory.max"))
    }

    @Test(arguments: modes)
    func aSymlinkDeeperInThePathIsRefused(walk: Bool) throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        try temp.mkdir("tree/a")
        try temp.symlink("tree/a/b", to: temp.outside)
        let fs = try filesystem(temp.tree, walk: walk)
        let error = #expect(throws: CgroupError.self) { try fs.makeDirectory(CgroupPath(["a", "b", "c"])) }
        #expect(error?.code == .outsideRoot)
        #expect(!temp.exists("outside/c"))
        let read = #expect(throws: CgroupError.self) { try fs.read(.procs, of: CgroupPath(["a", "b"])) }
        #expect(read?.code == .outsideRoot)
    }

    @Test func theAnchorItselfMayBeASymlink() throws {
        // The user's own --cgroup-root path is followed once, when it is opened.
        let temp = try TemporaryTree()
        defer { temp.remove() }
        try temp.symlink("alias", to: temp.tree)
        let fs = try DirectoryCgroupFilesystem(anchorPath: temp.base + "/alias")
        try fs.makeDirectory(a)
        #expect(temp.exists("tree/a"))
    }

    // MARK: Lock and wait

    /// Whether another open file description can take the lock right now.
    func lockIsFree(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        flock(fd, LOCK_UN)
        return true
    }

    @Test func theTreeLockIsExclusiveAndReleased() throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        let fs = try DirectoryCgroupFilesystem(anchorPath: temp.tree)
        #expect(lockIsFree(temp.tree))
        do {
            let lock = try fs.lockTree()
            withExtendedLifetime(lock) {
                #expect(!lockIsFree(temp.tree))
            }
        }
        #expect(lockIsFree(temp.tree))
        // And it can be taken again.
        let again = try fs.lockTree()
        withExtendedLifetime(again) {
            #expect(!lockIsFree(temp.tree))
        }
    }

    @Test func waitReturnsAtOnceWhenTheConditionHolds() throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        try temp.mkdir("tree/a")
        try temp.put("tree/a", .events, "populated 1\nfrozen 1\n")
        let fs = try DirectoryCgroupFilesystem(anchorPath: temp.tree)
        let clock = ContinuousClock()
        let start = clock.now
        let text = try fs.wait(for: .events, of: a, timeout: .seconds(5)) { CgroupEvents(parsing: $0).frozen }
        #expect(text == "populated 1\nfrozen 1\n")
        #expect(clock.now - start < .seconds(1))
    }

    @Test(arguments: modes)
    func waitGivesUpAfterTheTimeout(walk: Bool) throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        try temp.mkdir("tree/a")
        try temp.put("tree/a", .events, "populated 1\nfrozen 0\n")
        let fs = try filesystem(temp.tree, walk: walk)
        let clock = ContinuousClock()
        let start = clock.now
        var calls = 0
        let text = try fs.wait(for: .events, of: a, timeout: .milliseconds(50)) { content in
            calls += 1
            return CgroupEvents(parsing: content).frozen
        }
        let elapsed = clock.now - start
        #expect(text == nil)
        #expect(calls >= 1)
        #expect(elapsed >= .milliseconds(50))
        #expect(elapsed < .seconds(2))
    }

    @Test func waitOnAMissingFileThrows() throws {
        let temp = try TemporaryTree()
        defer { temp.remove() }
        try temp.mkdir("tree/a")
        let fs = try DirectoryCgroupFilesystem(anchorPath: temp.tree)
        let error = #expect(throws: CgroupError.self) {
            try fs.wait(for: .events, of: a, timeout: .milliseconds(10)) { _ in true }
        }
        #expect(error?.code == .notFound)
        #expect(error?.operation == .wait)
    }
}

/// `CgroupPath` only ever holds single, non-climbing directory names.
@Suite struct CgroupPathTests {
    @Test(arguments: [
        ("crawler-1", true), ("lightweight_agent", true), ("a.b", true), ("...", true),
        (String(repeating: "x", count: 255), true),
        ("", false), (".", false), ("..", false), ("/", false), ("a/b", false), ("/etc", false),
        ("../x", false), ("a\0b", false), (String(repeating: "x", count: 256), false),
    ])
    func safeComponents(name: String, safe: Bool) {
        #expect(CgroupPath.isSafeComponent(name) == safe)
    }

    @Test func relativeParentAndName() {
        let path = CgroupPath(["corral", "g", "a"])
        #expect(path.relative == "corral/g/a")
        #expect(path.description == "corral/g/a")
        #expect(path.name == "a")
        #expect(path.parent == CgroupPath(["corral", "g"]))
        #expect(path.parent?.parent?.parent == .anchor)
        #expect(CgroupPath.anchor.parent == nil)
        #expect(CgroupPath.anchor.name == nil)
        #expect(CgroupPath.anchor.relative == ".")
        #expect(CgroupPath(["corral"]).appending("g") == CgroupPath(["corral", "g"]))
    }
}

/// getxattr(2), looked up by name as the filesystem does (Glibc's Swift module lacks it).
func getxattrForTest(_ path: String, _ name: String, _ buffer: inout [UInt8]) -> Int {
    typealias GetAttribute = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "getxattr") else { return -1 }
    let count = buffer.count
    return buffer.withUnsafeMutableBytes { unsafeBitCast(symbol, to: GetAttribute.self)(path, name, $0.baseAddress, count) }
}
