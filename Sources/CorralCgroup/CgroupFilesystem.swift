public import CorralCore
public import SystemPackage

/// A cgroup below the filesystem's anchor: a list of validated directory names.
public struct CgroupPath: Hashable, Sendable, CustomStringConvertible {
    public let components: [String]

    /// The anchor itself.
    public static let anchor = CgroupPath(trusted: [])

    init(trusted components: [String]) {
        self.components = components
    }

    /// A path from names that were validated by `CgroupName` (agents,
    /// groups) or are Corral's own; traps on anything else, because letting
    /// such a name through would be a programming error, not bad input.
    public init(_ components: [String]) {
        for name in components {
            precondition(CgroupPath.isSafeComponent(name), "unsafe cgroup path component '\(name)'")
        }
        self.components = components
    }

    /// A single directory name that cannot climb or descend: no '/', not '.' or '..', no NUL.
    public static func isSafeComponent(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.utf8.contains(0)
            && name.utf8.count <= 255
    }

    public func appending(_ name: String) -> CgroupPath {
        CgroupPath(components + [name])
    }

    public var parent: CgroupPath? {
        components.isEmpty ? nil : CgroupPath(trusted: Array(components.dropLast()))
    }

    public var name: String? { components.last }

    /// "a/b/c", or "." for the anchor.
    public var relative: String {
        components.isEmpty ? "." : components.joined(separator: "/")
    }

    public var description: String { relative }
}

/// The cgroupfs operations Corral needs, on paths below an anchor directory.
///
/// `DirectoryCgroupFilesystem` is the real one (directory fds, openat2 with
/// RESOLVE_BENEATH, no symlinks); tests use an in-memory tree that follows
/// the kernel's rules and can inject any errno.
public protocol CgroupFilesystem: Sendable {
    /// The absolute path of `path`, for messages.
    func absolutePath(_ path: CgroupPath) -> String
    func exists(_ path: CgroupPath) throws(CgroupError) -> Bool
    func makeDirectory(_ path: CgroupPath) throws(CgroupError)
    func removeDirectory(_ path: CgroupPath) throws(CgroupError)
    /// Names of the child cgroups of `path`.
    func children(of path: CgroupPath) throws(CgroupError) -> [String]
    func contains(_ file: CgroupFile, in path: CgroupPath) -> Bool
    func read(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> String
    /// Writes `value` with a single write(2), as cgroupfs requires.
    func write(_ value: String, to file: CgroupFile, of path: CgroupPath) throws(CgroupError)
    /// Reads `file` until `condition` holds on its content, sleeping on the
    /// kernel's change notification (poll POLLPRI) in between; returns the
    /// content, or nil when `timeout` passes first.
    func wait(
        for file: CgroupFile, of path: CgroupPath, timeout: Duration, until condition: (String) -> Bool
    ) throws(CgroupError) -> String?
    /// A directory fd of `path` (O_RDONLY|O_DIRECTORY|O_CLOEXEC) for clone3(CLONE_INTO_CGROUP).
    func openDirectory(_ path: CgroupPath) throws(CgroupError) -> FileDescriptor
    /// An O_WRONLY fd of `file` (cgroup.procs for the spawn fallback).
    func openForWriting(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor
    /// An O_RDONLY fd of `file`, for a caller that re-reads it often with
    /// pread at offset 0 (cgroupfs regenerates the content on every read).
    func openForReading(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor
    /// Takes an exclusive advisory lock serialising changes to the tree's
    /// shared levels (root and groups) between Corral processes.
    func lockTree() throws(CgroupError) -> TreeLock
    /// Marks `path` as created by Corral, so that any later Corral process
    /// can tell a root it may rewrite and remove from a user's (cgroupfs:
    /// the `user.corral.created` extended attribute, Linux 5.7+).
    func markCreatedByCorral(_ path: CgroupPath) throws(CgroupError)
    /// Whether `path` carries that mark; false when it does not, or the
    /// filesystem cannot say.
    func isMarkedCreatedByCorral(_ path: CgroupPath) -> Bool
}

/// Holds the tree lock until released (or deallocated).
public final class TreeLock: Sendable {
    private let release: @Sendable () -> Void

    public init(release: @escaping @Sendable () -> Void) {
        self.release = release
    }

    deinit { release() }
}

extension CgroupFilesystem {
    /// Filesystems without extended attributes keep no mark: only the
    /// process that created a root knows it is Corral's.
    public func markCreatedByCorral(_ path: CgroupPath) throws(CgroupError) {
        throw CgroupError(
            code: .notSupported, operation: .write, path: absolutePath(path),
            message: "\(absolutePath(path)) cannot carry Corral's creation mark on this filesystem",
            fix: "nothing to do: Corral removes a root it created only from the process that created it")
    }

    public func isMarkedCreatedByCorral(_ path: CgroupPath) -> Bool { false }

    /// Filesystems without real descriptors (the test fake) say so; callers read instead.
    public func openForReading(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        throw CgroupError(
            code: .notSupported, operation: .open, path: absolutePath(path) + "/" + file.rawValue,
            message: "\(absolutePath(path))/\(file.rawValue) cannot be held open on this filesystem",
            fix: "read the file each time instead of holding it open")
    }
}
