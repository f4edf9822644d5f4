public import CorralCgroup
public import CorralCore
public import SystemPackage

/// A cgroup filesystem that hands every call to `base`: a test double
/// declares only what it changes (a spy on writes, a missing cgroup.kill, a
/// creation mark) and forwards the rest, including the requirements the
/// protocol gives defaults for.
public protocol ForwardingCgroupFilesystem: CgroupFilesystem {
    var base: any CgroupFilesystem { get }
}

extension ForwardingCgroupFilesystem {
    public func absolutePath(_ path: CgroupPath) -> String { base.absolutePath(path) }
    public func exists(_ path: CgroupPath) throws(CgroupError) -> Bool { try base.exists(path) }
    public func makeDirectory(_ path: CgroupPath) throws(CgroupError) { try base.makeDirectory(path) }
    public func removeDirectory(_ path: CgroupPath) throws(CgroupError) { try base.removeDirectory(path) }
    public func children(of path: CgroupPath) throws(CgroupError) -> [String] { try base.children(of: path) }
    public func contains(_ file: CgroupFile, in path: CgroupPath) -> Bool { base.contains(file, in: path) }
    public func read(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> String { try base.read(file, of: path) }
    public func write(_ value: String, to file: CgroupFile, of path: CgroupPath) throws(CgroupError) {
        try base.write(value, to: file, of: path)
    }
    public func wait(
        for file: CgroupFile, of path: CgroupPath, timeout: Duration, until condition: (String) -> Bool
    ) throws(CgroupError) -> String? {
        try base.wait(for: file, of: path, timeout: timeout, until: condition)
    }
    public func openDirectory(_ path: CgroupPath) throws(CgroupError) -> FileDescriptor { try base.openDirectory(path) }
    public func openForWriting(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        try base.openForWriting(file, of: path)
    }
    public func openForReading(_ file: CgroupFile, of path: CgroupPath) throws(CgroupError) -> FileDescriptor {
        try base.openForReading(file, of: path)
    }
    public func lockTree() throws(CgroupError) -> TreeLock { try base.lockTree() }
    public func markCreatedByCorral(_ path: CgroupPath) throws(CgroupError) { try base.markCreatedByCorral(path) }
    public func isMarkedCreatedByCorral(_ path: CgroupPath) -> Bool { base.isMarkedCreatedByCorral(path) }
}
